"""What every unlearning method shares: the batch it receives and the registry it joins.

A method is one class in one file with a frozen config dataclass and ``loss(model, batch)``.
Shared arithmetic lives as pure functions in :mod:`unlearn_bench.methods.losses`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from unlearn_bench.registry import Registry

if TYPE_CHECKING:
    import torch

# Parts of an unlearning batch a method may ask for (``Method.needs``):
#   "forget"   forget question + forget answer (always present)
#   "retain"   retain / normal question + answer
#   "idk"      forget question + a refusal template answer (IdkPO / DPO, FLAT)
#   "mismatch" forget question + a random normal answer (GA+Mismatch)
#   "safe"     forget question + the task's safe response to it (SFT / DPO alignment baselines);
#              asking for it restricts "forget" to the rows that have one
#   "reference" a frozen copy theta0 of the starting model
BATCH_PARTS = ("forget", "retain", "idk", "mismatch", "safe")


@dataclass
class TokenBatch:
    """Right-padded token ids with answer-only labels (-100 elsewhere).

    ``attention_mask`` comes from sequence lengths, never from ``input_ids != pad_id``, because
    some models (SmolLM2) pad with their end-of-turn token, which also occurs inside prompts.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor

    def to(self, device: Any) -> TokenBatch:
        """The batch on ``device``."""
        return TokenBatch(
            self.input_ids.to(device), self.attention_mask.to(device), self.labels.to(device)
        )


@dataclass
class UnlearnBatch:
    """One optimisation step's data, by part name (see ``BATCH_PARTS``)."""

    parts: dict[str, TokenBatch] = field(default_factory=dict)

    def __getitem__(self, name: str) -> TokenBatch:
        return self.parts[name]

    def __contains__(self, name: object) -> bool:
        return name in self.parts

    def to(self, device: Any) -> UnlearnBatch:
        """Every part on ``device``."""
        return UnlearnBatch({k: v.to(device) for k, v in self.parts.items()})


class Method:
    """Base for unlearning methods: holds config, the optional frozen reference and step logs."""

    name: ClassVar[str] = ""
    needs: ClassVar[frozenset[str]] = frozenset({"forget"})
    config_cls: ClassVar[type]

    def __init__(self, config: Any, reference: torch.nn.Module | None = None) -> None:
        if "reference" in self.needs_for(config) and reference is None:
            raise ValueError(f"method {self.name!r} needs a frozen reference model")
        self.config = config
        self.reference = reference
        # Scalars the trainer writes into the training log after each step (forget loss, ...).
        self.logs: dict[str, float] = {}

    @classmethod
    def needs_for(cls, config: Any) -> frozenset[str]:
        """Batch parts (and "reference") this method needs under ``config``.

        Override when a config option changes them (a KL retain term needs the reference).
        """
        return cls.needs

    @classmethod
    def default_trainable(cls, config: Any) -> str | None:
        """Parameter-name regex of what this method trains by default; None: every parameter."""
        return None

    def loss(self, model: torch.nn.Module, batch: UnlearnBatch) -> torch.Tensor:
        """The loss to minimise on one batch (logged terms go into ``self.logs``)."""
        raise NotImplementedError

    def dpo_terms(
        self, model: torch.nn.Module, chosen: TokenBatch, rejected: TokenBatch, beta: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sigmoid DPO loss preferring ``chosen`` over ``rejected`` against the frozen reference.

        Returns (loss, per-row margin, chosen log-prob, rejected log-prob), sequence log-probs
        over answer tokens; the last three are for the method's logs.
        """
        import torch

        from unlearn_bench.methods.losses import dpo_loss, sequence_logprob

        assert self.reference is not None  # only methods that need "reference" call this

        def logprob(net: torch.nn.Module, part: TokenBatch) -> torch.Tensor:
            logits = net(input_ids=part.input_ids, attention_mask=part.attention_mask).logits
            return sequence_logprob(logits, part.labels)

        chosen_lp, rejected_lp = logprob(model, chosen), logprob(model, rejected)
        with torch.no_grad():
            ref_chosen, ref_rejected = (
                logprob(self.reference, chosen),
                logprob(self.reference, rejected),
            )
        loss = dpo_loss(chosen_lp, rejected_lp, ref_chosen, ref_rejected, beta)
        margin = (chosen_lp - ref_chosen) - (rejected_lp - ref_rejected)
        return loss, margin, chosen_lp, rejected_lp


METHODS: Registry[type[Method]] = Registry("method", indexed=True)


class WithRetainNLL(Method):
    """A forget objective plus ``retain_weight`` x NLL(retain) (NPO, SimNPO, IdkPO).

    Subclasses' configs carry ``retain_weight``; at 0 the retain part is neither asked for nor
    run, so a plain forget-only variant costs no retain forward pass.
    """

    @classmethod
    def needs_for(cls, config: Any) -> frozenset[str]:
        """Batch parts (and "reference") this configuration uses."""
        return cls.needs if config.retain_weight > 0 else cls.needs - {"retain"}

    def add_retain_nll(
        self, model: torch.nn.Module, batch: UnlearnBatch, forget_loss: torch.Tensor
    ) -> torch.Tensor:
        """``forget_loss`` + retain_weight x NLL(retain); logs ``retain_nll``."""
        from unlearn_bench.methods.losses import batch_nll  # here: this module stays torch-free

        if self.config.retain_weight == 0:
            return forget_loss
        retain = batch["retain"]
        logits = model(input_ids=retain.input_ids, attention_mask=retain.attention_mask).logits
        retain_nll = batch_nll(logits, retain.labels)
        self.logs["retain_nll"] = float(retain_nll.detach())
        return forget_loss + self.config.retain_weight * retain_nll
