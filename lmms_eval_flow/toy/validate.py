"""Check the analysis tools against a known answer: the knockout sweep and ``calibrate`` on the
known-answer toy, whose pathways were planted in known layers (``toy.planting``).

``lmms-eval-flow validate`` sweeps cross_frame, video_question and question_last over every
layer (``--window`` layers blocked around each centre, 1 by default: a planted range is 4
layers, and a wider window centred outside a range would reach into it), applies calibrate's
rule (``--interval`` layers, below ``--threshold`` %) and prints, per pathway, the planted and
recovered ranges with precision (recovered layers that were planted / recovered layers) and
recall (planted layers recovered / planted layers). It exits non-zero when a pathway misses
the targets: precision 1.0 (no recovered layer outside its range) and recall at least 0.6.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lmms_eval_flow.analysis.calibrate import DEFAULT_THRESHOLD, interval_means, kept_range
from lmms_eval_flow.analysis.knockout import SweepFolder, sweep
from lmms_eval_flow.atomic import atomic_write_text
from lmms_eval_flow.engine.regimes import RANGE_KEYS
from lmms_eval_flow.toy import KNOWN_ANSWER_DIR, planted_ranges, video_arguments
from lmms_eval_flow.toy.demo import TASK

PRECISION_TARGET, RECALL_TARGET = 1.0, 0.6
DEFAULT_WINDOW, DEFAULT_INTERVAL = 1, 1


def layers_of(text: str | None) -> set[int]:
    """'5-8' -> {5, 6, 7, 8}; None (nothing recovered) -> {}."""
    if text is None:
        return set()
    first, last = (int(x) for x in text.split("-"))
    return set(range(first, last + 1))


def score_recovery(summary: pd.DataFrame, planted: dict[str, str], depth: int, threshold: float = DEFAULT_THRESHOLD,
                   interval: int = DEFAULT_INTERVAL) -> pd.DataFrame:
    """Per pathway: planted and recovered range, precision, recall, and whether both meet the targets.

    A pathway with no interval below the threshold recovers nothing: precision is undefined (NaN)
    and recall 0, a miss."""
    rows = []
    for key in RANGE_KEYS:
        found = kept_range(interval_means(summary, key, depth, interval), threshold)
        recovered = found[0] if found else None
        got, want = layers_of(recovered), layers_of(planted[key])
        precision = len(got & want) / len(got) if got else float("nan")
        recall = len(got & want) / len(want)
        rows.append({"pathway": key, "planted": planted[key], "recovered": recovered or "none",
                     "precision": precision, "recall": recall,
                     "passed": bool(got) and precision >= PRECISION_TARGET and recall >= RECALL_TARGET})
    return pd.DataFrame(rows)


def validate(output: str | Path, checkpoint: str | Path = KNOWN_ANSWER_DIR, limit: int | None = None,
             window: int = DEFAULT_WINDOW, interval: int = DEFAULT_INTERVAL, threshold: float = DEFAULT_THRESHOLD,
             device: str = "cpu") -> pd.DataFrame:
    """Sweep ``checkpoint`` into ``output/sweep``, score the recovery, write ``output/validation.csv``
    and return the table."""
    from lmms_eval_flow.analysis.first_token import Probe, quiet_logs

    planted = planted_ranges(checkpoint)
    if planted is None:
        raise ValueError(f"{checkpoint} has no planted ranges (its flow_regimes.json holds no 'planted'); "
                         f"validate needs a checkpoint trained with python -m lmms_eval_flow.toy.train --known-answer")
    if window < 1:
        raise ValueError(f"--window {window} must be at least 1 layer")
    output = Path(output)
    model_args = ",".join(f"{key}={value}" for key, value in {
        "pretrained": checkpoint, "device": device, "device_map": device, "dtype": "float32",
        **video_arguments(checkpoint)}.items())
    folder = SweepFolder(output / "sweep")
    folder.begin(dict(model="qwen2_5_vl_flow", model_args=model_args, task=TASK, limit=limit, window=window), RANGE_KEYS)
    quiet_logs()
    probe = Probe("qwen2_5_vl_flow", model_args, TASK, limit=limit)
    folder.record(depth=probe.depth, regime=probe.regime.describe())
    summary = sweep(probe, RANGE_KEYS, window, folder)
    table = score_recovery(summary, planted, probe.depth, threshold, interval)
    atomic_write_text(output / "validation.csv", table.to_csv(index=False))
    return table


def to_text(table: pd.DataFrame) -> str:
    shown = table.assign(precision=table["precision"].map(lambda x: "-" if pd.isna(x) else f"{x:.2f}"),
                         recall=table["recall"].map("{:.2f}".format),
                         passed=table["passed"].map({True: "yes", False: "NO"}))
    return shown.to_markdown(index=False)
