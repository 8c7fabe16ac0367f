"""The tokenizer side of the tiny checkpoints, shared by every family's builder: the built-in
training corpus, a byte-level BPE trained on it as a ``Qwen2Tokenizer``, and Qwen2-VL's chat
template. Training on a fixed corpus makes every tiny checkpoint's tokenizer deterministic.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator

from tokenizers import pre_tokenizers, trainers
from transformers import Qwen2Tokenizer

# Qwen2.5-VL's special tokens. The BPE trainer puts them first in the vocabulary, in this
# order, so <|endoftext|> is id 0 (the real checkpoint puts them after its 151k BPE tokens).
QWEN2_5_VL_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# The chat template of Qwen's Qwen2-VL / Qwen2.5-VL instruct checkpoints (split over lines
# only for reading; the pieces are concatenated with no whitespace between). It renders:
#   <|im_start|>system\nYou are a helpful assistant.<|im_end|>\n   (unless a system message comes first)
#   <|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>question<|im_end|>\n
#   <|im_start|>assistant\n                                          (add_generation_prompt)
# The processor later expands each <|image_pad|> / <|video_pad|> into one token per merged patch.
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}"
    "{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n"
    "{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}"
    "{{ content['text'] }}"
    "{% endif %}"
    "{% endfor %}"
    "<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "<|im_start|>assistant\n"
    "{% endif %}"
)

# The tokenizer's training text: the chat template's own words, typical benchmark
# instructions and many video-QA questions, so that prompts tokenize into whole-word
# tokens rather than long runs of single bytes.
_CHAT = ["system\nYou are a helpful assistant.", "user\n", "assistant\n"]
_INSTRUCTIONS = [
    "Answer with the option's letter from the given choices directly.",
    "Select the best answer to the following multiple-choice question based on the video.",
    "Respond with only the letter (A, B, C, D, or E) of the correct option.",
    "Options: (A) yes (B) no (C) maybe (D) none (E) all",
    "The best answer is: A. B. C. D. E.",
    "Frame 0 1 2 3 4 5 6 7 8 9 10 16 32 64 seconds, first, second, third, last, before, after, then.",
]
_COLOURS = ["red", "green", "blue", "yellow", "black", "white", "orange", "purple", "pink", "brown", "grey"]
_SHAPES = ["ball", "cube", "box", "circle", "square", "triangle", "cylinder", "sphere", "object", "person", "car"]
_DIRECTIONS = ["left", "right", "up", "down", "forward", "backward", "clockwise", "counterclockwise", "towards", "away"]
_ACTIONS = ["open", "close", "pick up", "put down", "throw", "catch", "push", "pull", "hold", "drop", "touch", "take"]
_QUESTIONS = [
    "Which {c} {s} moves {d} first?",
    "What colour is the {s} that moves {d}?",
    "How many {c} {s}s appear in the video?",
    "Does the {c} {s} move {d} before or after the other one?",
    "Is the {c} {s} moving {d}? Answer yes or no.",
    "Where is the {c} {s} at the end of the video?",
    "When does the {s} turn {d}?",
    "Why does the {c} {s} stop?",
]


def training_corpus() -> Iterator[str]:
    """Yield the built-in corpus; it is fixed, so training on it is deterministic."""
    yield from _CHAT
    yield from _INSTRUCTIONS
    for action, shape in itertools.product(_ACTIONS, _SHAPES):
        yield f"What does the person {action} after the {shape}? Did they {action} it first or last?"
    for template, colour, shape, direction in itertools.product(_QUESTIONS, _COLOURS, _SHAPES, _DIRECTIONS):
        yield template.format(c=colour, s=shape, d=direction)


def train_qwen2_tokenizer(extra_corpus: Iterable[str] = ()) -> Qwen2Tokenizer:
    """Train a byte-level BPE on the built-in corpus (plus ``extra_corpus``) and wrap it as a
    Qwen2Tokenizer.

    Training reuses the pipeline of an empty ``Qwen2Tokenizer`` (Qwen's split regex + byte-level
    pre-tokenizer), so the merges are learnt on exactly the pieces the final tokenizer will see.
    A model trained on some task passes that task's texts as ``extra_corpus``, so its words are
    whole tokens.
    """
    backend = Qwen2Tokenizer().backend_tokenizer
    trainer = trainers.BpeTrainer(
        vocab_size=1024,  # an upper bound: this corpus runs out of merges at about 600 tokens
        special_tokens=QWEN2_5_VL_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte stays encodable
        show_progress=False,
    )
    backend.train_from_iterator(itertools.chain(training_corpus(), extra_corpus), trainer)
    trained = json.loads(backend.to_str())["model"]
    return Qwen2Tokenizer(
        vocab=trained["vocab"],
        merges=[tuple(pair) for pair in trained["merges"]],
        unk_token=None,  # byte-level BPE never needs one, as in the real checkpoint
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=QWEN2_5_VL_SPECIAL_TOKENS[1:],
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
        model_max_length=131072,  # as the real tokenizer
    )
