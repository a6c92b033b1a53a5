"""Paraphrase and prefix probes reach every QA-shaped task through its task file (issue 15).

Each QA task either declares what a probe needs (``probes.metric`` for every probe,
``probes.paraphrase_field`` for paraphrase) or the probe is refused in one line before any
model is loaded.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from unlearn_bench.config import RunConfig
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.evaluate import parse_task
from unlearn_bench.probes.base import ProbeContext, make_probe
from unlearn_bench.probes.driver import prepare
from unlearn_bench.tasks import find_task, load_task_data

# task -> (probes.metric, probes.paraphrase_field). TOFU ships paraphrased_question for every
# forget item; MUSE KnowMem and the LLMU hallucination set have no paraphrases; MedForget
# (evaluation-only, judge-scored image questions) declares no probes yet.
QA_TASKS = {
    "tofu_forget01": ("rouge_l_recall", "paraphrased_question"),
    "tofu_forget05": ("rouge_l_recall", "paraphrased_question"),
    "tofu_forget10": ("rouge_l_recall", "paraphrased_question"),
    "synthetic_people": ("rouge_l_recall", "paraphrased_question"),
    "muse_news": ("knowmem_f", None),
    "llmu_hallucination": ("hallucination_rate_probe", None),
    "medforget": (None, None),
}


def _one_line_refusal(call, *words: str) -> None:
    with pytest.raises(UnlearnBenchError) as info:
        call()
    message = str(info.value)
    assert len(message.splitlines()) == 1 and all(w in message for w in words), message


@pytest.mark.parametrize("name", sorted(QA_TASKS))
def test_each_qa_task_declares_or_refuses_prefix_and_paraphrase(name, tmp_path):
    spec = parse_task(find_task(name))
    metric, field = QA_TASKS[name]
    assert (spec.probes.metric, spec.probes.paraphrase_field) == (metric, field)
    config = RunConfig.from_dict({"task": name, "data_dir": str(tmp_path / "none")})
    if metric is None:
        # refused on the task file alone: no data is read (there is none at data_dir)
        for probe in ("prefix", "paraphrase"):
            _one_line_refusal(lambda p=probe: prepare(config, [p]), name, "probes.metric")
        return
    ctx = ProbeContext(config, spec, {})
    make_probe("prefix").check(ctx)  # the prefix needs only the task's probe eval sets
    if field is None:
        _one_line_refusal(
            lambda: make_probe("paraphrase").check(ctx), name, "probes.paraphrase_field"
        )


@pytest.mark.parametrize("name", ["tofu_forget01", "tofu_forget05", "tofu_forget10"])
def test_tofu_paraphrase_reads_every_forget_item_paraphrased(name, shared_data: Path):
    spec = parse_task(find_task(name))
    config = RunConfig.from_dict({"task": name, "data_dir": str(shared_data / "tofu")})
    ctx = ProbeContext(config, spec, load_task_data(spec, config.data_dir))
    probe = make_probe("paraphrase")
    probe.check(ctx)
    sets = probe.eval_sets(ctx)
    (records,) = sets.values()
    assert records and all(r["question"] != r["source_question"] for r in records)
