"""The numeric profile: which variables are pinned, and what the header records."""

import platform

import pytest

from unlearn_bench import numerics
from unlearn_bench.errors import UnlearnBenchError

X86_AVX2 = platform.machine().lower() in {"x86_64", "amd64"} and "avx2" in numerics._cpu_flags()


@pytest.mark.skipif(not X86_AVX2, reason="the portable profile exists on x86-64 with AVX2")
def test_portable_profile_sets_the_three_kernel_variables():
    env: dict[str, str] = {}
    assert numerics.pin(env) == "portable"
    assert env == {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


@pytest.mark.skipif(not X86_AVX2, reason="the portable profile exists on x86-64 with AVX2")
def test_a_variable_the_user_set_is_kept():
    env = {"MKL_CBWR": "COMPATIBLE"}
    numerics.pin(env)
    assert env["MKL_CBWR"] == "COMPATIBLE"
    assert env["ATEN_CPU_CAPABILITY"] == "avx2"


def test_native_mode_pins_nothing():
    env = {"UNLEARN_BENCH_NUMERICS": "native"}
    assert numerics.pin(env) == "native"
    assert env == {"UNLEARN_BENCH_NUMERICS": "native"}


def test_an_unknown_mode_is_an_error():
    with pytest.raises(UnlearnBenchError, match="portable' or 'native'"):
        numerics.pin({"UNLEARN_BENCH_NUMERICS": "fast"})


def test_identity_reports_what_torch_dispatches_to():
    import torch

    ident = numerics.identity()
    assert ident["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert ident["torch_threads"] == torch.get_num_threads()
    # conftest pinned before torch was imported, so the tests run in the portable profile
    expected = "portable-avx2" if X86_AVX2 else f"native-{ident['cpu_capability'].lower()}"
    assert ident["profile"] == expected
