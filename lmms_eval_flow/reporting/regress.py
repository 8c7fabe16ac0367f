"""The accuracy gate: compare new results with a committed baseline, row by row.

A baseline is a leaderboard CSV (``lmms-eval-flow demo`` writes one; ``results/baselines/``
holds the committed ones). Every (checkpoint, task, regime) row of the baseline must be in the
current results, and its score may not drop by more than both

- ``tolerance`` (absolute), and
- ``z`` standard errors of the difference of two binomial proportions with the two rows' sample
  counts, sqrt(p_b (1 - p_b) / n_b + p_c (1 - p_c) / n_c),

so a 50-doc task may wobble by a doc or two while a large one is held tightly. Each proportion
is estimated with one added success and one added failure ((k + 1) / (n + 2)), so a perfect or
zero score still has a standard error and a single flipped doc on a small task is not a
regression. Scores must be proportions (accuracies); a metric outside 0..1 is an error. A
current row without a score (every sample failed) is NOT SCORED and fails the gate, like a
MISSING one. A baseline that compares nothing (no rows), or holds a row twice, is an error.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from lmms_eval_flow.reporting.leaderboard import KEY, build_leaderboard

DEFAULT_TOLERANCE = 0.02
DEFAULT_Z = 3.0
FAILING = ("REGRESSED", "MISSING", "NOT SCORED")  # statuses that fail the gate


def difference_stderr(base: float, base_n: int, current: float, current_n: int) -> float:
    """Standard error of the difference of two accuracies over ``base_n`` and ``current_n`` docs."""
    def variance(score: float, n: int) -> float:
        smoothed = (score * n + 1) / (n + 2)
        return smoothed * (1 - smoothed) / n

    return math.sqrt(variance(base, base_n) + variance(current, current_n))


def read_baseline(path: str | Path) -> pd.DataFrame:
    """The baseline leaderboard CSV; an error naming the file unless each row is there once, scored."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"baseline {path} does not exist; write one with lmms-eval-flow demo (leaderboard.csv)")
    try:
        baseline = pd.read_csv(path)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise ValueError(f"baseline {path} cannot be read as a leaderboard CSV: {error}") from None
    missing = [column for column in [*KEY, "metric", "score", "samples"] if column not in baseline.columns]
    if missing:
        raise ValueError(f"baseline {path} lacks the column(s) {', '.join(missing)}; it must be a leaderboard CSV")
    if baseline.empty:
        raise ValueError(f"baseline {path} has a header and no rows, so the gate would compare nothing")
    repeated = baseline[baseline.duplicated(KEY, keep=False)]
    if not repeated.empty:
        rows = "; ".join(sorted({" / ".join(map(str, key)) for key in repeated[KEY].itertuples(index=False)}))
        raise ValueError(f"baseline {path} holds the same checkpoint / task / regime more than once ({rows}); "
                         f"keep one row of each")
    unscored = baseline[pd.to_numeric(baseline["score"], errors="coerce").isna()]
    if not unscored.empty:
        rows = "; ".join(" / ".join(map(str, key)) for key in unscored[KEY].itertuples(index=False))
        raise ValueError(f"baseline {path} has rows without a score ({rows}); a baseline holds scored rows only")
    return baseline


def compare(baseline: pd.DataFrame, current: pd.DataFrame, tolerance: float = DEFAULT_TOLERANCE,
            z: float = DEFAULT_Z) -> pd.DataFrame:
    """Every baseline row with its current score and a status: ok, improved, REGRESSED, MISSING or
    NOT SCORED.

    ``allowed_drop`` is the larger of ``tolerance`` and ``z`` standard errors: a drop beyond it
    exceeds both, which is what makes a row REGRESSED. Rows only in ``current`` are listed as new.
    """
    if tolerance < 0 or z < 0:
        raise ValueError(f"tolerance ({tolerance}) and z ({z}) must not be negative")
    merged = baseline[[*KEY, "metric", "score", "samples"]].merge(
        current[[*KEY, "metric", "score", "samples"]], on=KEY, how="outer", suffixes=("_baseline", "_current"),
        indicator="present_in")
    rows = []
    for row in merged.itertuples(index=False):
        entry = {key: getattr(row, key) for key in KEY}
        entry["metric"] = row.metric_baseline if isinstance(row.metric_baseline, str) else row.metric_current
        entry.update(baseline=row.score_baseline, current=row.score_current, samples_baseline=row.samples_baseline,
                     samples_current=row.samples_current)
        if row.present_in == "left_only":
            rows.append({**entry, "status": "MISSING"})
            continue
        if row.present_in == "right_only":
            rows.append({**entry, "status": "new"})
            continue
        if pd.isna(row.score_current):
            rows.append({**entry, "status": "NOT SCORED"})
            continue
        if row.metric_baseline != row.metric_current:
            raise ValueError(f"{entry}: the baseline scores {row.metric_baseline}, the current results "
                             f"{row.metric_current}; they cannot be compared")
        scores = (row.score_baseline, row.score_current)
        if not all(0 <= score <= 1 for score in scores):
            raise ValueError(f"{entry}: {entry['metric']} {scores} is not a proportion in 0..1; the gate compares accuracies")
        if any(pd.isna(n) or n < 1 for n in (row.samples_baseline, row.samples_current)):
            raise ValueError(f"{entry}: a sample count is missing, so the noise of the score is unknown")
        drop = row.score_baseline - row.score_current
        allowed = max(tolerance, z * difference_stderr(row.score_baseline, int(row.samples_baseline),
                                                       row.score_current, int(row.samples_current)))
        status = "REGRESSED" if drop > allowed else "improved" if -drop > allowed else "ok"
        rows.append({**entry, "change": row.score_current - row.score_baseline, "allowed_drop": allowed, "status": status})
    columns = [*KEY, "metric", "baseline", "current", "change", "allowed_drop", "samples_baseline",
               "samples_current", "status"]
    return pd.DataFrame(rows).reindex(columns=columns).sort_values(KEY).reset_index(drop=True)


def regress(baseline_path: str | Path, current_paths: list[str | Path], tolerance: float = DEFAULT_TOLERANCE,
            z: float = DEFAULT_Z) -> tuple[pd.DataFrame, bool]:
    """The comparison table and whether the gate passes (no row REGRESSED, MISSING or NOT SCORED)."""
    table = compare(read_baseline(baseline_path), build_leaderboard(current_paths), tolerance, z)
    return table, not table["status"].isin(FAILING).any()


def to_text(table: pd.DataFrame) -> str:
    """The whole comparison table as text, however wide or long."""
    with pd.option_context("display.width", 250, "display.max_columns", None, "display.max_rows", None):
        return table.to_string(index=False, float_format=lambda x: f"{x:.3f}", na_rep="-")
