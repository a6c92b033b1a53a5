"""Prompt formatting shared by training and evaluation, so both see the same tokens.

Chat style renders the question through the model's chat template (tokenised without extra
special tokens, since the template already has them); tag style writes explicit tags and the
continuation gets a leading space so the answer's first word tokenises as it would in running
text. Question and answer are always tokenised separately (SPEC pitfall 3).

ICL style (MUSE KnowMem, Shi et al. 2024) writes each of the record's in-context examples as
question tag, question, answer tag, answer and a blank line, then the question tag, the question
and the answer tag verbatim (MUSE: "Answer: " with its trailing space, as MUSE's evaluation code
builds it), with the tokenizer's special tokens added.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from unlearn_bench.backends.base import Message, render_chat
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.tasks import PromptSpec

ChatRenderer = Callable[[list[Message]], str]


@dataclass(frozen=True)
class FormattedPrompt:
    """A prompt ready for the model: context, special-token flag, answer prefix."""

    context: str
    add_special_tokens: bool
    answer_prefix: str  # prepended to every continuation scored or trained after this context


def format_prompt(
    spec: PromptSpec,
    question: str,
    chat: ChatRenderer,
    *,
    icl: Sequence[Mapping[str, str]] | None = None,
    images: int = 0,
) -> FormattedPrompt:
    """Format one question; ``icl`` feeds the "icl" style, ``images`` the chat turn's images."""
    if images and spec.style != "chat":
        raise UnlearnBenchError("image inputs need prompt style 'chat' (a vision chat template)")
    if spec.style == "chat":
        messages = [Message("system", spec.system)] if spec.system else []
        messages.append(Message("user", question, images=images))
        return FormattedPrompt(chat(messages), False, "")
    if spec.style == "icl":
        if not icl:
            raise UnlearnBenchError("prompt style 'icl' needs records with 'icl' shots")
        shots = "".join(
            f"{spec.question_tag}{s['question']}{spec.answer_tag}{s['answer']}\n\n" for s in icl
        )
        return FormattedPrompt(f"{shots}{spec.question_tag}{question}{spec.answer_tag}", True, "")
    if spec.style == "template":
        # str.replace, not str.format: questions may contain braces.
        return FormattedPrompt(
            spec.template.replace("{question}", question), True, spec.answer_prefix
        )
    return FormattedPrompt(f"{spec.question_tag}{question}{spec.answer_tag.rstrip(' ')}", True, " ")


def tokenizer_chat(tokenizer: object) -> ChatRenderer:
    """A renderer from an HF tokenizer's chat template."""
    source = str(getattr(tokenizer, "name_or_path", "?"))

    def render(messages: list[Message]) -> str:
        return render_chat(tokenizer, messages, True, source)

    return render
