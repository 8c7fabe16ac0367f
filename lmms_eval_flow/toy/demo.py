"""The main job on the embedded default: every regime through the real lmms-eval CLI, then
the leaderboard.

The embedded default is the toy shipped in ``lmms_eval_flow/toy/`` (a tiny Qwen2.5-VL trained
on ``flow_temporal_toy``; ``python -m lmms_eval_flow.toy.train`` reproduces it), so its accuracy
under each regime says something: what blocking attention edges costs a model that answers
temporal questions well under full attention.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from lmms_eval_flow.reporting.leaderboard import build_leaderboard, to_markdown, write_leaderboard
from lmms_eval_flow.engine.regimes import REGIMES
from lmms_eval_flow.harness.runner import run_lmms_eval
from lmms_eval_flow.harness.runner import TASKS_DIR
from lmms_eval_flow.toy import CHECKPOINT_DIR, regime_arguments
from lmms_eval_flow.toy.train import VIDEO_ARGS

TASK = "flow_temporal_toy"
# Every regime at the checkpoint's settings, plus staged's stage 2 alone (the setting Causality
# Matters reports as costing almost nothing).
RUNS: tuple[tuple[str, dict[str, str]], ...] = (
    ("full", {}),
    ("effective", {}),
    ("random", {}),
    ("staged", {}),
    ("staged", {"query_last_frame": "none"}),
    ("temporal_exit", {}),
)


def run_demo(output: Path, regimes: tuple[str, ...] = REGIMES, device: str = "cpu", limit: int | None = None,
             model_dir: Path = CHECKPOINT_DIR) -> pd.DataFrame:
    """Evaluate ``model_dir`` on ``flow_temporal_toy`` under each run of ``regimes``; write and
    return the leaderboard.

    The model runs in float32 (``dtype=float32``): on a CPU without bfloat16 arithmetic that is
    several times faster than lmms-eval's bfloat16, and the toy was trained in float32.
    """
    output = Path(output)
    common = {"device": device, "device_map": device, "dtype": "float32", **VIDEO_ARGS}
    extra = ["--limit", str(limit)] if limit else []
    runs = [(regime, variant) for regime, variant in RUNS if regime in regimes]
    paths = []
    for i, (regime, variant) in enumerate(runs, 1):
        started = time.monotonic()
        settings = {**regime_arguments(model_dir, regime), **variant}
        label = " ".join([regime, *(f"{key}={value}" for key, value in settings.items())])
        print(f"[{i}/{len(runs)}] regime={label}: lmms-eval on {TASK} ...", flush=True)
        model_args = ",".join(f"{key}={value}" for key, value in
                              {"pretrained": model_dir, "regime": regime, **settings, **common}.items())
        folder = output / "_".join([regime, *(f"{key}-{value}" for key, value in variant.items())])
        run_lmms_eval("qwen2_5_vl_flow", model_args, TASK, TASKS_DIR, folder, *extra)
        paths += sorted(folder.rglob("*_results.json"), key=lambda p: p.stat().st_mtime)[-1:]
        print(f"      done in {time.monotonic() - started:.0f} s", flush=True)
    table = build_leaderboard(paths)
    print(to_markdown(table))
    print(f"\nleaderboard written to {', '.join(map(str, write_leaderboard(table, output)))}")
    return table
