"""Paraphrased-question probe: the task's evaluation with each question paraphrased.

TOFU ships a ``paraphrased_question`` for every forget item; a task names the field in
``probes.paraphrase_field``. Probability, ROUGE and truth ratio are then computed with the
paraphrased question as context, the answers unchanged.
"""

from __future__ import annotations

from typing import Any

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.probes.base import PROBES, Probe, ProbeContext, Record


@PROBES.register("paraphrase")
class Paraphrase(Probe):
    """Replace each evaluated question by the record's paraphrased question."""

    family = "paraphrase"

    def check(self, ctx: ProbeContext) -> None:
        """The task must name the field and every evaluated record must carry it."""
        field = ctx.spec.probes.paraphrase_field
        if not field:
            raise UnlearnBenchError(
                f"task {ctx.spec.name}: probe 'paraphrase' needs probes.paraphrase_field"
            )
        for name, records in super().eval_sets(ctx).items():
            if any(not r.get(field) for r in records):
                raise UnlearnBenchError(
                    f"task {ctx.spec.name}: eval set {name} has records without {field!r}"
                )

    def describe(self, ctx: ProbeContext) -> dict[str, Any]:
        """Name the field the questions came from."""
        return {**super().describe(ctx), "field": ctx.spec.probes.paraphrase_field}

    def eval_sets(self, ctx: ProbeContext) -> dict[str, list[Record]]:
        """Each record with ``question`` paraphrased; the original kept as source_question."""
        field = str(ctx.spec.probes.paraphrase_field)
        return {
            name: [{**r, "question": r[field], "source_question": r["question"]} for r in records]
            for name, records in super().eval_sets(ctx).items()
        }
