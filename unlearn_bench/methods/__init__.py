"""Unlearning methods, one file each; registered lazily so listing them never imports torch."""

from unlearn_bench.methods.base import METHODS, Method, TokenBatch, UnlearnBatch

METHODS.register_lazy("grad_ascent", "unlearn_bench.methods.grad_ascent:GradAscent")
METHODS.register_lazy("grad_diff", "unlearn_bench.methods.grad_diff:GradDiff")
METHODS.register_lazy("npo", "unlearn_bench.methods.npo:NPO")
METHODS.register_lazy("simnpo", "unlearn_bench.methods.simnpo:SimNPO")
METHODS.register_lazy("idk_dpo", "unlearn_bench.methods.idk_dpo:IdkDPO")
METHODS.register_lazy("flat", "unlearn_bench.methods.flat:FLAT")
METHODS.register_lazy("ga_mismatch", "unlearn_bench.methods.ga_mismatch:GAMismatch")
METHODS.register_lazy("bounded_ga", "unlearn_bench.methods.bounded_ga:BoundedGA")
METHODS.register_lazy("rmu", "unlearn_bench.methods.rmu:RMU")
METHODS.register_lazy("finetune_normal", "unlearn_bench.methods.finetune_normal:FinetuneNormal")

__all__ = ["METHODS", "Method", "TokenBatch", "UnlearnBatch"]
