"""Each doc's outcome in a leaderboard row: its score, its attention edges and its reply.

The regression gate compares runs doc by doc, since both answer the same docs: an aggregate
hides a regime that trades right answers for wrong ones, and the edges of a sample are exact
integers a regime's rules fix. lmms-eval writes every doc's metrics and reply to a samples file
beside the results JSON (``<date>_samples_<task>.jsonl``, with ``--log_samples``), which is
where they are read from.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from lmms_eval_flow.reporting.leaderboard import KEY

DOC_COLUMNS = ["doc_id", "score", "attention_edges", "reply"]


def samples_file(results_file: str | Path, task: str) -> Path:
    """The samples file lmms-eval writes beside ``results_file`` for ``task``."""
    results_file = Path(results_file)
    return results_file.with_name(f"{results_file.name.removesuffix('_results.json')}_samples_{task}.jsonl")


def _reply(sample: dict) -> str:
    reply = sample.get("filtered_resps")
    while isinstance(reply, list) and reply:  # lmms-eval nests replies of several requests per doc
        reply = reply[0]
    return "" if reply is None else str(reply)


def _edges(sample: dict) -> float:
    """A sample's edges; NaN where none ran (a failed sample) or the model reports none."""
    edges = sample.get("attention_edges")
    return float(edges) if isinstance(edges, (int, float)) and not isinstance(edges, bool) else math.nan


def row_outcomes(source: str | Path, task: str, metric: str) -> pd.DataFrame:
    """One row per doc of ``task`` in the run of ``source`` (its results JSON): ``DOC_COLUMNS``."""
    path = samples_file(source, task)
    if not path.is_file():
        raise ValueError(f"{path} is missing: the gate compares each doc's outcome, read from lmms-eval's samples "
                         f"file; run lmms-eval with --log_samples")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            sample = json.loads(line)
            score = sample[metric]
            rows.append({"doc_id": int(sample["doc_id"]), "score": float(score), "attention_edges": _edges(sample),
                         "reply": _reply(sample)})
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path} line {number} is not a sample with doc_id and a numeric {metric!r} "
                             f"({type(error).__name__}: {error})") from None
    outcomes = pd.DataFrame(rows, columns=DOC_COLUMNS)
    repeated = outcomes["doc_id"][outcomes["doc_id"].duplicated()].tolist()
    if repeated:
        raise ValueError(f"{path} holds doc(s) {repeated[:10]} more than once; one sample per doc is compared")
    return outcomes


def outcomes(table: pd.DataFrame) -> pd.DataFrame:
    """The docs of every scored row of a leaderboard (``build_leaderboard``), keyed by ``KEY``."""
    frames = [row_outcomes(row.source, row.task, row.metric).assign(**{key: getattr(row, key) for key in KEY})
              for row in table[table["score"].notna()].itertuples(index=False)]
    if not frames:
        return pd.DataFrame(columns=[*KEY, *DOC_COLUMNS])
    return pd.concat(frames, ignore_index=True)[[*KEY, *DOC_COLUMNS]]
