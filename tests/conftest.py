"""Shared fixtures: a tiny random model directory built once per test session."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from unlearn_bench import numerics  # noqa: E402

# In-process tests get the CLI's numeric profile: pinned before anything imports torch.
numerics.pin()

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_model import build_tiny_model_dir

    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_model_and_tokenizer(tiny_model_dir: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    return model, tokenizer


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the user cache at a per-test folder so tests never share or pollute caches."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("UNLEARN_BENCH_CACHE", str(cache))
    return cache


@pytest.fixture(autouse=True)
def hf_only_outside_vllm_tests(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default backend (auto) stays HF-only in tests not marked ``vllm``.

    ``make setup`` installs vLLM, and auto would start a vLLM engine (seconds each, more CPU
    than the default suite can spend) for every model a test evaluates. The HF-only path is
    the one auto takes without vLLM, and tests/integration/test_default_backend.py checks it
    against plain ``hf``; the vLLM-marked tests exercise auto with vLLM.
    """
    if request.node.get_closest_marker("vllm") is None:
        monkeypatch.setenv("UNLEARN_BENCH_NO_VLLM", "1")


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


# `make test-extended` (what CI runs after installing every extra) sets UNLEARN_BENCH_NO_SKIP=1:
# there a vLLM / browser / lm-eval / Ray test module that skips itself on import (no Chromium, a
# failed install) means tests CI believes it ran did not, so the skip is a collection error.
# Skips inside a test (missing ../shared data, no GPU) and other modules' skips stay skips.
NO_SKIP = os.environ.get("UNLEARN_BENCH_NO_SKIP") == "1"
EXTENDED_MARKERS = ("vllm", "browser", "lm_eval", "ray")
_MODULE_MARK = re.compile(r"^pytestmark\s*=\s*pytest\.mark\.(\w+)", re.MULTILINE)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):  # type: ignore[no-untyped-def]
    """A module of extended tests that skips itself while being imported (no Chromium, ...)."""
    outcome = yield
    report = outcome.get_result()
    if NO_SKIP and report.skipped and isinstance(collector, pytest.Module):
        marks = _MODULE_MARK.findall(collector.path.read_text(encoding="utf-8"))
        if set(marks) & set(EXTENDED_MARKERS):
            report.outcome = "failed"
            report.longrepr = f"skipped under UNLEARN_BENCH_NO_SKIP=1: {report.longrepr}"
