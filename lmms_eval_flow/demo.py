"""The main job on the embedded default: every regime through the real lmms-eval CLI, then
the leaderboard.

Until the trained toy model exists, the embedded default is a tiny random Qwen2.5-VL built
on the fly and the ``flow_synthetic`` task: accuracies are chance-level, but every regime's
full path runs and its attention edges are real.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from .leaderboard import build_leaderboard, to_markdown
from .regimes import REGIMES
from .runner import run_lmms_eval
from .tasks import TASKS_DIR
from .tiny_models import make_tiny_model

# 56x56 frames, 8 sampled: 16 video tokens per clip, which keeps a CPU run to seconds per regime.
SMALL_VIDEO_ARGS = "max_pixels=3136,min_pixels=3136,max_num_frames=8"


def run_demo(output: Path, regimes: tuple[str, ...] = REGIMES, device: str = "cpu",
             limit: int | None = None) -> pd.DataFrame:
    output = Path(output)
    model_dir = output / "tiny-qwen2_5_vl"
    if not (model_dir / "config.json").exists():
        print(f"building a tiny random Qwen2.5-VL in {model_dir}", flush=True)
        make_tiny_model(model_dir)
    extra = ["--limit", str(limit)] if limit else []
    paths = []
    for i, regime in enumerate(regimes, 1):
        started = time.monotonic()
        print(f"[{i}/{len(regimes)}] regime={regime}: lmms-eval on flow_synthetic ...", flush=True)
        model_args = f"pretrained={model_dir},regime={regime},device={device},device_map={device},{SMALL_VIDEO_ARGS}"
        run_lmms_eval("qwen2_5_vl_flow", model_args, "flow_synthetic", TASKS_DIR, output / regime, *extra)
        paths += sorted((output / regime).rglob("*_results.json"))[-1:]
        print(f"      done in {time.monotonic() - started:.0f} s", flush=True)
    table = build_leaderboard(paths)
    (output / "leaderboard.md").write_text(to_markdown(table) + "\n")
    table.to_csv(output / "leaderboard.csv", index=False)
    print(to_markdown(table))
    print(f"\nleaderboard written to {output / 'leaderboard.md'} and {output / 'leaderboard.csv'}")
    return table
