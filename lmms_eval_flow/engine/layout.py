"""The token groups of one sample (SPEC "Token groups"): where prefix, video frames, question,
template and the last position lie in the language model's input sequence.

Every regime is stated over these groups, so a layout is all the engine needs to know about a
sample. Model families only find the video and the question in their own token ids and call
``TokenLayout.from_spans``; the synthetic layout serves planning (``lmms-eval-flow edges``) and tests.

The option spans of a multiple-choice question (SPEC ``options``) are parts of ``question``, not a
group of their own: every regime still sees them as question. Analysis rules may name them as
``options`` (every option span) or ``non_options`` (the rest of the question). Likewise the
task's instruction ("Only give the best option.") is part of ``template``, as Map the Flow's code
draws it, which analysis rules may name as ``instruction``.
"""

from __future__ import annotations

import bisect
import itertools
import re
from dataclasses import dataclass, replace
from functools import cached_property

import torch

GROUPS = ("prefix", "video", "question", "template", "last")
# Every position after the video: what SPEC calls `query`.
QUERY = ("question", "template", "last")
# Parts of `question` and of `template` that analysis rules may name (SPEC `options`, analysis only).
QUESTION_PARTS = ("options", "non_options")
TEMPLATE_PARTS = ("instruction",)

# An option marker: "A." / "A)" / "(A)" at a line start or after a space, followed by a space.
_OPTION_MARKER = re.compile(r"(?:^|(?<=\s))\(?([A-Z])[.)](?=\s)", re.MULTILINE)


def causal_edges(length: int) -> int:
    """Edges of full causal attention over ``length`` positions in one layer."""
    return length * (length + 1) // 2


@dataclass(frozen=True)
class Segment:
    """A run of consecutive positions of one group (and, for video, one frame)."""

    group: str
    start: int
    stop: int
    frame: int = -1  # frame index inside the video; -1 outside it
    option: int = -1  # option index inside the question (A=0, B=1, ...); -1 outside an option span
    instruction: bool = False  # template that is the task's instruction

    @property
    def size(self) -> int:
        return self.stop - self.start

    def belongs_to(self, group: str) -> bool:
        """Whether the segment is part of ``group``: one of GROUPS, QUESTION_PARTS or TEMPLATE_PARTS."""
        if group == "instruction":
            return self.instruction
        if group == "options":
            return self.option >= 0
        if group == "non_options":
            return self.group == "question" and self.option < 0
        return self.group == group


@dataclass(frozen=True)
class TokenLayout:
    """The ordered, gap-free segments covering positions 0..length-1 of one sample."""

    segments: tuple[Segment, ...]

    @classmethod
    def from_spans(
        cls,
        length: int,
        video_start: int,
        frame_sizes: list[int],
        question: tuple[int, int],
        options: list[tuple[int, int]] = (),
        instructions: list[tuple[int, int]] = (),
    ) -> "TokenLayout":
        """Build a layout from the video's start and per-frame token counts and the question span.

        Everything before the video is prefix; after it, the question span is question, the
        final position is last, and every other position is template. ``options`` are the
        ordered, disjoint spans of the answer options inside the question (see ``option_spans``);
        ``instructions`` the spans of the task's instruction, template before or after the question.
        """
        video_stop = video_start + sum(frame_sizes)
        q_start, q_stop = question
        if not 0 <= video_start <= video_stop < length:
            raise ValueError(f"video span {video_start}-{video_stop} does not fit a sequence of {length} positions")
        if not video_stop <= q_start <= q_stop <= length - 1:
            raise ValueError(
                f"question span {q_start}-{q_stop} must lie after the video (ends at {video_stop}) "
                f"and before the last position ({length - 1})"
            )
        segments = [Segment("prefix", 0, video_start)]
        start = video_start
        for frame, size in enumerate(frame_sizes):
            segments.append(Segment("video", start, start + size, frame))
            start += size
        segments.append(Segment("template", video_stop, q_start))
        start = q_start
        for option, (o_start, o_stop) in enumerate(options):
            if not start <= o_start < o_stop <= q_stop:
                raise ValueError(f"option span {o_start}-{o_stop} must lie inside the question {q_start}-{q_stop}, "
                                 f"after the previous option")
            segments += [Segment("question", start, o_start), Segment("question", o_start, o_stop, option=option)]
            start = o_stop
        segments += [
            Segment("question", start, q_stop),
            Segment("template", q_stop, length - 1),
            Segment("last", length - 1, length),
        ]
        for i_start, i_stop in instructions:
            if not (video_stop <= i_start <= i_stop <= q_start or q_stop <= i_start <= i_stop <= length - 1):
                raise ValueError(f"instruction span {i_start}-{i_stop} must lie between the video (ends at {video_stop}) "
                                 f"and the question {q_start}-{q_stop}, or between the question and the last position")
            segments = [part for segment in segments for part in _marked(segment, i_start, i_stop)]
        return cls(tuple(s for s in segments if s.size > 0))

    @classmethod
    def synthetic(cls, prefix: int, frames: int, tokens_per_frame: int, question: int, template: int) -> "TokenLayout":
        """prefix | video (frame after frame) | question | template | last (one position)."""
        for name, value in dict(prefix=prefix, frames=frames, tokens_per_frame=tokens_per_frame,
                                question=question, template=template).items():
            if value < 0:
                raise ValueError(f"{name}={value} must not be negative")
        video_stop = prefix + frames * tokens_per_frame
        length = video_stop + question + template + 1
        return cls.from_spans(length, prefix, [tokens_per_frame] * frames, (video_stop, video_stop + question))

    @property
    def length(self) -> int:
        return self.segments[-1].stop

    @cached_property
    def num_frames(self) -> int:
        return sum(1 for s in self.segments if s.group == "video")

    @cached_property
    def video_start(self) -> int:
        """First video position; where the video would start (the end of the prefix) when there is none."""
        return next(s.start for s in self.segments if s.group != "prefix")

    def size(self, group: str) -> int:
        return sum(s.size for s in self.segments if s.belongs_to(group))

    def positions(self, group: str) -> torch.Tensor:
        """Indices of every position of a group (or question part), in order."""
        spans = [torch.arange(s.start, s.stop) for s in self.segments if s.belongs_to(group)]
        return torch.cat(spans) if spans else torch.zeros(0, dtype=torch.long)

    @cached_property
    def segment_ids(self) -> torch.Tensor:
        """The segment index of every position, to expand segment-level rules to positions."""
        sizes = torch.tensor([s.size for s in self.segments])
        return torch.repeat_interleave(torch.arange(len(self.segments)), sizes)

    def describe(self) -> str:
        return ", ".join(f"{g}={self.size(g)}" for g in GROUPS) + f", frames={self.num_frames}"


def _marked(segment: Segment, start: int, stop: int) -> list[Segment]:
    """A template segment split so that its positions in ``start..stop`` are instruction."""
    if segment.group != "template" or stop <= segment.start or segment.stop <= start:
        return [segment]
    inside = (max(start, segment.start), min(stop, segment.stop))
    return [replace(segment, stop=inside[0]), replace(segment, start=inside[0], stop=inside[1], instruction=True),
            replace(segment, start=inside[1])]


def option_spans(pieces: list[str]) -> list[tuple[int, int]]:
    """Token spans ``(start, stop)`` of the lettered options of a question given as token texts.

    An option starts at a marker "A." / "A)" / "(A)" (at a line start or after a space) and
    ends before the next marker or at the end of its line, trailing spaces excluded. Markers
    must run A, B, C, ... from A, so a stray capital letter is no option; a question without
    markers has no option spans. A token that straddles a boundary belongs to the option it touches.
    """
    text = "".join(pieces)
    starts, expected = [], "A"
    for match in _OPTION_MARKER.finditer(text):
        if match.group(1) == expected:
            starts.append(match.start())
            expected = chr(ord(expected) + 1)
    ends = list(itertools.accumulate(len(piece) for piece in pieces))  # where each token's text ends
    spans = []
    for start, next_start in zip(starts, starts[1:] + [len(text)]):
        stop = start + len(text[start:next_start].split("\n", 1)[0].rstrip())
        spans.append((bisect.bisect_right(ends, start), bisect.bisect_right(ends, stop - 1) + 1))
    return spans
