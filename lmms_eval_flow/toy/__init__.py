"""The embedded default: a tiny Qwen2.5-VL trained from scratch on a synthetic temporal benchmark.

``clips`` renders the generated clips, ``benchmark`` generates the ``flow_temporal_toy``
questions, ``task`` is their lmms-eval task (prompts and scoring), ``train`` reproduces the
shipped weights (``qwen2_5_vl_temporal_toy/``), ``demo`` runs every regime on them (README's main
job), and ``regime_arguments`` gives the layer settings the demo runs each regime with.
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

# The folder name is the checkpoint's name in leaderboards.
CHECKPOINT_DIR = Path(__file__).resolve().parent / "qwen2_5_vl_temporal_toy"
REGIMES_FILE = "flow_regimes.json"
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
