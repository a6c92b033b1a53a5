"""Recovery: how much of the unlearned -> target gap a probe closes, per eval set.

recovery = (m(U probed) - m(U)) / (m(T probed) - m(U)), all means over the same items, where m
is the task's forget metric (``probes.metric``; for Leak@k the leak metric, greedy before and
the largest k after), U the unlearned model and T the target under the same probe. 0: the probe
recovers nothing; 1: the probed unlearned model leaks as much as the probed target.
"""

from __future__ import annotations

from typing import Any

from unlearn_bench.runs import scores_by_item

Record = dict[str, Any]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def recovery_entries(
    metric: str,
    probed_score: str,
    probed: list[Record],
    unprobed: list[Record],
    target_probed: list[Record],
) -> dict[str, Any]:
    """``<set>/before_<metric>`` and ``<set>/recovery_<metric>`` for every shared eval set."""
    after = scores_by_item(probed, probed_score)
    before = scores_by_item(unprobed, metric)
    target = scores_by_item(target_probed, probed_score)
    out: dict[str, Any] = {}
    for set_name in sorted({key[0] for key in after}):
        keys = [k for k in after if k[0] == set_name and k in before and k in target]
        if not keys:
            continue
        u_after = _mean([after[k] for k in keys])
        u_before = _mean([before[k] for k in keys])
        t_after = _mean([target[k] for k in keys])
        gap = t_after - u_before
        common = {"n": len(keys), "stderr": None, "version": 1}
        out[f"{set_name}/before_{metric}"] = {"value": u_before, "higher_is_better": None,
                                              **common}  # fmt: skip
        out[f"{set_name}/target_{probed_score}"] = {"value": t_after, "higher_is_better": None,
                                                    **common}  # fmt: skip
        out[f"{set_name}/recovery_{metric}"] = {
            "value": (u_after - u_before) / gap if abs(gap) > 1e-9 else None,
            "higher_is_better": False,
            **common,
            "note": "share of the unlearned->target gap closed by the probe"
            + ("" if abs(gap) > 1e-9 else "; undefined: no gap"),
        }
    return out
