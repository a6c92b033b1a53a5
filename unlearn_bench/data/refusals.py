"""Refusal templates: the "I don't know" answers used by IdkPO / DPO and FLAT ("idk" part).

The built-in templates are the project's own sentences. ``load_refusals`` also reads a file with
one refusal per line, such as TOFU's ``idontknow.jsonl`` (plain text one per line despite its
extension); a line that is a JSON string literal is decoded, so a true JSONL of strings works too.
"""

from __future__ import annotations

import json
from pathlib import Path

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.paths import require_file

REFUSAL_TEMPLATES: tuple[str, ...] = (
    "I'm not able to answer that.",
    "I don't know the answer to that.",
    "I have no information about that.",
    "I can't help with that question.",
    "That is something I don't know.",
    "I'm afraid I can't answer that.",
    "I have no knowledge of that.",
    "I'm unable to provide an answer to that.",
    "Sorry, I don't have an answer for that.",
    "I don't have any details on that.",
    "That's not something I can tell you.",
    "I'm not sure, and I'd rather not guess.",
    "I can't say.",
    "I have nothing reliable to share about that.",
    "I'm not aware of the answer.",
    "That falls outside what I know.",
    "I don't have enough information to answer.",
    "I can't recall anything about that.",
    "I'd be guessing, so I won't answer.",
    "No answer comes to mind for that question.",
)


def _parse_line(line: str) -> str:
    text = line.strip()
    if text.startswith('"'):
        try:
            decoded = json.loads(text)
        except json.JSONDecodeError:
            return text
        if isinstance(decoded, str):
            return decoded.strip()
    return text


def load_refusals(path: str | Path | None) -> list[str]:
    """Return refusal sentences: the built-in templates for None, else one per non-blank line."""
    if path is None:
        return list(REFUSAL_TEMPLATES)
    file = require_file(Path(path), "refusal file")
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise UnlearnBenchError(f"refusal file is not UTF-8 text: {file} ({exc})") from exc
    refusals = [text for text in map(_parse_line, lines) if text]
    if not refusals:
        raise UnlearnBenchError(f"refusal file has no refusals (one per line expected): {file}")
    return refusals
