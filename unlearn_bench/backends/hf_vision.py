"""Vision-language models in the HF backend: loading, multimodal chat prompts, generation.

A model whose config has a ``vision_config`` (Qwen2.5-VL, LLaVA, Idefics, ...) is loaded with
``AutoProcessor`` and ``AutoModelForImageTextToText`` instead of a causal LM. Chat turns that
carry images are rendered through the processor's chat template with one ``{"type": "image"}``
part per image before the text (MedForget's evaluation puts the image first too), so the
template writes the model's own image placeholders; the processor then expands them to image
tokens and turns the request's image files into pixel values.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import torch

from unlearn_bench.backends.base import GenerateRequest, Message
from unlearn_bench.errors import UnlearnBenchError


def is_vision_language(load_path: str, revision: str | None, trust_remote_code: bool) -> bool:
    """True when the model's config declares a vision tower (``vision_config``)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(
            load_path, revision=revision, trust_remote_code=trust_remote_code
        )
    except Exception:  # noqa: BLE001 - wrong-typed config.json raises library-specific errors
        return False  # the regular loader reports the real problem with a clear message
    return getattr(config, "vision_config", None) is not None


def load_vision_model(
    load_path: str,
    revision: str | None,
    device: torch.device,
    dtype: torch.dtype,
    trust_remote_code: bool,
) -> tuple[Any, Any]:
    """(model, processor) of a vision-language model, ready for left-padded batches."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(
            load_path, revision=revision, trust_remote_code=trust_remote_code
        )
        model = AutoModelForImageTextToText.from_pretrained(
            load_path, revision=revision, dtype=dtype, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnlearnBenchError(
            f"cannot load vision-language model {load_path!r}: {first}"
        ) from None
    tokenizer = processor.tokenizer
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # generation continues every row at the same position
    return model.to(device).eval(), processor  # type: ignore[arg-type]


def render_chat(processor: Any, messages: list[Message], add_generation_prompt: bool) -> str:
    """A chat prompt whose turns hold their images as placeholder parts before the text."""
    conversation = [
        {
            "role": m.role,
            "content": [{"type": "image"}] * m.images + [{"type": "text", "text": m.content}],
        }
        for m in messages
    ]
    return str(
        processor.apply_chat_template(
            conversation, add_generation_prompt=add_generation_prompt, tokenize=False
        )
    )


def decode_images(encoded: tuple[str, ...]) -> list[Any]:
    """PIL RGB images from base64 image files; a file PIL cannot read is a clear error."""
    from PIL import Image, UnidentifiedImageError

    images = []
    for i, item in enumerate(encoded):
        try:
            images.append(Image.open(io.BytesIO(base64.b64decode(item))).convert("RGB"))
        except (ValueError, UnidentifiedImageError) as exc:
            raise UnlearnBenchError(
                f"image {i} of a request is not a readable image: {exc}"
            ) from None
    return images


@torch.no_grad()
def generate_batch(
    model: Any, processor: Any, requests: list[GenerateRequest], device: torch.device
) -> list[str]:
    """Generate for requests sharing generation parameters; returns the new text only."""
    params = requests[0]
    images = [image for r in requests for image in decode_images(r.images)]
    inputs = processor(
        text=[r.prompt for r in requests],
        images=images or None,
        padding=True,
        add_special_tokens=params.add_special_tokens,
        return_tensors="pt",
    ).to(device)
    sampling = params.temperature > 0
    if sampling:
        torch.manual_seed(params.seed)
    tokenizer = processor.tokenizer
    output = model.generate(
        **inputs,
        max_new_tokens=params.max_new_tokens,
        do_sample=sampling,
        temperature=params.temperature if sampling else None,
        top_p=params.top_p if sampling else None,
        top_k=None,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    new_tokens = output[:, inputs["input_ids"].shape[1] :]
    return [str(t) for t in processor.batch_decode(new_tokens, skip_special_tokens=True)]
