"""The attention regimes of SPEC as declarative rule sets over token groups and layer ranges.

A ``Rule`` blocks one group from reading another in some layers; a ``Regime`` is a list of
rules plus two strategies that say *how* (not *what*) is applied, so that no module branches on
a regime's name or settings: its mask draw (``mask_draw.py``: the rules' own pairs, or for
``random`` as many random ones) and its video strategy (``video_exit.py``: video kept and masked,
or for temporal exit by drop, video positions dropped from the sequence). ``build_regime`` turns
model arguments (as typed in lmms-eval's ``--model_args``) into a regime, validating them before
any model loads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from lmms_eval_flow.engine.layers import format_layer_range, parse_layer, parse_layer_range
from lmms_eval_flow.engine.layout import GROUPS, QUERY, Segment
from lmms_eval_flow.engine.mask_draw import RandomDraw, RuleDraw
from lmms_eval_flow.engine.video_exit import DropVideo, KeepVideo


@dataclass(frozen=True)
class Rule:
    """In ``layers`` (0-based), positions of the ``reader`` groups may not read the ``source`` groups.

    Groups are GROUPS or, for analysis, the question parts ``options`` / ``non_options``.
    ``frames`` narrows video sources: ``"earlier"`` blocks only frames before the reader's own
    (cross-frame attention), ``"not_last"`` only frames other than the video's last, an integer
    ``k`` only frame ``k`` (0-based, as SPEC's frame[0..F-1]).
    """

    name: str
    reader: tuple[str, ...]
    source: tuple[str, ...]
    layers: frozenset[int]
    frames: str | int = "any"

    def blocks(self, reader: Segment, source: Segment, last_frame: int) -> bool:
        if not any(map(reader.belongs_to, self.reader)) or not any(map(source.belongs_to, self.source)):
            return False
        if self.frames == "earlier":
            return source.frame < reader.frame
        if self.frames == "not_last":
            return source.frame != last_frame
        if isinstance(self.frames, int):
            return source.frame == self.frames
        return True


@dataclass(frozen=True)
class Regime:
    name: str
    depth: int
    rules: tuple[Rule, ...] = ()
    settings: dict[str, str] = field(default_factory=dict)
    # how the blocked pairs are drawn: the rules' own, or as many random ones (`random`)
    draw: RuleDraw | RandomDraw = RuleDraw()
    # whether video stays in the sequence, or leaves it from the exit layer on (`temporal_exit`, exit_by=drop)
    video: KeepVideo | DropVideo = KeepVideo()

    @property
    def applies_rules(self) -> bool:
        """Whether every layer's rules reach the attention as they are (a rule added to the regime
        then takes effect where it says)."""
        return self.draw.applies_rules and self.video.applies_rules

    def rules_at(self, layer: int) -> tuple[Rule, ...]:
        return tuple(rule for rule in self.rules if layer in rule.layers)

    def describe(self) -> str:
        details = ", ".join(f"{k}={v}" for k, v in self.settings.items())
        return f"{self.name} ({details})" if details else self.name


@dataclass(frozen=True)
class PublishedRanges:
    """One row of Map the Flow's published effective ranges (SPEC table), and how to tell the
    model it was measured on: its checkpoints' names, or its family at its depth."""

    model: str
    depth: int
    ranges: dict[str, str]
    checkpoints: tuple[str, ...] = ()  # lower-case pieces of the checkpoints' names
    model_types: tuple[str, ...] = ()  # config.model_type of the family, at ``depth`` layers


PUBLISHED = (
    PublishedRanges("VideoLLaMA3-7B (Qwen2.5-7B LM)", 28,
                    {"cross_frame": "1-15", "video_question": "6-20", "question_last": "21-28"},
                    ("videollama3-7b", "videollama3_7b"), ("video_llama_3",)),
    PublishedRanges("LLaVA-NeXT-7B video", 32,
                    {"cross_frame": "6-15", "video_question": "6-20", "question_last": "16-25"},
                    ("llava-next-video-7b", "llava-next-7b"), ("llava_next_video",)),
    PublishedRanges("Mini-InternVL-4B video", 32,
                    {"cross_frame": "6-15", "video_question": "6-20", "question_last": "11-30"},
                    ("mini-internvl",)),
    PublishedRanges("LLaVA-NeXT-13B video", 40,
                    {"cross_frame": "6-15", "video_question": "6-20", "question_last": "16-30"},
                    ("llava-next-video-13b", "llava-next-13b"), ("llava_next_video",)),
)
# Causality Matters' settings for Qwen2.5-VL-7B (28 layers).
STAGED_DEFAULTS = {"query_last_frame": "10-20", "no_inter_frame": "20-28"}
EXIT_DEFAULTS = {"exit_layer": 20, "exit_by": "drop"}
RANDOM_DEFAULTS = {"seed": 0, "keep": None, "block_ratio": None}
# The three pathway ranges of `effective`; a ranges file (``ranges=FILE``, written by
# ``lmms-eval-flow calibrate``) is JSON holding them as 1-based strings, plus `depth` and `provenance`.
RANGE_KEYS = ("cross_frame", "video_question", "question_last")

# The model arguments each regime takes.
REGIME_PARAMETERS = {
    "full": (),
    "effective": ("cross_frame", "video_question", "question_last", "ranges"),
    "random": ("cross_frame", "video_question", "question_last", "ranges", "seed", "keep", "block_ratio"),
    "staged": ("query_last_frame", "no_inter_frame"),
    "temporal_exit": ("exit_layer", "exit_by"),
}
REGIMES = tuple(REGIME_PARAMETERS)
PARAMETERS = tuple(dict.fromkeys(p for ps in REGIME_PARAMETERS.values() for p in ps))


def published_ranges(depth: int, model_type: str | None = None,
                     checkpoint: str | None = None) -> tuple[str, dict[str, str]]:
    """The published effective ranges for this model, and where they come from.

    A row applies when the checkpoint's name names its model, or the model is of its family at
    its depth. Otherwise the row of the closest published depth (ties: the shallower, then the
    first listed) is a guess, clipped to this depth, and says so (the flow model logs it).
    """
    name = (checkpoint or "").lower()
    for row in PUBLISHED:
        if row.depth == depth and (any(piece in name for piece in row.checkpoints) or model_type in row.model_types):
            return f"published for {row.model}", dict(row.ranges)
    row = min(PUBLISHED, key=lambda r: (abs(r.depth - depth), r.depth))
    return (f"a guess: none published for this model; the row of the closest published depth, {row.model} "
            f"({row.depth} layers)"), {key: _clip(key, text, depth) for key, text in row.ranges.items()}


def read_ranges_file(path: str, depth: int) -> tuple[str, dict[str, str]]:
    """The ranges of a ranges file, checked against this model's depth. Returns where they come
    from and the ranges (validated later with the other range arguments)."""
    try:
        content = json.loads(Path(path).read_text())
    except OSError as error:
        raise ValueError(f"ranges={path!r} cannot be read: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"ranges={path!r} is not JSON ({error}); write it with lmms-eval-flow calibrate") from None
    if not isinstance(content, dict):
        content = {}
    missing = [key for key in RANGE_KEYS if not isinstance(content.get(key), str)]
    if missing:
        raise ValueError(f"ranges={path!r} lacks {', '.join(missing)}: a ranges file holds "
                         f"{', '.join(RANGE_KEYS)} as 1-based ranges such as \"6-15\"")
    if content.get("depth", depth) != depth:
        raise ValueError(f"ranges={path!r} was calibrated for a {content['depth']}-layer language model; "
                         f"this model has {depth} layers")
    return f"file {path}", {key: content[key] for key in RANGE_KEYS}


def _clip(name: str, text: str, depth: int) -> str:
    """A default range cut to the model's depth; one that starts beyond it must be set by hand."""
    first, last = (int(x) for x in text.split("-"))
    if first > depth:
        raise ValueError(f"the default {name}={text} starts beyond this model's {depth} layers; set {name} explicitly")
    return f"{first}-{min(last, depth)}"


def build_regime(name: str, depth: int, *, model_type: str | None = None, checkpoint: str | None = None,
                 **params) -> Regime:
    """The regime ``name`` for a language model of ``depth`` layers, from model arguments.

    Unset parameters take SPEC's defaults (``effective``'s ranges: the row published for this
    model, told by ``model_type`` and ``checkpoint``, see ``published_ranges``); a parameter
    that the regime does not take, a malformed value or a range outside the model raises
    ``ValueError`` naming it.
    """
    if name not in REGIME_PARAMETERS:
        raise ValueError(f"regime={name!r} is not a regime; valid regimes: {', '.join(REGIMES)}")
    given = {k: v for k, v in params.items() if v is not None}
    for key in given:
        if key not in REGIME_PARAMETERS[name]:
            takers = [r for r, ps in REGIME_PARAMETERS.items() if key in ps]
            raise ValueError(
                f"{key}={given[key]!r} does not apply to regime={name}; it is a parameter of "
                f"{', '.join(takers) or 'no regime'}. regime={name} takes: "
                f"{', '.join(REGIME_PARAMETERS[name]) or 'no parameters'}"
            )
    if name == "full":
        return Regime("full", depth)
    if name in ("effective", "random"):
        return _pathway_regime(name, depth, given, model_type, checkpoint)
    if name == "staged":
        return _staged(depth, given)
    return _temporal_exit(depth, given)


def _all_layers(depth: int) -> frozenset[int]:
    return frozenset(range(depth))


def _pathway_regime(name: str, depth: int, given: dict, model_type: str | None, checkpoint: str | None) -> Regime:
    """Map the Flow's effective pathways: each flow allowed only in its range (SPEC `effective`)."""
    keys = RANGE_KEYS
    if "ranges" in given:
        source, defaults = read_ranges_file(given["ranges"], depth)
    elif all(key in given for key in keys):
        source, defaults = None, {}
    else:
        source, defaults = published_ranges(depth, model_type, checkpoint)
    ranges = {key: parse_layer_range(given[key] if key in given else defaults[key], depth, key) for key in keys}
    every = _all_layers(depth)
    cross, video_q, q_last = ranges["cross_frame"], ranges["video_question"], ranges["question_last"]
    rules = (
        Rule("cross_frame", ("video",), ("video",), every - set(cross), frames="earlier"),
        Rule("video_question", ("question",), ("video",), every - set(video_q)),
        Rule("question_last", ("last",), ("question",), every - set(q_last)),
        Rule("video_last", ("last",), ("video",), every),
        Rule("last_last", ("last",), ("last",), every),
        Rule("video_video_late", ("video",), ("video",), frozenset(range(video_q.stop, depth))),
        Rule("question_question_late", ("question",), ("question",), frozenset(range(q_last.stop, depth))),
    )
    settings = {key: format_layer_range(r) for key, r in ranges.items()}
    if source:
        settings["ranges_from"] = source
    if name == "effective":
        return Regime("effective", depth, rules, settings)

    seed = given.get("seed", RANDOM_DEFAULTS["seed"])
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed={seed!r} must be a non-negative integer")
    keep, block_ratio = given.get("keep"), given.get("block_ratio")
    if keep is not None and not (_is_number(keep) and 0 < keep <= 1):
        raise ValueError(f"keep={keep!r} must be a number in (0, 1]: the share of full causal edges to keep")
    if block_ratio is not None and not (_is_number(block_ratio) and 0 < block_ratio < 1):
        raise ValueError(f"block_ratio={block_ratio!r} must be a number in (0, 1): the share of full causal "
                         f"edges to block in every layer, as Map the Flow's --random_block_ratio")
    if keep is not None and block_ratio is not None:
        raise ValueError(f"keep={keep!r} and block_ratio={block_ratio!r} are two forms of the same count: "
                         f"give one (keep rounds the kept share, block_ratio truncates the blocked count)")
    settings["seed"] = str(seed)
    if keep is not None:
        settings = {"keep": str(keep), "seed": str(seed)}
    if block_ratio is not None:
        settings = {"block_ratio": str(block_ratio), "seed": str(seed)}
    draw = RandomDraw(seed, keep=None if keep is None else float(keep),
                      block_ratio=None if block_ratio is None else float(block_ratio))
    return Regime("random", depth, rules, settings, draw=draw)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _staged(depth: int, given: dict) -> Regime:
    """Causality Matters' staged sparse attention; a stage set to 'none' is off."""
    rules, settings = [], {}
    stages = {
        "query_last_frame": dict(reader=QUERY, source=("video",), frames="not_last"),
        "no_inter_frame": dict(reader=("video",), source=("video",), frames="earlier"),
    }
    for key, shape in stages.items():
        text = given[key] if key in given else _clip(key, STAGED_DEFAULTS[key], depth)
        if str(text).strip().lower() == "none":
            settings[key] = "none"
            continue
        layers = parse_layer_range(text, depth, key)
        rules.append(Rule(key, layers=frozenset(layers), **shape))
        settings[key] = format_layer_range(layers)
    if not rules:
        raise ValueError("regime=staged with both query_last_frame=none and no_inter_frame=none blocks nothing; use regime=full")
    return Regime("staged", depth, tuple(rules), settings)


def _temporal_exit(depth: int, given: dict) -> Regime:
    """From ``exit_layer`` on nothing reads video and video rows compute nothing (SPEC `temporal_exit`)."""
    exit_layer = parse_layer(given.get("exit_layer", EXIT_DEFAULTS["exit_layer"]), depth, "exit_layer")
    exit_by = given.get("exit_by", EXIT_DEFAULTS["exit_by"])
    if exit_by not in ("drop", "mask"):
        raise ValueError(
            f"exit_by={exit_by!r} is not valid; valid: drop (video leaves the sequence and KV cache), "
            f"mask (the masked reference: same answers, no saving)"
        )
    late = frozenset(range(exit_layer, depth))
    rules = (
        Rule("video_exit_reads", GROUPS, ("video",), late),
        Rule("video_exit_rows", ("video",), GROUPS, late),
    )
    settings = {"exit_layer": str(exit_layer + 1), "exit_by": exit_by}
    video = DropVideo(exit_layer) if exit_by == "drop" else KeepVideo()
    return Regime("temporal_exit", depth, rules, settings, video=video)
