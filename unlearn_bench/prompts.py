"""Prompt formatting shared by training and evaluation, so both see the same tokens.

Chat style renders the question through the model's chat template (tokenised without extra
special tokens, since the template already has them); tag style writes explicit tags and the
continuation gets a leading space so the answer's first word tokenises as it would in running
text. Question and answer are always tokenised separately (SPEC pitfall 3).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from unlearn_bench.backends.base import Message
from unlearn_bench.tasks import PromptSpec

ChatRenderer = Callable[[list[Message]], str]


@dataclass(frozen=True)
class FormattedPrompt:
    context: str
    add_special_tokens: bool
    answer_prefix: str  # prepended to every continuation scored or trained after this context


def format_prompt(spec: PromptSpec, question: str, chat: ChatRenderer) -> FormattedPrompt:
    if spec.style == "chat":
        messages = [Message("system", spec.system)] if spec.system else []
        messages.append(Message("user", question))
        return FormattedPrompt(chat(messages), False, "")
    return FormattedPrompt(f"{spec.question_tag}{question}{spec.answer_tag.rstrip(' ')}", True, " ")


def tokenizer_chat(tokenizer: object) -> ChatRenderer:
    """A renderer from an HF tokenizer's chat template."""

    def render(messages: list[Message]) -> str:
        return tokenizer.apply_chat_template(  # type: ignore[attr-defined]
            [{"role": m.role, "content": m.content} for m in messages],
            add_generation_prompt=True,
            tokenize=False,
        )

    return render
