"""``--reference`` accepts a run folder or a published log file (imported once, cached)."""

import pytest

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.references import reference_view
from unlearn_bench.scoring import reference_values

LOG = "tofu/reference_eval_logs/ft_epoch5_lr1e-05_llama2-7b_retain90_wd0.01.eval_log_aggregated.json.gz"


def test_log_file_becomes_a_cached_reference_record(shared_data, isolated_cache):
    view = reference_view(shared_data / LOG, "tofu_forget10")
    values = reference_values(view)
    assert len(values.truth_ratios) == 300  # TOFU's logs cover the first 300 forget10 items
    records = list((isolated_cache / "references").iterdir())
    assert len(records) == 1
    again = reference_values(reference_view(shared_data / LOG, "tofu_forget10"))
    assert again.truth_ratios == values.truth_ratios
    assert list((isolated_cache / "references").iterdir()) == records


def test_missing_reference_is_a_clear_error(tmp_path):
    with pytest.raises(UnlearnBenchError, match="reference not found"):
        reference_view(tmp_path / "nope.json", "t")
