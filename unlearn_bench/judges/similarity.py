"""Similarity to the original model's outputs on the same prompts (Yao et al. "Sim to Ori").

The original model is named in the task (``original: smollm2-135m``), or ``$original``: the
model this run started from, found through the evaluated checkpoint's RECIPE.json (an
unlearned checkpoint's ``start`` weights; a base or finetuned target model is its own
original, so its row compares it with itself). Its greedy outputs for
the very requests the evaluated model answered are generated through the response cache, so
they equal the original model's own evaluation outputs. A lineage check refuses an original
that is not where the evaluated model started (its weights, or the ``start`` weights hash in
the evaluated checkpoint's RECIPE.json), so a forgotten override cannot compare against the
wrong model; ``check_lineage: false`` turns it off explicitly.

- ``bleurt``: BLEURT(reference = original output, candidate = this output) with a bleurt-pytorch
  checkpoint folder (:mod:`unlearn_bench.judges.bleurt_compat`), the paper's measure.
- ``minilm``: cosine of all-MiniLM-L6-v2 embeddings, a clearly named stand-in when no BLEURT
  checkpoint is at hand; its numbers are not comparable with BLEURT's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.judges import SCORERS, ScoreItem, Scorer, ScorerContext
from unlearn_bench.judges.embed import MINILM, Embedder


class _OriginalOutputs(Scorer):
    """Shared part: the original model's outputs for the evaluated requests, lineage-checked."""

    def __init__(
        self, context: ScorerContext, original: str, backend: str = "hf",
        backend_args: dict[str, Any] | None = None, check_lineage: bool = True,
    ) -> None:  # fmt: skip
        super().__init__(context)
        self.original, self.backend_name = original, backend
        self.backend_args, self.check_lineage = dict(backend_args or {}), check_lineage
        self.original_identity: dict[str, Any] = {}

    def original_outputs(self, items: list[ScoreItem]) -> list[str]:
        from unlearn_bench.backends.base import BACKENDS
        from unlearn_bench.backends.cache import CachedBackend

        original = self.original
        if original == ORIGINAL:
            original = resolve_original(self.context.evaluated.identity())
        backend = CachedBackend(BACKENDS.get(self.backend_name)(original, **self.backend_args))
        try:
            self.original_identity = backend.identity()
            if self.check_lineage:
                check_lineage(self.context.evaluated.identity(), self.original_identity)
            texts = backend.generate([i.request for i in items])
        finally:
            backend.close()
        return [t.strip() for t in texts]

    def _identity(self, judge: str, **extra: Any) -> dict[str, Any]:
        return {
            "judge": judge,
            "original_model": self.original_identity.get("model"),
            "original_weights_sha256": self.original_identity.get("weights_sha256"),
            **extra,
        }


ORIGINAL = "$original"


def resolve_original(evaluated: dict[str, Any]) -> str:
    """The model an evaluated checkpoint was unlearned from, or the model itself.

    An unlearn checkpoint's RECIPE.json names its start by weights hash; the folder with that
    hash is searched among finished finetune checkpoints and converted models in the user
    cache (hashes are memoised), and a hub start (``hub:<id>``) is the hub id itself.
    """
    from unlearn_bench.models import weights_hash
    from unlearn_bench.paths import cache_dir

    path = Path(str(evaluated.get("model_path") or evaluated.get("model")))
    recipe_path = path / "RECIPE.json"
    recipe = json.loads(recipe_path.read_text()) if recipe_path.is_file() else {}
    if recipe.get("kind") != "unlearn":
        return str(path)
    start = str(recipe["start"])
    if start.startswith("hub:"):
        return start.removeprefix("hub:")
    candidates = sorted((cache_dir() / "checkpoints").glob("finetune-*/RECIPE.json"))
    candidates += sorted((cache_dir() / "models").glob("*/config.json"))
    for marker in candidates:
        folder = marker.parent
        if any(folder.glob("*.safetensors")) and weights_hash(folder) == start:
            return str(folder)
    raise UnlearnBenchError(
        f"similarity: cannot find the start model (weights {start[:12]}...) of {path} in the "
        "user cache; name it in scorers.similarity.original"
    )


def check_lineage(evaluated: dict[str, Any], original: dict[str, Any]) -> None:
    """The original must be the evaluated model itself or the start of its checkpoint."""
    start = original.get("weights_sha256")
    if start and evaluated.get("weights_sha256") == start:
        return
    recipe = Path(str(evaluated.get("model_path") or evaluated.get("model"))) / "RECIPE.json"
    if start and recipe.is_file() and json.loads(recipe.read_text()).get("start") == start:
        return
    raise UnlearnBenchError(
        f"similarity: original model {original.get('model')!r} is not where the evaluated model "
        f"{evaluated.get('model')!r} started; set scorers.similarity.original to that model"
    )


@SCORERS.register("bleurt")
class BleurtSimilarity(_OriginalOutputs):
    """BLEURT of this output against the original model's output."""

    kind = "bleurt"

    def __init__(self, context: ScorerContext, checkpoint: str, original: str,
                 batch_size: int = 16, **kwargs: Any) -> None:  # fmt: skip
        super().__init__(context, original, **kwargs)
        from unlearn_bench.judges.bleurt_compat import load_bleurt
        from unlearn_bench.models import weights_hash

        self.checkpoint, self.batch_size = checkpoint, batch_size
        self.model, self.tokenizer = load_bleurt(checkpoint)
        self.checkpoint_sha256 = weights_hash(Path(checkpoint).expanduser())

    def identity(self) -> dict[str, Any]:
        """The BLEURT checkpoint and its hash, with the original model's identity."""
        return self._identity("BLEURT (judges.bleurt_compat)", checkpoint=self.checkpoint,
                              checkpoint_sha256=self.checkpoint_sha256)  # fmt: skip

    def score(self, items: list[ScoreItem]) -> list[dict[str, Any]]:
        """BLEURT score of each output against the original output."""
        from unlearn_bench.judges.bleurt_compat import bleurt_scores

        references = self.original_outputs(items)
        candidates = [i.generation for i in items]
        values = bleurt_scores(self.model, self.tokenizer, references, candidates, self.batch_size)
        return [{"score": v, "original": r} for v, r in zip(values, references, strict=True)]


@SCORERS.register("minilm")
class MiniLMSimilarity(_OriginalOutputs):
    """Cosine of MiniLM embeddings of this and the original model's output."""

    kind = "minilm"

    def __init__(self, context: ScorerContext, original: str, embedder: str = MINILM,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(context, original, **kwargs)
        self.embedder = Embedder(embedder)

    def identity(self) -> dict[str, Any]:
        """The embedder's identity, with the original model's."""
        return self._identity("cosine of sentence embeddings (not BLEURT)", **self.embedder.info)

    def score(self, items: list[ScoreItem]) -> list[dict[str, Any]]:
        """Cosine similarity of each output with the original output."""
        references = self.original_outputs(items)
        ours = self.embedder.encode([i.generation for i in items])
        theirs = self.embedder.encode(references)
        # Unit-norm embeddings: the dot product is the cosine.
        values = (ours * theirs).sum(axis=1).tolist()
        return [{"score": float(v), "original": r} for v, r in zip(values, references, strict=True)]
