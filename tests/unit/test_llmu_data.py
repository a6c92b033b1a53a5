"""The llmu data sources: splits by prompt, builtin data, local files and the hub code path."""

import json
import shutil

import pytest

from unlearn_bench.data import llmu
from unlearn_bench.data import llmu_files as files
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.evaluate import parse_task
from unlearn_bench.tasks import find_task, load_task_data


def test_bucket_is_stable_and_ranges_are_disjoint():
    assert files.bucket("How do I bake bread?") == files.bucket("  How do I bake bread?\n")
    spans = [llmu.FORGET, llmu.UNSEEN, llmu.JUDGE]
    covered = [b for lo, hi in spans for b in range(lo, hi)]
    assert sorted(covered) == list(range(100))  # disjoint and complete


def test_book_passages_are_consecutive_prefix_continuation_pairs():
    text = " ".join(f"w{i}" for i in range(10))
    assert llmu.book_passages(text, 2, 3, 0) == [("w0 w1", "w2 w3 w4"), ("w5 w6", "w7 w8 w9")]
    assert llmu.book_passages(text, 2, 3, 1) == [("w1 w2", "w3 w4 w5")]


def test_builtin_copyright_splits_are_disjoint():
    opts = {
        "book": "builtin:tiny",
        "normal": "builtin",
        "prefix_words": 10,
        "continuation_words": 15,
        "n_forget": 8,
        "n_eval": 4,
    }
    splits = llmu.copyright(opts, None)
    forget = {r["passage"] for r in splits["forget"]}
    unseen = {r["passage"] for r in splits["unseen_passages"]}
    assert len(forget) == 8 and len(unseen) == 4 and not forget & unseen
    assert {r["passage"] for r in splits["unlearned_passages"]} <= forget
    record = splits["forget"][0]
    assert len(record["question"].split()) == 10 and len(record["answer"].split()) == 15
    normal_q = {r["question"] for r in splits["normal"]}
    assert normal_q and not normal_q & {r["question"] for r in splits["retain"]}


def test_copyright_original_trains_on_forget_and_unseen_normal_from_another_book(tmp_path):
    other = tmp_path / "other.txt"
    other.write_text(" ".join(f"n{i}" for i in range(100)))  # 10 passages of 4 + 6 words
    opts = {"book": "builtin:tiny", "normal": f"book:{other}", "prefix_words": 4,
            "continuation_words": 6, "n_forget": 5, "n_eval": 3, "seed": 1}  # fmt: skip
    splits = llmu.copyright(opts, None)
    # the original model is finetuned on the book (forget + unseen), as in the paper
    assert splits["finetuned"] == splits["forget"] + splits["unseen_passages"]
    # normal data: the other book, same prefix -> continuation format, held-out prompts apart
    normal, retain = splits["normal"], splits["retain"]
    assert len(normal) == 3 and len(retain) == 7
    assert {r["passage"] for r in normal}.isdisjoint({r["passage"] for r in retain})
    first = next(r for r in retain + normal if r["passage"] == 0)
    assert (first["question"], first["answer"]) == ("n0 n1 n2 n3", "n4 n5 n6 n7 n8 n9")
    short = tmp_path / "short.txt"
    short.write_text(" ".join(f"s{i}" for i in range(30)))  # 3 passages, all held out
    with pytest.raises(UnlearnBenchError, match="too short"):
        llmu.copyright({**opts, "normal": f"book:{short}"}, None)


def test_unknown_option_and_missing_data_root_are_clear_errors(monkeypatch):
    with pytest.raises(UnlearnBenchError, match="unknown option 'n_foget'"):
        llmu.harmful({"n_foget": 3}, None)
    monkeypatch.delenv(files.DATA_ENV, raising=False)
    with pytest.raises(UnlearnBenchError, match="--data-dir"):
        llmu.harmful({}, None)


def test_user_book_file_latin1_is_read_and_recorded(tmp_path):
    book = tmp_path / "book.txt"
    book.write_bytes(("caf\xe9 " * 40).encode("latin-1"))
    opts = {"book": str(book), "normal": "builtin", "prefix_words": 5, "continuation_words": 5}
    splits = llmu.copyright(opts, None)
    assert splits["forget"][0]["encoding"] == "latin-1"
    assert "café" in splits["forget"][0]["question"]


def test_harmful_from_shared_data_splits_by_prompt(shared_data):
    splits = llmu.harmful({"n_forget": 40, "n_eval": 12}, shared_data)
    forget_q = {r["question"] for r in splits["forget"]}
    unseen_q = {r["question"] for r in splits["unseen_harmful"]}
    assert len(splits["forget"]) == 40 and len(splits["unseen_harmful"]) == 12
    assert not forget_q & unseen_q
    assert all(llmu.in_buckets(q, llmu.FORGET) for q in forget_q)
    assert {r["question"] for r in splits["unlearned_harmful"]} <= forget_q
    # v0 response[1] is the unsafe one: every forget answer is some pair's second response.
    pairs = files.pku_v0_pairs(shared_data / files.PKU_V0)
    unsafe = {(p["prompt"], p["unsafe"]) for p in pairs}
    assert all((r["question"], r["answer"]) in unsafe for r in splits["forget"])
    assert all(r["answer"] == "" for r in splits["advbench"] + splits["harmbench"])
    assert not {r["question"] for r in splits["normal"]} & {r["question"] for r in splits["retain"]}
    # The alignment baselines' data: the safe response v0 gives to the same prompt (response[0]).
    safe = {(p["prompt"], p["safe"]) for p in pairs}
    assert all("safe_answer" in r for r in splits["forget"])  # every v0 prompt has a safe reply
    assert all((r["question"], r["safe_answer"]) in safe for r in splits["forget"])


def test_truthfulqa_bom_is_dropped_and_answers_split(shared_data):
    rows = files.truthfulqa(shared_data, "local")
    assert len(rows) == 817
    assert rows[0]["question"].startswith("What happens to you if you eat watermelon seeds")
    assert len(rows[0]["correct_answers"]) > 1


def test_harmbench_standard_only(shared_data):
    prompts = files.harmbench_prompts(shared_data, "local")
    assert len(prompts) == 200  # the standard behaviours of text_all


def test_hallucination_forget_answers_are_hallucinated(shared_data):
    splits = llmu.hallucination({"n_forget": 10, "n_eval": 5}, shared_data)
    assert all(r["answer"] == r["hallucinated_answer"] for r in splits["forget"])
    forget_q = {r["question"] for r in splits["forget"]}
    assert not forget_q & {r["question"] for r in splits["unseen_misleading"]}


def test_hub_code_path_reads_raw_pku_records(shared_data, tmp_path):
    pytest.importorskip("datasets")
    local = tmp_path / "pku" / "test.jsonl"
    local.parent.mkdir()
    shutil.copy(shared_data / "pku_saferlhf" / "alpaca7b_test_first20.jsonl", local)
    rows = files.pku_labelled(None, str(local))
    assert len(rows) == 40  # two responses per raw record
    assert sum(not r["is_safe"] for r in rows) == 18  # PROVENANCE: 18 unsafe responses
    # A folder laid out like a hub dataset goes through the same load_dataset call.
    assert len(files.pku_labelled(None, f"{local.parent}@test")) == 40


def test_hub_code_path_truthfulqa_layout(tmp_path):
    pytest.importorskip("datasets")
    folder = tmp_path / "tqa" / "generation"
    folder.mkdir(parents=True)
    row = {
        "question": "Q?",
        "best_answer": "A.",
        "correct_answers": ["A."],
        "incorrect_answers": ["B."],
        "type": "x",
        "category": "y",
        "source": "z",
    }
    (folder / "validation-00000-of-00001.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(UnlearnBenchError, match="cannot load dataset"):
        files.truthfulqa(None, str(tmp_path / "missing-dataset"))
    rows = files.hub_rows(str(folder / "validation-00000-of-00001.jsonl"))
    assert rows[0]["best_answer"] == "A."


def test_task_files_load_with_shared_data(shared_data):
    for name in ("llmu_harmful", "llmu_hallucination", "llmu_copyright"):
        spec = parse_task(find_task(name))
        splits = load_task_data(spec, shared_data)
        assert splits["forget"] and all(splits[e.split] for e in spec.evaluation.values())


def test_template_prompt_style_is_the_papers_format():
    from unlearn_bench.prompts import format_prompt
    from unlearn_bench.tasks import PromptSpec

    prompt = format_prompt(PromptSpec(style="template"), "Is {x} safe?", lambda m: "unused")
    assert prompt.context == "### Question: Is {x} safe?\n ### Answer:"  # braces kept verbatim
    assert prompt.answer_prefix == " " and prompt.add_special_tokens
