"""What the known-answer toy's planted routing predicts for each regime, checked on a demo's results.

The regimes that keep the planted pathways (``effective`` at the planted ranges, ``staged``'s
stage 2 after the planted cross-frame range, ``temporal_exit`` after the planted video ->
question range) must answer as ``full`` does, and ``random`` at the same edge count must not:

- ``full``: at least 0.90 overall and 0.85 on every question type;
- ``effective``: within 0.02 of ``full``, and not significantly below it by the paired sign
  test on the docs whose score changed (the gate's, ``regress.paired_p_value``, at 0.05);
- ``random``: at least 0.15 below ``full``;
- ``temporal_exit`` and ``staged`` stage 2: each within 0.02 of ``full``.
"""

from __future__ import annotations

import pandas as pd

from lmms_eval_flow.reporting.doc_outcomes import outcomes
from lmms_eval_flow.reporting.regress import paired_p_value

FULL_OVERALL, FULL_PER_TYPE, CLOSE, RANDOM_BELOW, SIGNIFICANCE = 0.90, 0.85, 0.02, 0.15, 0.05
# Which leaderboard row each target reads: the regime label's first word, and a piece it holds.
ROWS = {"effective": ("effective", ""), "random": ("random", ""), "temporal_exit": ("temporal_exit", ""),
        "staged stage 2": ("staged", "query_last_frame=none")}


def _row(rows: pd.DataFrame, name: str) -> pd.Series | None:
    regime, piece = ROWS[name]
    found = rows[rows["regime"].map(lambda label: label.split()[0] == regime and piece in label)]
    return found.iloc[0] if len(found) else None


def check_targets(table: pd.DataFrame, checkpoint: str) -> pd.DataFrame:
    """One row per target for ``checkpoint``'s rows of a leaderboard (``build_leaderboard``):
    what it asks, the measured figure, and whether it is met. A regime that did not run is a miss."""
    rows = table[table["checkpoint"] == checkpoint]
    full = rows[rows["regime"] == "full"]
    if full.empty:
        raise ValueError(f"the results hold no full run of {checkpoint}; the targets are stated against it")
    full = full.iloc[0]
    docs = outcomes(rows).set_index("doc_id")
    checks = [("full", f"overall >= {FULL_OVERALL}", f"{full['score']:.3f}", full["score"] >= FULL_OVERALL)]
    lowest_type = min(full["categories"], key=full["categories"].get)
    checks.append(("full", f"every type >= {FULL_PER_TYPE}", f"{lowest_type} {full['categories'][lowest_type]:.3f}",
                   full["categories"][lowest_type] >= FULL_PER_TYPE))
    for name in ROWS:
        row = _row(rows, name)
        delta = None if row is None else row["score"] - full["score"]
        if name == "random":
            wanted, met = f"<= full - {RANDOM_BELOW}", delta is not None and delta <= -RANDOM_BELOW
        else:
            wanted, met = f">= full - {CLOSE}", delta is not None and delta >= -CLOSE
        checks.append((name, wanted, "did not run" if row is None else f"{row['score']:.3f} ({delta:+.3f})", met))
        if name == "effective" and row is not None:
            theirs = docs[docs["regime"] == row["regime"]]["score"]
            ours = docs[docs["regime"] == "full"]["score"].reindex(theirs.index)
            rose, fell = int((theirs > ours).sum()), int((theirs < ours).sum())
            p_value = paired_p_value(rose, fell)
            checks.append((name, f"not significantly below full (paired sign test, p >= {SIGNIFICANCE})",
                           f"+{rose} -{fell} docs, p = {p_value:.3f}", fell <= rose or p_value >= SIGNIFICANCE))
    return pd.DataFrame(checks, columns=["regime", "target", "measured", "met"])
