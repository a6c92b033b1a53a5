"""Training data: prompt/answer examples, tokenised batches, and seeded shard-aware sampling.

Every optimiser step draws one seeded global batch of ``batch_size x grad_accum x processes``
examples per batch part, cut into micro-batches; micro-batch ``a x processes + rank`` goes to
accumulation step ``a`` of process ``rank``. So two processes with ``grad_accum=1`` see the
same micro-batches as one process with ``grad_accum=2``.

Parts whose rows must correspond to the forget rows (IdkPO's refusal, GA+Mismatch's random
normal answers) are not drawn from streams of their own: they are *derived* at every step from
that step's forget examples, so row j of a derived part always carries forget row j's prompt.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.methods.base import TokenBatch, UnlearnBatch
from unlearn_bench.prompts import FormattedPrompt


@dataclass(frozen=True)
class Example:
    """One prompt/answer pair to train on; labels cover the answer and the end-of-turn token."""

    prompt: FormattedPrompt
    answer: str


def encode_example(
    tokenizer: Any, example: Example, max_length: int
) -> tuple[list[int], list[int]]:
    """Token ids and answer-only labels of one example, truncated."""
    ctx = tokenizer(example.prompt.context, add_special_tokens=example.prompt.add_special_tokens)
    ans = tokenizer(example.prompt.answer_prefix + example.answer, add_special_tokens=False)
    # The end-of-turn token is trained so a finetuned model stops after its answer.
    answer_ids = list(ans.input_ids) + [tokenizer.eos_token_id]
    ids = (list(ctx.input_ids) + answer_ids)[:max_length]
    labels = ([-100] * len(ctx.input_ids) + answer_ids)[:max_length]
    return ids, labels


def collate(tokenizer: Any, examples: list[Example], max_length: int) -> TokenBatch:
    """Right-padded batch of examples with answer-only labels."""
    encoded = [encode_example(tokenizer, e, max_length) for e in examples]
    width = max(len(ids) for ids, _ in encoded)
    ids = torch.full((len(encoded), width), tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full((len(encoded), width), -100, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, (row_ids, row_labels) in enumerate(encoded):
        ids[row, : len(row_ids)] = torch.tensor(row_ids)
        labels[row, : len(row_labels)] = torch.tensor(row_labels)
        mask[row, : len(row_ids)] = 1  # from lengths: pad id may be a real token (SPEC pitfall 1)
    return TokenBatch(ids, mask, labels)


def index_stream(n: int, rng: random.Random) -> Iterator[int]:
    """Example indices forever, each epoch a fresh seeded shuffle.

    Batches may span epochs so every global batch has the same size (needed to split it evenly
    across processes).
    """
    while True:
        order = list(range(n))
        rng.shuffle(order)
        yield from order


Derive = Callable[[list[Example], random.Random], list[Example]]
"""Builds a derived part's rows for one micro-batch from its forget examples and a seeded rng."""


class BatchSource:
    """Seeded batches of named parts (forget, retain, ...), split across micro-batch slots.

    ``derived`` maps a part name to a :data:`Derive` applied to each micro-batch's forget
    examples; its draws come from one rng seeded with ``seed``, consumed for every slot of the
    global batch in order, so all processes draw the same rows and a rerun draws them again.
    """

    def __init__(
        self,
        tokenizer: Any,
        parts: dict[str, list[Example]],
        batch_size: int,
        max_length: int,
        seed: int,
        derived: dict[str, Derive] | None = None,
    ) -> None:
        empty = [name for name, examples in parts.items() if not examples]
        if empty:
            raise UnlearnBenchError(f"cannot train on an empty {empty[0]!r} set")
        self.derived = dict(derived or {})
        if self.derived and "forget" not in parts:
            raise UnlearnBenchError("derived batch parts need a 'forget' part")
        self.tokenizer, self.parts = tokenizer, parts
        self.batch_size, self.max_length = batch_size, max_length
        self.streams = {
            name: index_stream(len(examples), random.Random(seed + i))
            for i, (name, examples) in enumerate(parts.items())
        }
        self.derive_rng = random.Random(f"derived-{seed}")

    def draw(self, n_slots: int) -> list[dict[str, list[Example]]]:
        """Every slot's examples by part: drawn parts first, then the derived ones."""
        bs = self.batch_size
        drawn = {name: [next(s) for _ in range(bs * n_slots)] for name, s in self.streams.items()}
        slots = [
            {name: [self.parts[name][i] for i in idx[k * bs : (k + 1) * bs]]
             for name, idx in drawn.items()}
            for k in range(n_slots)
        ]  # fmt: skip
        for rows in slots:
            for name, derive in self.derived.items():
                rows[name] = derive(rows["forget"], self.derive_rng)
        return slots

    def step(self, n_slots: int, slots: list[int]) -> list[UnlearnBatch]:
        """Draw one global batch (``n_slots`` micro-batches) and return those in ``slots``."""
        rows = self.draw(n_slots)
        return [
            UnlearnBatch(
                {
                    name: collate(self.tokenizer, examples, self.max_length)
                    for name, examples in rows[slot].items()
                }
            )
            for slot in slots
        ]
