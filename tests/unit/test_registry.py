import pytest

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.registry import Registry


def test_register_and_get():
    reg: Registry[object] = Registry("thing")

    @reg.register("alpha")
    class Alpha:
        pass

    assert reg.get("alpha") is Alpha
    assert "alpha" in reg
    assert reg.names() == ["alpha"]


def test_unknown_name_suggests_close_match():
    reg: Registry[object] = Registry("method")
    reg.register("grad_ascent")(object())
    with pytest.raises(
        UnlearnBenchError, match="unknown method 'grad_ascnt'.*did you mean 'grad_ascent'"
    ):
        reg.get("grad_ascnt")


def test_double_registration_is_an_error():
    reg: Registry[object] = Registry("metric")
    reg.register("x")(object())
    with pytest.raises(UnlearnBenchError, match="registered twice"):
        reg.register("x")(object())


def test_lazy_entry_imports_on_first_get():
    reg: Registry[object] = Registry("fn")
    reg.register_lazy("dumps", "json:dumps")
    import json

    assert reg.get("dumps") is json.dumps


def test_lazy_target_must_name_an_attribute():
    reg: Registry[object] = Registry("fn")
    with pytest.raises(ValueError):
        reg.register_lazy("x", "json.dumps")


def test_listing_methods_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys; from unlearn_bench.methods import METHODS; from unlearn_bench.metrics import METRICS;"
        "METRICS.names(); METHODS.names(); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
