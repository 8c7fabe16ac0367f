"""The main job on the embedded default: every regime on each shipped checkpoint through the
real lmms-eval CLI, then one leaderboard of checkpoint x regime.

The embedded default is the two toys shipped in ``lmms_eval_flow/toy/`` (tiny Qwen2.5-VLs trained
on ``flow_temporal_toy``; ``python -m lmms_eval_flow.toy.train [--known-answer]`` reproduces
them), so their accuracy under each regime says something: on the known-answer toy, whether the
regimes do what its planted routing predicts; on the plainly trained one, what blocking
attention edges costs a model whose routing nobody chose.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pandas as pd

from lmms_eval_flow.reporting.leaderboard import build_leaderboard, to_markdown, write_leaderboard
from lmms_eval_flow.engine.regimes import REGIMES
from lmms_eval_flow.harness.runner import TASKS_DIR, run_lmms_eval_many
from lmms_eval_flow.toy import CHECKPOINTS, planted_ranges, regime_arguments, video_arguments
from lmms_eval_flow.toy.targets import check_targets

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
             model_dirs: tuple[Path, ...] = CHECKPOINTS) -> pd.DataFrame:
    """Evaluate each of ``model_dirs`` on ``flow_temporal_toy`` under each run of ``regimes``
    (into ``output/<checkpoint>/<run>``), in one lmms-eval process (``--config``, so its start-up
    and its task index are paid once); write and return the leaderboard.

    The models run in float32 (``dtype=float32``): on a CPU without bfloat16 arithmetic that is
    several times faster than lmms-eval's bfloat16, and the toys were trained in float32.
    """
    output = Path(output)
    runs, planned = [], []
    for model_dir in model_dirs:
        common = {"device": device, "device_map": device, "dtype": "float32", **video_arguments(model_dir)}
        for regime, variant in RUNS:
            if regime not in regimes:
                continue
            settings = {**regime_arguments(model_dir, regime), **variant}
            if (model_dir, regime, settings) in planned:
                continue  # the checkpoint's own settings are already this variant's
            planned.append((model_dir, regime, settings))
            model_args = {"pretrained": model_dir, "regime": regime, **settings, **common}
            folder = output / Path(model_dir).name / "_".join([regime, *(f"{k}-{v}" for k, v in variant.items())])
            runs.append({"model": "qwen2_5_vl_flow", "model_args": ",".join(f"{k}={v}" for k, v in model_args.items()),
                         "tasks": TASK, "include_path": TASKS_DIR, "output_path": folder,
                         **({"limit": limit} if limit else {})})
            label = " ".join([regime, *(f"{key}={value}" for key, value in settings.items())])
            print(f"[{len(runs)}] {Path(model_dir).name} regime={label} -> {folder}", flush=True)
    output.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print(f"lmms-eval on {TASK}: {len(runs)} runs in one process ...", flush=True)
    with tempfile.TemporaryDirectory() as scratch:  # the config names this machine's paths: not a result
        run_lmms_eval_many(runs, Path(scratch) / "demo_runs.yaml", quiet=False)
    print(f"done in {time.monotonic() - started:.0f} s", flush=True)
    paths = [sorted(Path(run["output_path"]).rglob("*_results.json"), key=lambda p: p.stat().st_mtime)[-1]
             for run in runs]
    table = build_leaderboard(paths)
    print(to_markdown(table))
    print(f"\nleaderboard written to {', '.join(map(str, write_leaderboard(table, output)))}")
    for model_dir in model_dirs:
        if planted_ranges(model_dir):
            print(f"\nWhat the planted routing of {Path(model_dir).name} predicts (lmms_eval_flow/toy/targets.py):\n")
            print(check_targets(table, Path(model_dir).name).to_markdown(index=False))
    return table
