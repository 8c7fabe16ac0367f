"""A leaderboard of checkpoint x regime x task, read from any lmms-eval results JSONs.

Rows come from the results files alone (ours or upstream lmms-eval models): the score and
its stderr, the sample count, and for flow models the attention edges and kept share. Each
row's score is compared with the ``full`` row of the same checkpoint and task; an upstream
lmms-eval model counts as ``full``, since it runs unmodified attention.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from lmms_eval.utils import simple_parse_args_string

from .regimes import PARAMETERS

COLUMNS = ["checkpoint", "model", "regime", "task", "metric", "score", "stderr", "delta_vs_full", "samples",
           "attention_edges", "attention_kept", "source"]


def _regime_label(model_args: dict) -> str:
    """The regime as run: its name plus any parameter given on the command line."""
    params = [f"{key}={model_args[key]}" for key in PARAMETERS if key in model_args]
    return " ".join([str(model_args.get("regime", "full")), *params])


def _main_metric(metrics: dict, higher_is_better: dict) -> str:
    """``accuracy`` where a task reports it, else its first higher-is-better metric."""
    names = [key.split(",")[0] for key in metrics if key.endswith(",none") and "_stderr" not in key]
    if "accuracy" in names:
        return "accuracy"
    preferred = [name for name in names if higher_is_better.get(name) is True]
    return (preferred or names)[0]


def result_rows(path: str | Path) -> list[dict]:
    data = json.loads(Path(path).read_text())
    config = data["config"]
    model_args = config.get("model_args") or {}
    if isinstance(model_args, str):
        model_args = simple_parse_args_string(model_args)
    rows = []
    for task, metrics in data["results"].items():
        if not any(key.endswith(",none") for key in metrics):
            continue  # a group header without its own scores
        metric = _main_metric(metrics, data.get("higher_is_better", {}).get(task, {}))
        rows.append({
            "checkpoint": Path(str(model_args.get("pretrained", config["model"]))).name,
            "model": config["model"],
            "regime": _regime_label(model_args),
            "task": task,
            "metric": metric,
            "score": metrics[f"{metric},none"],
            "stderr": metrics.get(f"{metric}_stderr,none"),
            "samples": data.get("n-samples", {}).get(task, {}).get("effective"),
            "attention_edges": metrics.get("attention_edges,none"),
            "attention_kept": metrics.get("attention_kept,none"),
            "source": str(path),
        })
    return rows


def build_leaderboard(paths: list[str | Path]) -> pd.DataFrame:
    table = pd.DataFrame([row for path in paths for row in result_rows(path)], columns=COLUMNS)
    full = table[table["regime"] == "full"].drop_duplicates(["checkpoint", "task"])
    baseline = full.set_index(["checkpoint", "task"])["score"]
    keys = list(zip(table["checkpoint"], table["task"]))
    table["delta_vs_full"] = [table["score"].iloc[i] - baseline[k] if k in baseline.index else None
                              for i, k in enumerate(keys)]
    table["_order"] = table["regime"].map(_regime_order)
    return table.sort_values(["checkpoint", "task", "_order"]).drop(columns="_order").reset_index(drop=True)


def _regime_order(label: str) -> str:
    """Regimes in SPEC's order (full first), variants of one regime together."""
    order = ["full", "effective", "random", "staged", "temporal_exit"]
    name = label.split(" ")[0]
    return f"{order.index(name) if name in order else len(order)}:{label}"


def to_markdown(table: pd.DataFrame) -> str:
    shown = table.drop(columns=["source", "model"])
    return shown.to_markdown(index=False, floatfmt=".4g")
