"""What every family's layout function shares: reading one row's token ids, runs of video
tokens, and the question and template after the video.

A family's layout function (``engine/families/<family>.py``) knows only where its video and
its frames are and where its user turn ends; ``layout_after_video`` turns that into a
``TokenLayout`` the same way for every family, so "question" means the same thing everywhere:
the user's text after the video (without the blank or special tokens that open it), up to the
end of the user turn, less the task's instruction where the user text opens or closes with it
(Map the Flow's code takes the question text and its options only). Whatever else follows the
video is template; the final position is last.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection
from dataclasses import dataclass

from lmms_eval_flow.engine.layout import TokenLayout, option_spans


def row_ids(forward_kwargs: dict, row: int) -> list[int]:
    """The token ids of one row of a forward batch, its padding left out."""
    ids, mask = forward_kwargs["input_ids"][row], forward_kwargs.get("attention_mask")
    if mask is not None:
        ids = ids[mask[row].bool()]
    return ids.tolist()


def runs_of(ids: list[int], token_id: int) -> list[tuple[int, int]]:
    """The maximal runs ``(start, stop)`` of ``token_id`` in ``ids``, in order."""
    runs: list[tuple[int, int]] = []
    for i, token in enumerate(ids):
        if token != token_id:
            continue
        if runs and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return runs


def video_span(ids: list[int], video_token_id: int) -> tuple[int, int] | None:
    """``(start, stop)`` of the sample's one run of video tokens; None without video. Several
    videos are refused: the token groups know one."""
    runs = runs_of(ids, video_token_id)
    if len(runs) > 1:
        raise ValueError("attention regimes need at most one video per sample; this sample has several")
    return runs[0] if runs else None


@dataclass(frozen=True)
class PromptText:
    """What a layout needs of the tokenizer (which ids are special, and the text of ids) and of
    the tasks: the texts of their instructions, read at every layout, so a harness may add a
    task's instruction to the collection when that task's prompts are built."""

    special_ids: frozenset[int]
    decode_ids: Callable[[list[int]], str]  # the tokenizer's ``decode``
    instructions: Collection[str] = ()

    @classmethod
    def of(cls, tokenizer, instructions: Collection[str] = ()) -> "PromptText":
        special = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)
        return cls(frozenset(special), tokenizer.decode, instructions)

    def decode(self, ids: list[int]) -> str:
        return self.decode_ids(ids)

    def pieces(self, ids: list[int]) -> list[str]:
        """The text each token adds, so that the pieces join into the decoded text. Decoding one
        token alone is not that for SentencePiece tokenizers, which drop a word's leading space."""
        pieces, before = [], ""
        for end in range(1, len(ids) + 1):
            text = self.decode(ids[:end])
            pieces.append(text[len(before):] if text.startswith(before) else self.decode(ids[end - 1:end]))
            before = text
        return pieces

    def is_text(self, token: int) -> bool:
        """Whether a token carries words: neither special nor blank."""
        return token not in self.special_ids and bool(self.decode([token]).strip())


def text_only_layout(length: int) -> TokenLayout:
    """The layout of a sample without video: prefix, then the last position."""
    return TokenLayout.from_spans(length, length - 1, [], (length - 1, length - 1))


def layout_after_video(ids: list[int], video_start: int, frame_sizes: list[int], turn_end: int,
                       text: PromptText) -> TokenLayout:
    """The layout of a prompt whose video (frames of ``frame_sizes`` tokens from ``video_start``)
    is followed by the user's text, which ends where the user turn does (``turn_end``).

    The question runs from the first word after the video to the last word before ``turn_end``,
    less an instruction it opens or closes with (``instruction_spans``), which is template; its
    option spans ("A. ..." lines) are found in its text.
    """
    video_stop = video_start + sum(frame_sizes)
    words = [i for i in range(video_stop, turn_end) if text.is_text(ids[i])]
    start, stop = (words[0], words[-1] + 1) if words else (turn_end, turn_end)
    pieces = text.pieces(ids[start:stop])
    instructions = [(start + a, start + b) for a, b in instruction_spans(pieces, text.instructions)]
    if instructions:  # the question is what is left: its own text's pieces
        inside = [i for i in words if not any(a <= i < b for a, b in instructions)]
        start, stop = (inside[0], inside[-1] + 1) if inside else (instructions[0][1],) * 2
        pieces = text.pieces(ids[start:stop])
    options = option_spans(pieces) if stop > start else []
    return TokenLayout.from_spans(len(ids), video_start, frame_sizes, (start, stop),
                                  [(start + first, start + last) for first, last in options], instructions)


def instruction_spans(pieces: list[str], instructions: Collection[str]) -> list[tuple[int, int]]:
    """Token spans ``(start, stop)`` of the instruction a user text (given as token texts) opens
    with and of the one it closes with: the longest of ``instructions`` that the text, stripped,
    starts or ends with. A span holds the tokens whose words lie wholly inside the instruction."""
    text = "".join(pieces)
    body_start, body_end = len(text) - len(text.lstrip()), len(text.rstrip())
    body = text[body_start:body_end]
    found = sorted({i.strip() for i in instructions if i.strip()}, key=len, reverse=True)
    opening = next((i for i in found if body.startswith(i)), None)
    closing = next((i for i in found if body.endswith(i) and len(i) <= len(body) - len(opening or "")), None)
    ranges = ([(body_start, body_start + len(opening))] if opening else []) + \
             ([(body_end - len(closing), body_end)] if closing else [])
    starts = [0, *itertools.accumulate(len(piece) for piece in pieces)]  # where each token's text starts
    words = [(t, starts[t] + len(piece) - len(piece.lstrip()), starts[t] + len(piece.rstrip()))
             for t, piece in enumerate(pieces) if piece.strip()]  # each token's text, blanks left out
    spans = []
    for low, high in ranges:
        inside = [t for t, first, end in words if low <= first and end <= high]
        if inside:
            spans.append((inside[0], inside[-1] + 1))
    return spans


def first_after(ids: list[int], token_id: int, start: int) -> int:
    """The first position of ``token_id`` from ``start`` on, or the last position if there is none."""
    return next((i for i in range(start, len(ids) - 1) if ids[i] == token_id), len(ids) - 1)
