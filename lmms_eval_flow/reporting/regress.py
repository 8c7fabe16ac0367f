"""The regression gate: compare new results with a committed baseline, doc by doc.

A baseline is two files written by ``lmms-eval-flow baseline``: the leaderboard rows
(``<name>.csv``) and every doc's outcome in them (``<name>.docs.csv``: score, attention edges,
reply). Every (checkpoint, task, regime) row of the baseline must be in the current results,
answering the same docs, and fails the gate when

- its accuracy moved significantly in **either** direction: a paired sign test on the docs whose
  score changed (McNemar's exact test for right/wrong scores), two-sided, below ``alpha``. Both
  runs answer the same docs, so only the changed docs carry information; a rise fails too, since
  a regime that blocks less than its rules say scores higher;
- any doc's attention edges differ: they are exact integers fixed by the regime's rules, so a
  change is a change of the regime's semantics, to be re-baselined on purpose;
- with ``exact`` (CI, on the deterministic CPU demo), any doc's reply differs.

A current row without a score (every sample failed) is NOT SCORED and fails, like a MISSING one.
A baseline that compares nothing (no rows), holds a row twice, or lacks its docs file is an error.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from scipy.stats import binomtest

from lmms_eval_flow.atomic import atomic_write_text
from lmms_eval_flow.reporting.doc_outcomes import DOC_COLUMNS, outcomes
from lmms_eval_flow.reporting.leaderboard import KEY, build_leaderboard

DEFAULT_ALPHA = 0.01
PASSING = ("ok", "new")  # every other status fails the gate
BASELINE_COLUMNS = [*KEY, "model", "metric", "score", "samples", "failed", "attention_edges", "attention_kept"]
SHOWN_FLIPS = 10  # doc ids listed per row in the table


def _listed(rows: pd.DataFrame) -> str:
    """The rows' checkpoint / task / regime, for a message: "toy / t / full; toy / t / random"."""
    return "; ".join(dict.fromkeys(" / ".join(map(str, key)) for key in rows[KEY].itertuples(index=False)))


def docs_path(baseline_path: str | Path) -> Path:
    """Where a baseline's per-doc outcomes are: ``name.csv`` -> ``name.docs.csv``."""
    path = Path(baseline_path)
    return path.with_name(f"{path.stem}.docs.csv")


def write_baseline(current_paths: list[str | Path], baseline_path: str | Path) -> list[Path]:
    """The baseline of the results named: the leaderboard rows and every doc's outcome."""
    table = build_leaderboard(current_paths)
    unscored = table[table["score"].isna()]
    if not unscored.empty:
        raise ValueError(f"rows without a score cannot be a baseline ({_listed(unscored)}); every sample of them failed")
    docs = outcomes(table)
    baseline_path = Path(baseline_path)
    baseline_path.parent.mkdir(parents=True, exist_ok=True)
    return [atomic_write_text(baseline_path, table[BASELINE_COLUMNS].to_csv(index=False)),
            atomic_write_text(docs_path(baseline_path), docs.astype({"attention_edges": "Int64"}).to_csv(index=False))]


def read_baseline(path: str | Path) -> pd.DataFrame:
    """The baseline's leaderboard rows; an error naming the file unless each row is there once, scored."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"baseline {path} does not exist; write one with lmms-eval-flow baseline")
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
        raise ValueError(f"baseline {path} holds the same checkpoint / task / regime more than once "
                         f"({_listed(repeated.sort_values(KEY))}); "
                         f"keep one row of each")
    unscored = baseline[pd.to_numeric(baseline["score"], errors="coerce").isna()]
    if not unscored.empty:
        raise ValueError(f"baseline {path} has rows without a score ({_listed(unscored)}); a baseline holds scored rows only")
    return baseline


def read_baseline_docs(path: str | Path) -> pd.DataFrame:
    """The per-doc outcomes beside the baseline ``path``."""
    docs = docs_path(path)
    if not docs.is_file():
        raise ValueError(f"baseline {path} has no per-doc outcomes ({docs}); write both with lmms-eval-flow baseline")
    table = pd.read_csv(docs, keep_default_na=False, na_values={"attention_edges": [""], "score": [""]},
                        dtype={"reply": str})
    missing = [column for column in [*KEY, *DOC_COLUMNS] if column not in table.columns]
    if missing:
        raise ValueError(f"{docs} lacks the column(s) {', '.join(missing)}; write it with lmms-eval-flow baseline")
    return table


def paired_p_value(rose: int, fell: int) -> float:
    """Two-sided exact sign test of ``rose`` docs better against ``fell`` worse (McNemar's exact
    test when scores are right or wrong); 1.0 when no doc changed."""
    changed = rose + fell
    return binomtest(rose, changed, 0.5).pvalue if changed else 1.0


def _flips(changed: pd.DataFrame) -> str:
    """The changed docs as ``+3 -17`` (better, worse), the first ``SHOWN_FLIPS`` of them."""
    marks = [f"{'+' if after > before else '-'}{doc}" for doc, before, after in
             changed[["doc_id", "score_baseline", "score_current"]].itertuples(index=False)]
    return " ".join(marks[:SHOWN_FLIPS]) + (f" (+{len(marks) - SHOWN_FLIPS} more)" if len(marks) > SHOWN_FLIPS else "")


def compare_docs(baseline: pd.DataFrame, current: pd.DataFrame, alpha: float, exact: bool) -> dict:
    """One row's doc-by-doc comparison: its counts and the problems that fail it."""
    docs = baseline.merge(current, on="doc_id", how="outer", suffixes=("_baseline", "_current"), indicator=True)
    problems = []
    only = docs["_merge"].value_counts()
    if only.get("left_only", 0) or only.get("right_only", 0):
        problems.append(f"DOCS DIFFER ({only.get('left_only', 0)} only in the baseline, "
                        f"{only.get('right_only', 0)} only now)")
    both = docs[docs["_merge"] == "both"]
    changed = both[both["score_current"] != both["score_baseline"]]
    rose = int((changed["score_current"] > changed["score_baseline"]).sum())
    fell = len(changed) - rose
    p_value = paired_p_value(rose, fell)
    if p_value < alpha:
        problems.append("ROSE" if rose > fell else "REGRESSED")
    edges_before, edges_now = both["attention_edges_baseline"], both["attention_edges_current"]
    edges_changed = int((~((edges_before == edges_now) | (edges_before.isna() & edges_now.isna()))).sum())
    if edges_changed:
        problems.append("EDGES CHANGED")
    replies_changed = int((both["reply_baseline"].fillna("") != both["reply_current"].fillna("")).sum())
    if exact and replies_changed:
        problems.append("REPLIES CHANGED")
    return {"docs_better": rose, "docs_worse": fell, "p_value": p_value, "docs_edges_changed": edges_changed,
            "docs_replies_changed": replies_changed, "flipped": _flips(changed), "problems": problems}


def compare(baseline: pd.DataFrame, baseline_docs: pd.DataFrame, current: pd.DataFrame, current_docs: pd.DataFrame,
            alpha: float = DEFAULT_ALPHA, exact: bool = False) -> pd.DataFrame:
    """Every baseline row with its current score and a status: ``ok``, ``new`` (a row only in
    the current results), or the problems that fail it, comma-separated: MISSING, NOT SCORED,
    DOCS DIFFER, REGRESSED, ROSE, EDGES CHANGED, REPLIES CHANGED."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha} must be a significance level in (0, 1), e.g. 0.01")
    columns = [*KEY, "metric", "score", "attention_edges"]
    merged = baseline[columns].merge(current[columns], on=KEY, how="outer", suffixes=("_baseline", "_current"),
                                     indicator="present_in")
    by_key = {name: dict(tuple(docs.groupby(KEY))) for name, docs in (("baseline", baseline_docs),
                                                                       ("current", current_docs))}
    rows = []
    for row in merged.itertuples(index=False):
        key = tuple(getattr(row, name) for name in KEY)
        entry = {**dict(zip(KEY, key)), "baseline": row.score_baseline, "current": row.score_current,
                 "edges_baseline": row.attention_edges_baseline, "edges_current": row.attention_edges_current}
        entry["metric"] = row.metric_baseline if isinstance(row.metric_baseline, str) else row.metric_current
        if row.present_in != "both" or pd.isna(row.score_current):
            status = {"left_only": "MISSING", "right_only": "new"}.get(row.present_in, "NOT SCORED")
            rows.append({**entry, "status": status})
            continue
        if row.metric_baseline != row.metric_current:
            raise ValueError(f"{entry}: the baseline scores {row.metric_baseline}, the current results "
                             f"{row.metric_current}; they cannot be compared")
        empty = pd.DataFrame(columns=DOC_COLUMNS)
        found = compare_docs(by_key["baseline"].get(key, empty)[DOC_COLUMNS], by_key["current"].get(key, empty)[DOC_COLUMNS],
                             alpha, exact)
        problems = found.pop("problems")
        rows.append({**entry, "change": row.score_current - row.score_baseline, **found,
                     "status": ", ".join(problems) or "ok"})
    columns = [*KEY, "metric", "baseline", "current", "change", "docs_better", "docs_worse", "p_value",
               "edges_baseline", "edges_current", "docs_edges_changed", "docs_replies_changed", "flipped", "status"]
    return pd.DataFrame(rows).reindex(columns=columns).sort_values(KEY).reset_index(drop=True)


def regress(baseline_path: str | Path, current_paths: list[str | Path], alpha: float = DEFAULT_ALPHA,
            exact: bool = False) -> tuple[pd.DataFrame, bool]:
    """The comparison table and whether the gate passes (every row ``ok`` or ``new``)."""
    baseline, baseline_docs = read_baseline(baseline_path), read_baseline_docs(baseline_path)
    current = build_leaderboard(current_paths)
    compared = current.merge(baseline[KEY], on=KEY)  # only these rows need their docs read
    table = compare(baseline, baseline_docs, current, outcomes(compared), alpha, exact)
    return table, table["status"].isin(PASSING).all()


def to_text(table: pd.DataFrame) -> str:
    """The whole comparison table as text, however wide or long."""
    with pd.option_context("display.width", 300, "display.max_columns", None, "display.max_rows", None,
                           "display.max_colwidth", 80):
        return table.to_string(index=False, float_format=lambda x: f"{x:.3f}", na_rep="-")
