"""Answer primers: the text a benchmark's own code starts the model's answer with, sent by flow models.

MVBench-format evaluations (TVBench's, Map the Flow's) write "Best option:(" as the start of the
assistant's turn and let the model continue it. A task names its primer on the prompt's text
(``task_utils.video_messages(..., primer=)``), where lmms-eval's chat protocol leaves it out, so
lmms-eval's own wrappers still get the user turn alone. A flow model adds it as a final assistant
turn (``with_primer``) and renders every conversation that ends in an assistant turn as that turn
continued (``ContinuingProcessor``: transformers' ``continue_final_message``), where lmms-eval's
wrappers would close it and open a fresh turn after it (``add_generation_prompt=True``). The
primer's tokens follow the user turn, so every family's layout draws them as template.
A benchmark's system text goes as a system turn (``video_messages(..., system=)``), which every
chat wrapper renders; ``ContinuingProcessor`` keeps it alone where a wrapper adds its own default.
"""

from __future__ import annotations


def named_on_text(messages: list[dict], field: str) -> list:
    """The values a task named on its prompt's text under ``field`` (``task_utils.video_messages``:
    ``instructions``, ``primer``, ``stated_frames``), where lmms-eval's chat protocol leaves them out."""
    return [content[field] for message in messages for content in message.get("content", [])
            if isinstance(content, dict) and field in content]


def primer_in(messages: list[dict]) -> str:
    """The primer a prompt's messages name on their text, or "" (none)."""
    named = set(named_on_text(messages, "primer")) - {""}
    if len(named) > 1:
        raise ValueError(f"a prompt names more than one answer primer: {sorted(named)}")
    return named.pop() if named else ""


def with_primer(messages: list[dict]) -> list[dict]:
    """The messages, with the primer they name as the start of the assistant's turn."""
    primer = primer_in(messages)
    if not primer:
        return messages
    return [*messages, {"role": "assistant", "content": [{"type": "text", "text": primer}]}]


def as_batch(conversation) -> tuple[list, bool]:
    """A chat-template call's conversations as a list, and whether it was given a batch of them
    (``apply_chat_template`` and qwen-vl-utils take one conversation or a list of them)."""
    batched = bool(conversation) and isinstance(conversation[0], (list, tuple))
    return (list(conversation) if batched else [conversation]), batched


def _one_system_turn(conversation):
    """The conversation with only the last of its leading system turns."""
    def is_system(message) -> bool:
        return isinstance(message, dict) and message.get("role") == "system"

    leading = next((i for i, message in enumerate(conversation) if not is_system(message)), len(conversation))
    return list(conversation[leading - 1:]) if leading > 1 else conversation


def _ends_in_answer(conversation) -> bool:
    return bool(conversation) and isinstance(conversation[-1], dict) and conversation[-1].get("role") == "assistant"


class ContinuingProcessor:
    """The loaded processor (or lmms-eval-facing wrapper of it), whose ``apply_chat_template`` asked
    for a generation prompt renders a conversation ending in an assistant turn as that turn
    continued; every other call and attribute is the wrapped processor's own.

    It also renders one system turn: lmms-eval's Qwen3-VL wrapper puts its own (``system_prompt``,
    "You are a helpful assistant." by default) before the messages a task built, and a task's
    system turn (a benchmark's system text) then replaces it, as a system prompt replaces a
    template's default, instead of following it as a second."""

    def __init__(self, processor):
        self.processor = processor

    def __getattr__(self, name):
        return getattr(self.processor, name)

    def __call__(self, *args, **kwargs):
        return self.processor(*args, **kwargs)

    def apply_chat_template(self, conversation, *args, **kwargs):
        apply = self.processor.apply_chat_template
        given, batched = as_batch(conversation)
        conversations = [_one_system_turn(turns) for turns in given]
        conversation = conversations if batched else conversations[0]
        if not kwargs.get("add_generation_prompt") or not any(map(_ends_in_answer, conversations)):
            return apply(conversation, *args, **kwargs)
        continued = {**kwargs, "add_generation_prompt": False, "continue_final_message": True}
        rendered = [apply(turns, *args, **(continued if _ends_in_answer(turns) else kwargs)) for turns in conversations]
        return rendered if batched else rendered[0]
