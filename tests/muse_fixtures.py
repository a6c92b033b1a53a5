"""Tiny MUSE-News-shaped and MedForget-shaped data written by the tests themselves.

The texts are invented here (nothing is copied from the benchmarks); the layouts are the
benchmarks' own: MUSE's ``data/news`` folder (and the hub repository's parquet layout), and
MedForget's ``<level>_level/{forget,retain}_set_all.parquet``.
"""

from __future__ import annotations

import gzip
import io
import json
import random
from pathlib import Path

WORDS = "the author was born in a coastal town and wrote the book in paris".split()


def article(seed: int, paragraphs: int = 3) -> str:
    """A short deterministic invented article: paragraphs of tiny-vocabulary sentences."""
    rng = random.Random(seed)
    out = []
    for _ in range(paragraphs):
        words = [rng.choice(WORDS) for _ in range(12)]
        out.append(" ".join(words).capitalize() + ".")
    return "\n\n".join(out)


def qa(seed: int) -> dict[str, str]:
    return {"question": f"Where was author {seed} born?", "answer": f"In town {seed}"}


def write_muse_dir(root: Path, with_retain: bool = False) -> Path:
    """MUSE's data/news layout with a few items per part; raw retain/holdout only on request."""
    files: dict[str, object] = {
        "raw/forget.json": [article(i) for i in range(4)] + [""],  # upstream has an empty one
        "verbmem/forget.json": [
            {"prompt": article(10 + i, 1), "gt": article(20 + i, 2)} for i in range(3)
        ],
        "knowmem/forget_qa.json": [qa(i) for i in range(3)],
        "knowmem/forget_qa_icl.json": [qa(100 + i) for i in range(2)],
        "knowmem/retain2_qa.json": [qa(200 + i) for i in range(3)],
        "knowmem/retain2_qa_icl.json": [qa(300 + i) for i in range(2)],
        "privleak/forget.json": [article(30 + i, 1) for i in range(4)],
        "privleak/retain2.json": [article(40 + i, 1) for i in range(4)],
        "privleak/holdout.json": [article(50 + i, 1) for i in range(4)],
    }
    for k in (2, 3, 4):
        files[f"sust/forget_{k}.json.gz"] = [article(60 + 10 * k + i) for i in range(2)]
    if with_retain:
        for name, seed in (("retain1", 70), ("retain2", 80), ("holdout", 90)):
            files[f"raw/{name}.json"] = [article(seed + i) for i in range(3)]
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        raw = json.dumps(data).encode()
        path.write_bytes(gzip.compress(raw) if rel.endswith(".gz") else raw)
    return root


def png_bytes(colour: tuple[int, int, int], size: int = 8) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


MEDFORGET_QA = [
    {"Question": "Describe the finding in this image.", "Answer": "A small nodule in the lung."},
    {"Question": "Which organ is shown? A) lung B) heart C) liver", "Answer": "A) lung"},
    {"Question": "The image shows the [blank].", "Answer": ["left", "lung"]},
]


def write_medforget_dir(root: Path, levels: tuple[str, ...] = ("institution", "patient",
                        "study", "section")) -> Path:  # fmt: skip
    """Two rows (images) per file, each with a generation, classification and cloze question."""
    import pandas as pd

    for li, level in enumerate(levels):
        for si, which in enumerate(("forget", "retain")):
            rows = []
            for r in range(2):
                image = png_bytes((40 * li, 100 * si, 60 * r))
                rows.append(
                    {"image": {"bytes": image, "path": None}, "metadata": json.dumps(MEDFORGET_QA)}
                )
            folder = root / f"{level}_level"
            folder.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(rows).to_parquet(folder / f"{which}_set_all.parquet")
    return root


VLM_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_vlm_dir(path: Path, seed: int = 0) -> Path:
    """A random 2-layer LLaVA (16-pixel CLIP tower) with the tiny tokenizer plus ``<image>``."""
    import torch
    from tiny_model import build_tiny_tokenizer
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )  # fmt: skip

    tok = build_tiny_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    tok.chat_template = VLM_CHAT_TEMPLATE
    vision = CLIPVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        image_size=16, patch_size=8, projection_dim=16,
    )  # fmt: skip
    text = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id,
    )  # fmt: skip
    config = LlavaConfig(
        vision_config=vision, text_config=text, vision_feature_layer=-1,
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
    )  # fmt: skip
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    images = CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
    processor = LlavaProcessor(
        image_processor=images, tokenizer=tok, patch_size=8, num_additional_image_tokens=1,
        vision_feature_select_strategy="default", chat_template=VLM_CHAT_TEMPLATE,
    )  # fmt: skip
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path
