"""A tiny random Llama model and a byte-level BPE tokenizer, built locally with no download.

The tokenizer is trained on a few sentences plus the synthetic-people vocabulary so that tests
tokenise realistic text into a few dozen ids. Its chat template mimics SmolLM2's: turns end with
``<|im_end|>`` and the pad token *is* ``<|im_end|>``, so the padding pitfall from SPEC.md is live.
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

CORPUS = [
    "In which city was the author born? The author was born in a coastal town.",
    "What is the capital of France? The capital of France is Paris.",
    "Question: Who wrote the book? Answer: She wrote it in nineteen ninety.",
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,?!'\"-:;()",
]


def build_tiny_tokenizer(vocab_size: int = 384):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model_dir(path: Path, seed: int = 0) -> Path:
    """Write a 2-layer random Llama and its tokenizer to ``path`` (safetensors)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_vllm_tiny_model(path: Path, seed: int = 0, tied: bool = True) -> Path:
    """Like tests/tiny_model.py, with head_dim 64: vLLM's CPU attention kernels need it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=64, max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id, tie_word_embeddings=tied,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_lora_checkpoint(base_dir: Path, path: Path, seed: int = 1) -> Path:
    """A LoRA stage's folder layout over ``base_dir``: merged weights plus ``adapter/`` (random B,
    so the adapter changes the outputs), with the base's tokenizer files."""
    import peft
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    lora = peft.get_peft_model(
        AutoModelForCausalLM.from_pretrained(base_dir),
        peft.LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "o_proj"],
                        init_lora_weights=False),
    )  # fmt: skip
    lora.save_pretrained(path / "adapter")
    lora.merge_and_unload().save_pretrained(path)
    config = path / "adapter" / "adapter_config.json"
    config.write_text(
        config.read_text().replace(
            '"base_model_name_or_path": null', f'"base_model_name_or_path": "{base_dir}"'
        )
    )
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (base_dir / name).is_file():
            (path / name).write_bytes((base_dir / name).read_bytes())
    return path


if __name__ == "__main__":
    # `python tests/tiny_model.py DIR`: the same tiny model for CI's regression protocol.
    import sys

    build_tiny_model_dir(Path(sys.argv[1]))
