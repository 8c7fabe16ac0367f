"""The embedded default: two tiny Qwen2.5-VL checkpoints trained from scratch on a synthetic
temporal benchmark, one with known routing.

``clips`` renders the generated clips, ``benchmark`` generates the ``flow_temporal_toy``
questions, ``task`` is their lmms-eval task (prompts and scoring), ``train`` reproduces the
shipped weights: ``qwen2_5_vl_temporal_toy/`` (trained plainly) and ``qwen2_5_vl_known_answer_toy/``
(pathways planted in known layers, ``planting``); ``demo`` runs every regime on both (README's main
job), ``validate`` checks the analysis tools against the planted ranges, and
``regime_arguments`` / ``video_arguments`` give the settings the demo runs a checkpoint with.
May import: every sub-package of lmms_eval_flow but the tasks folder, which imports the toy.

The papers' settings are stated for a 28-layer LM (Qwen2.5-VL-7B). A toy with another depth
carries them scaled to its own depth in its ``flow_regimes.json`` (written by ``train``):
layer l of 28 becomes layer ceil(l * depth / 28), so every range keeps its place in the depth.
They are passed as explicit model arguments, so the leaderboard's regime labels name them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from lmms_eval_flow.engine.regimes import EXIT_DEFAULTS, PUBLISHED, STAGED_DEFAULTS

# The folder names are the checkpoints' names in leaderboards.
CHECKPOINT_DIR = Path(__file__).resolve().parent / "qwen2_5_vl_temporal_toy"
KNOWN_ANSWER_DIR = Path(__file__).resolve().parent / "qwen2_5_vl_known_answer_toy"
CHECKPOINTS = (KNOWN_ANSWER_DIR, CHECKPOINT_DIR)
REGIMES_FILE = "flow_regimes.json"
TRAINING_FILE = "training.json"
# The plain toy's video settings: 56x56 frames, 8 sampled frames, so a clip is 4 temporal patches
# of 2x2 merged tokens (16 video tokens).
VIDEO_ARGS = {"max_pixels": 3136, "min_pixels": 3136, "max_num_frames": 8}
PAPERS_DEPTH = 28


def papers_settings() -> dict[str, dict[str, str]]:
    """The regimes' settings for a 28-layer LM: Map the Flow's row for a Qwen2.5-7B LM and
    Causality Matters' staged and exit layers for Qwen2.5-VL-7B."""
    effective = next(row.ranges for row in PUBLISHED if row.depth == PAPERS_DEPTH)
    return {"effective": effective, "random": effective, "staged": STAGED_DEFAULTS,
            "temporal_exit": {"exit_layer": str(EXIT_DEFAULTS["exit_layer"])}}


def scaled_settings(depth: int) -> dict[str, dict[str, str]]:
    """``papers_settings`` moved to a ``depth``-layer LM: layer l becomes ceil(l * depth / 28)."""
    def layer(text: str) -> str:
        return str(math.ceil(int(text) * depth / PAPERS_DEPTH))

    return {regime: {name: "-".join(map(layer, value.split("-"))) for name, value in settings.items()}
            for regime, settings in papers_settings().items()}


def regime_arguments(checkpoint: str | Path, regime: str) -> dict[str, str]:
    """The model arguments ``regime`` runs with on ``checkpoint``: none for a 28-layer LM (the
    engine's defaults are the papers'), else those of its ``flow_regimes.json``."""
    path = Path(checkpoint) / REGIMES_FILE
    return json.loads(path.read_text())["settings"].get(regime, {}) if path.exists() else {}


def video_arguments(checkpoint: str | Path) -> dict:
    """The video settings ``checkpoint`` was trained with (its ``training.json``), which the demo
    passes as model arguments so that evaluation sees the frames training saw; the plain toy's
    for a checkpoint without a record (say, a tiny one)."""
    path = Path(checkpoint) / TRAINING_FILE
    return json.loads(path.read_text())["video_args"] if path.exists() else dict(VIDEO_ARGS)


def planted_ranges(checkpoint: str | Path) -> dict[str, str] | None:
    """The pathway ranges planted in ``checkpoint`` (its ``flow_regimes.json``), or None for a
    checkpoint trained without a plant."""
    path = Path(checkpoint) / REGIMES_FILE
    return json.loads(path.read_text()).get("planted") if path.exists() else None
