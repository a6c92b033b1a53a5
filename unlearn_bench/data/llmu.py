"""Data sources for the three scenarios of Yao et al. 2023 ("Large Language Model Unlearning").

Each returns ``{split: [record]}`` with at least ``question`` and ``answer`` per record:

- ``llmu:harmful``: forget = PKU-SafeRLHF (prompt, unsafe response) pairs; retain = TruthfulQA
  (the paper's "normal" data); eval sets ``unlearned_harmful`` (prompts of the forget pairs),
  ``unseen_harmful`` (PKU prompts in disjoint buckets), ``advbench``, ``harmbench`` and
  ``normal`` (held-out TruthfulQA questions).
- ``llmu:copyright``: passages of a book; the prompt is a passage's first words and the answer
  the true continuation; ``finetuned`` (forget + unseen passages) is what the original model is
  trained on; normal data is TruthfulQA or, with ``normal: "book:<spec>"``, passages of another
  book; eval sets ``unlearned_passages``, ``unseen_passages``, ``normal``.
- ``llmu:hallucination``: forget = HaluEval QA (question, hallucinated answer); eval sets
  ``unlearned_misleading``, ``unseen_misleading`` and ``benign`` (held-out TruthfulQA).

Splits are by prompt bucket (:func:`llmu_files.bucket`), so no prompt appears on two sides.
Prompt-only eval sets (AdvBench, HarmBench) carry ``answer: ""``: they are only generated from.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from unlearn_bench.data import llmu_files as files
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.tasks import DATA_SOURCES

Record = dict[str, Any]
Splits = dict[str, list[Record]]

#: Bucket ranges [lo, hi) of the prompt hash. Judge training sets (the probe) use JUDGE only.
FORGET, UNSEEN, JUDGE = (0, 50), (50, 75), (75, 100)
#: TruthfulQA: 70% normal (train) data and 20% held out for evaluation, as the paper's
#: 0.7 / 0.1 / 0.2 split (its 10% validation part is unused here).
NORMAL_TRAIN, NORMAL_EVAL = (0, 70), (80, 100)


def in_buckets(text: str, span: tuple[int, int]) -> bool:
    """Whether ``text``'s hash bucket lies in ``span`` (deterministic splitting)."""
    return span[0] <= files.bucket(text) < span[1]


def _options(options: dict[str, Any], defaults: dict[str, Any], source: str) -> dict[str, Any]:
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise UnlearnBenchError(
            f"{source}: unknown option {unknown[0]!r}; allowed: {', '.join(sorted(defaults))}"
        )
    return {**defaults, **options}


def _sample(items: list[Any], n: int | None, rng: random.Random) -> list[Any]:
    items = list(items)
    rng.shuffle(items)
    return items if n is None else items[:n]


def normal_splits(
    root: Path | None, source: str, n_train: int | None, n_eval: int, seed: int
) -> tuple[list[Record], list[Record]]:
    """TruthfulQA (or the builtin QA) as (normal training data, held-out normal prompts)."""
    if source == "builtin":
        from unlearn_bench.data.llmu_builtin import NORMAL_QA

        rows: list[Record] = [
            {"question": q, "best_answer": a, "correct_answers": [a], "incorrect_answers": []}
            for q, a in NORMAL_QA
        ]
        # Too few rows for buckets to be balanced: alternate instead (still disjoint).
        train_rows, eval_rows = rows[0::2], rows[1::2]
    else:
        rows = files.truthfulqa(root, source)
        train_rows = [r for r in rows if in_buckets(r["question"], NORMAL_TRAIN)]
        eval_rows = [r for r in rows if in_buckets(r["question"], NORMAL_EVAL)]

    def record(r: Record) -> Record:
        return {
            "question": r["question"],
            "answer": r["best_answer"],
            "correct_answers": r["correct_answers"],
            "incorrect_answers": r["incorrect_answers"],
        }

    rng = random.Random(seed)
    train = [record(r) for r in _sample(train_rows, n_train, rng)]
    held_out = [record(r) for r in _sample(eval_rows, n_eval, rng)]
    return train, held_out


@DATA_SOURCES.register("llmu:harmful")
def harmful(options: dict[str, Any], data_dir: Path | None) -> Splits:
    """Splits of the harmful-responses scenario (see the module docstring)."""
    opt = _options(
        options,
        {"pku": "local:v0", "normal": "local", "advbench": "local", "harmbench": "local",
         "n_forget": 64, "n_eval": 32, "n_normal": None, "seed": 0},
        "llmu:harmful",
    )  # fmt: skip
    rng = random.Random(opt["seed"])
    unsafe = [r for r in files.pku_labelled(data_dir, opt["pku"]) if not r["is_safe"]]
    if not unsafe:
        raise UnlearnBenchError(f"llmu:harmful: no unsafe responses in {opt['pku']!r}")
    pairs = sorted({(r["prompt"], r["response"]) for r in unsafe})  # dedupe, stable order
    forget_pairs = _sample([p for p in pairs if in_buckets(p[0], FORGET)], opt["n_forget"], rng)
    labelled = files.pku_labelled(data_dir, opt["pku"])
    # The alignment baselines (SFT / DPO) train on the safe response to the same prompt; v1
    # holds unsafe responses only, so its rows carry none and those baselines are refused.
    safe_by_prompt: dict[str, str] = {}
    for r in sorted(labelled, key=lambda r: (r["prompt"], r["response"])):
        if r["is_safe"]:
            safe_by_prompt.setdefault(r["prompt"], r["response"])
    forget = [
        {"question": q, "answer": a, "source": opt["pku"]}
        | ({"safe_answer": safe_by_prompt[q]} if q in safe_by_prompt else {})
        for q, a in forget_pairs
    ]
    first_answer: dict[str, str] = {}
    for q, a in forget_pairs:
        first_answer.setdefault(q, a)
    unlearned = [{"question": q, "answer": a} for q, a in first_answer.items()][: opt["n_eval"]]
    unseen_first: dict[str, str] = {}
    for q, a in pairs:
        if in_buckets(q, UNSEEN):
            unseen_first.setdefault(q, a)
    unseen = [
        {"question": q, "answer": a} for q, a in _sample(list(unseen_first.items()), None, rng)
    ][: opt["n_eval"]]
    retain, normal = normal_splits(
        data_dir, opt["normal"], opt["n_normal"], opt["n_eval"], opt["seed"]
    )
    splits: Splits = {
        "forget": forget,
        "retain": retain,
        "full": forget + retain,
        "unlearned_harmful": unlearned,
        "unseen_harmful": unseen,
        "normal": normal,
    }
    readers = {"advbench": files.advbench_prompts, "harmbench": files.harmbench_prompts}
    for name, reader in readers.items():
        if opt[name] is not None:
            prompts = _sample(reader(data_dir, opt[name]), opt["n_eval"], rng)
            splits[name] = [{"question": p.strip(), "answer": ""} for p in prompts]
    return splits


@DATA_SOURCES.register("llmu:hallucination")
def hallucination(options: dict[str, Any], data_dir: Path | None) -> Splits:
    """Splits of the hallucination scenario (see the module docstring)."""
    opt = _options(
        options,
        {"halueval": "local", "normal": "local", "n_forget": 64, "n_eval": 32, "n_normal": None,
         "seed": 0},
        "llmu:hallucination",
    )  # fmt: skip
    rng = random.Random(opt["seed"])
    rows = files.halueval_qa(data_dir, opt["halueval"])

    def record(r: Record) -> Record:
        return {
            "question": r["question"],
            "answer": r["hallucinated_answer"],
            "right_answer": r["right_answer"],
            "hallucinated_answer": r["hallucinated_answer"],
            "knowledge": r["knowledge"],
        }

    forget = [record(r) for r in _sample([r for r in rows if in_buckets(r["question"], FORGET)],
                                         opt["n_forget"], rng)]  # fmt: skip
    unseen = [record(r) for r in _sample([r for r in rows if in_buckets(r["question"], UNSEEN)],
                                         opt["n_eval"], rng)]  # fmt: skip
    retain, benign = normal_splits(
        data_dir, opt["normal"], opt["n_normal"], opt["n_eval"], opt["seed"]
    )
    return {
        "forget": forget,
        "retain": retain,
        "full": forget + retain,
        "unlearned_misleading": forget[: opt["n_eval"]],
        "unseen_misleading": unseen,
        "benign": benign,
    }


def book_passages(
    text: str, prefix_words: int, continuation_words: int, skip_words: int
) -> list[tuple[str, str]]:
    """Consecutive, non-overlapping (prefix, true continuation) passages; whitespace collapsed."""
    words = text.split()[skip_words:]
    size = prefix_words + continuation_words
    return [
        (" ".join(words[i : i + prefix_words]), " ".join(words[i + prefix_words : i + size]))
        for i in range(0, len(words) - size + 1, size)
    ]


@DATA_SOURCES.register("llmu:copyright")
def copyright(options: dict[str, Any], data_dir: Path | None) -> Splits:
    """Splits of the copyright scenario: the user's book (a path), Gutenberg, or builtin text."""
    opt = _options(
        options,
        {"book": "gutenberg:austen-emma.txt", "normal": "local", "prefix_words": 32,
         "continuation_words": 48, "skip_words": 0, "n_forget": 32, "n_eval": 32,
         "n_normal": None, "seed": 0},
        "llmu:copyright",
    )  # fmt: skip
    passages, encoding = read_passages(data_dir, opt["book"], opt, opt["skip_words"])
    if len(passages) < 2:
        raise UnlearnBenchError(f"llmu:copyright: {opt['book']!r} yields fewer than 2 passages")
    order = _sample(list(range(len(passages))), None, random.Random(opt["seed"]))
    n_forget = min(opt["n_forget"], len(order) // 2)
    forget_ids, unseen_ids = order[:n_forget], order[n_forget : n_forget + opt["n_eval"]]

    forget = [passage_record(passages, i, encoding) for i in forget_ids]
    unseen = [passage_record(passages, i, encoding) for i in unseen_ids]
    if opt["normal"].startswith("book:"):
        retain, normal = normal_book_splits(data_dir, opt)
    else:
        retain, normal = normal_splits(
            data_dir, opt["normal"], opt["n_normal"], opt["n_eval"], opt["seed"]
        )
    return {
        "forget": forget,
        "retain": retain,
        "full": forget + retain,
        # The paper finetunes on the whole book, unlearns part of it and tests the rest: the
        # unseen passages are memorised too, so their leak rate measures generalisation.
        "finetuned": forget + unseen,
        "unlearned_passages": forget[: opt["n_eval"]],
        "unseen_passages": unseen,
        "normal": normal,
    }


def normal_book_splits(
    data_dir: Path | None, opt: dict[str, Any]
) -> tuple[list[Record], list[Record]]:
    """Normal data in the forget data's own format: passages of another book (``book:<spec>``).

    The paper's normal data for this scenario is BookCorpus, text completion like the forget
    passages; a normal set in another format lets the model tell the two apart by format
    alone. Returns (normal training passages, held-out normal prompts).
    """
    passages, encoding = read_passages(data_dir, opt["normal"].split(":", 1)[1], opt, 0)
    order = _sample(list(range(len(passages))), None, random.Random(opt["seed"]))
    held_out, train = order[: opt["n_eval"]], order[opt["n_eval"] :]
    if not train:
        raise UnlearnBenchError(f"llmu:copyright: normal book {opt['normal']!r} is too short")
    n_train = len(train) if opt["n_normal"] is None else opt["n_normal"]
    return (
        [passage_record(passages, i, encoding) for i in train[:n_train]],
        [passage_record(passages, i, encoding) for i in held_out],
    )


def read_passages(
    data_dir: Path | None, book: str, opt: dict[str, Any], skip_words: int
) -> tuple[list[tuple[str, str]], str]:
    """(prefix, continuation) passages of a book and the encoding it was read with.

    ``book`` is ``builtin:tiny``, ``gutenberg:<member>``, a path or ``zip::member``.
    """
    if book == "builtin:tiny":
        from unlearn_bench.data.llmu_builtin import TINY_BOOK

        text, encoding = TINY_BOOK, "utf-8"
    else:
        text, encoding = files.read_book(data_dir, book)
    passages = book_passages(text, opt["prefix_words"], opt["continuation_words"], skip_words)
    return passages, encoding


def passage_record(passages: list[tuple[str, str]], i: int, encoding: str) -> Record:
    """Record of passage ``i``: its prefix as question, its continuation as answer."""
    prefix, continuation = passages[i]
    return {"question": prefix, "answer": continuation, "passage": i, "encoding": encoding}
