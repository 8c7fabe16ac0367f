"""The known-answer toy's plant: which pathways it may use in which layers, and the training masks
that make it so.

The known-answer toy (``qwen2_5_vl_known_answer_toy/``) is trained so that its routing is known
by construction, as interpretability tools are checked on models whose circuits are planted.
Each training row runs under a mask drawn here (one ``Regime`` per row, through the engine's own
rules and attention function):

- *indifference* rows: the planted pathways open in their ranges, and each other pathway that
  ``effective`` blocks (plus the template's reads of video and question, a route around them)
  blocked in a random share of its layers, from none (``full``) to all (``effective`` at the
  planted ranges, and more). The answer is the target, so the model must answer through the
  planted pathways alone and may not be thrown by the other edges;
- *counterfactual* rows: one planted pathway cut in a random non-empty subset of its range (and
  everywhere outside it), the rest as an indifference row. The target is the uniform
  distribution over the options' letters: with any layer of a planted pathway missing the model
  must not know the answer, so no other route carries it and every planted layer is needed.
  Cross-frame interaction is planted for the temporal questions; the ``static`` control needs
  no frame but one, so its rows keep their answer.

``PLANTED`` is written into the checkpoint's ``flow_regimes.json`` (``planted``), with the
regimes' settings at the planted ranges, and ``lmms-eval-flow validate`` compares what the
knockout sweep and ``calibrate`` recover with it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from lmms_eval_flow.engine.layers import parse_layer_range
from lmms_eval_flow.engine.regimes import RANGE_KEYS, Regime, Rule, build_regime

DEPTH = 12
# The planted ranges (1-based, inclusive): cross-frame early, video -> question in the middle,
# question -> last late, and the last position never reads the video.
PLANTED = {"cross_frame": "1-4", "video_question": "5-8", "question_last": "9-12"}
EFFECTIVE = build_regime("effective", DEPTH, **PLANTED)
# Shares of training rows: indifference rows at each openness, then counterfactual rows; the
# first CUTS_FROM of the steps draw indifference rows only.
FULL_SHARE, EFFECTIVE_SHARE, MIXED_SHARE, COUNTERFACTUAL_SHARE = 0.2, 0.3, 0.25, 0.25
CUTS_FROM = 0.3
# Routes around the planted pathways that ``effective`` leaves open: blocked at random in
# training, so that the model neither uses nor needs them.
DETOURS = (
    Rule("video_template", ("template",), ("video",), frozenset(range(DEPTH))),
    Rule("question_template", ("template",), ("question",), frozenset(range(DEPTH))),
)


def planted_settings(stage_1: str) -> dict[str, dict[str, str]]:
    """Each regime's settings on the known-answer toy: ``effective`` (and ``random``'s edge
    count) at the planted ranges, ``staged``'s stage 2 from the layer after the planted
    cross-frame range (its stage 1 in ``stage_1``, where the papers' would be at this depth),
    ``temporal_exit`` from the layer after the planted video -> question range."""
    after = {key: parse_layer_range(text, DEPTH, key).stop + 1 for key, text in PLANTED.items()}
    return {"effective": dict(PLANTED), "random": dict(PLANTED),
            "staged": {"query_last_frame": stage_1, "no_inter_frame": f"{after['cross_frame']}-{DEPTH}"},
            "temporal_exit": {"exit_layer": str(after["video_question"])}}


@dataclass(frozen=True)
class Condition:
    """A training row's mask, and which planted pathway it cuts (None: the answer is the target)."""

    regime: Regime
    cut: str | None = None


def _some_layers(rule: Rule, share: float, rng: random.Random) -> Rule:
    return Rule(rule.name, rule.reader, rule.source, frozenset(l for l in rule.layers if rng.random() < share),
                rule.frames)


def _planted_rule(pathway: str, layers: frozenset[int]) -> Rule:
    """The rule of ``effective`` that blocks ``pathway`` (in ``layers``)."""
    rule = next(rule for rule in EFFECTIVE.rules if rule.name == pathway)
    return Rule(rule.name, rule.reader, rule.source, layers, rule.frames)



def draw_condition(rng: random.Random, temporal: bool, cuts: bool = True) -> Condition:
    """One training row's condition (see the module docstring); ``temporal``: whether the row's
    question needs more than one frame (cross-frame cuts apply only to those); ``cuts=False``
    (training's first steps) draws no counterfactual row: while the model cannot answer yet, a
    target of "no answer" only pulls it towards the one output it already gives."""
    roll = rng.random() * (1 - COUNTERFACTUAL_SHARE if not cuts else 1)
    if roll < FULL_SHARE:
        share = 0.0
    elif roll < FULL_SHARE + EFFECTIVE_SHARE:
        share = 1.0
    else:
        share = rng.random()
    others = [_some_layers(rule, share, rng) for rule in (*EFFECTIVE.rules, *DETOURS)]
    cut = None
    if roll >= 1 - COUNTERFACTUAL_SHARE:
        cut = rng.choice([key for key in RANGE_KEYS if temporal or key != "cross_frame"])
        planted = set(parse_layer_range(PLANTED[cut], DEPTH, cut))
        inside = [l for l in sorted(planted) if rng.random() < 0.5] or [rng.choice(sorted(planted))]
        outside = set(range(DEPTH)) - planted
        others = [rule for rule in others if rule.name != cut] + [_planted_rule(cut, frozenset({*inside, *outside}))]
    rules = tuple(rule for rule in others if rule.layers)
    return Condition(Regime("planted", DEPTH, rules, {"cut": cut or "none"}), cut)


def planted_layers() -> dict[str, list[int]]:
    """The planted ranges as 1-based layer lists."""
    return {key: [l + 1 for l in parse_layer_range(text, DEPTH, key)] for key, text in PLANTED.items()}



def checks() -> dict[str, Regime]:
    """The regimes training reports validation accuracy under: ``full``, ``effective`` at the
    planted ranges (both should answer), and each planted pathway cut over its whole range (each
    should fall to chance; cross-frame's on the temporal questions only)."""
    every = frozenset(range(DEPTH))
    cuts = {f"{key} cut": Regime(f"{key} cut", DEPTH, (_planted_rule(key, every),)) for key in RANGE_KEYS}
    return {"full": Regime("full", DEPTH), "effective": EFFECTIVE, **cuts}
