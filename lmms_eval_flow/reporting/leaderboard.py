"""A leaderboard of checkpoint x regime x task, read from any lmms-eval results JSONs.

Rows come from the results files alone (ours or upstream lmms-eval models): the score and
its stderr, the sample count, and for flow models the failed samples, attention edges and kept
share, and the measured cost per sample (prefill seconds, KV cache bytes, attention FLOPs).
Each row's score is compared with the ``full`` row of the same checkpoint and task; an
upstream lmms-eval model counts as ``full``, since it runs unmodified attention. A task's
breakdown metrics (``accuracy_direction``, ... next to ``accuracy``) form a second table.

A row's ``note`` says what its score does not: that it has none (a task whose samples all
failed has no accuracy, never 0.0) or that more than ``max_failed_share`` of its samples failed
(they count as wrong answers). A value lmms-eval could not compute (stderr ``"N/A"`` on one doc)
is left empty. A file that is not a results JSON is refused by name before anything is written.

``write_leaderboard`` writes both as Markdown and CSV, and a self-contained HTML page (sortable
tables plus a plot of score against the kept share of attention edges or any other of ``PLOT_X``,
embedded as a PNG), each naming its results files relative to the folder it is written to.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from lmms_eval.utils import simple_parse_args_string

from lmms_eval_flow.atomic import atomic_write_text
from lmms_eval_flow.engine.regimes import PARAMETERS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# What a flow model reports beside the score, per sample: the attention it ran and what that cost.
FLOW_COLUMNS = ["attention_edges", "attention_kept", "prefill_seconds", "kv_cache_bytes", "attention_flops"]
COLUMNS = ["checkpoint", "model", "regime", "task", "metric", "score", "stderr", "delta_vs_full", "samples",
           "failed", *FLOW_COLUMNS, "note", "source"]
KEY = ["checkpoint", "task", "regime"]  # one row per key; the regression gate matches rows on it
COUNTS = ["samples", "failed"]
DEFAULT_MAX_FAILED_SHARE = 0.05  # failed samples score as wrong: beyond 5% the score says more about the data
# What the plot's x axis can show: each of FLOW_COLUMNS, by its axis label.
PLOT_X = {
    "attention_kept": "attention edges kept (share of full causal)",
    "attention_edges": "attention edges per sample (summed over layers)",
    "prefill_seconds": "prefill wall time per sample (s)",
    "kv_cache_bytes": "KV cache bytes per sample after the prefill",
    "attention_flops": "attention FLOPs per sample",
}
# The plot's (marker, fill) per regime: 22 regimes before two look alike.
MARKERS = [(marker, fill) for fill in ["full", "none"] for marker in "osD^vPX*hp<"]


def _regime_label(model_args: dict) -> str:
    """The regime as run: its name plus any parameter given on the command line."""
    params = [f"{key}={model_args[key]}" for key in PARAMETERS if key in model_args]
    return " ".join([str(model_args.get("regime", "full")), *params])


def _main_metric(metrics: dict, higher_is_better: dict) -> str:
    """``accuracy`` where a task reports or declares it (a task that scored nothing may lack its
    value), else its first higher-is-better metric."""
    names = [key.split(",")[0] for key in metrics if key.endswith(",none") and "_stderr" not in key]
    names = [name for name in dict.fromkeys([*names, *higher_is_better]) if name != "failed_samples"]
    if "accuracy" in names:
        return "accuracy"
    preferred = [name for name in names if higher_is_better.get(name) is True]
    return (preferred or names)[0]


def _number(value) -> float:
    """A metric's value as a float; NaN for what lmms-eval could not compute ("N/A", null, absent)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def _failed(metrics: dict):
    """How many samples failed: ``failed_samples`` is ``{"count": n, ...}``; None where the model
    does not report failures (an upstream model)."""
    value = metrics.get("failed_samples,none")
    count = value.get("count") if isinstance(value, dict) else value
    return None if math.isnan(_number(count)) else int(count)


def results_files(paths: list[str | Path]) -> list[Path]:
    """The results JSONs named, a folder standing for every ``*_results.json`` under it."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(path.rglob("*_results.json"))
            if not found:
                raise ValueError(f"{path} holds no lmms-eval results file (*_results.json)")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise ValueError(f"{path} is neither a results file nor a folder")
    return files


def read_results(path: str | Path) -> dict:
    """A results JSON, or an error naming the file and what it lacks."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} cannot be read as an lmms-eval results JSON: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not an lmms-eval results file: it holds a {type(data).__name__}, not an object")
    for key, needed in [("results", "the scores"), ("config", "the model and its arguments")]:
        if not isinstance(data.get(key), dict):
            raise ValueError(f"{path} is not an lmms-eval results file: it has no {key!r} object ({needed})")
    if "model" not in data["config"]:
        raise ValueError(f"{path} is not an lmms-eval results file: its 'config' does not name the model")
    return data


def result_rows(path: str | Path) -> list[dict]:
    data = read_results(path)
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
            "score": _number(metrics.get(f"{metric},none")),
            "stderr": _number(metrics.get(f"{metric}_stderr,none")),
            "samples": data.get("n-samples", {}).get(task, {}).get("effective"),
            "failed": _failed(metrics),
            **{column: _number(metrics.get(f"{column},none")) for column in FLOW_COLUMNS},
            "source": str(path),
            "categories": _categories(metrics, metric),
        })
    return rows


def _categories(metrics: dict, metric: str) -> dict[str, float]:
    """The task's per-category scores of its main metric (``accuracy_direction`` -> "direction")."""
    prefix = f"{metric}_"
    return {key.split(",")[0].removeprefix(prefix): value for key, value in metrics.items()
            if key.startswith(prefix) and key.endswith(",none") and "stderr" not in key
            and isinstance(value, (int, float))}


def _note(score: float, samples, failed, max_failed_share: float) -> str:
    """What a reader must know before reading the score."""
    counted = isinstance(samples, int) and samples > 0
    of = f"{failed} of {samples} samples failed" if counted else f"{failed} samples failed"
    if math.isnan(score):
        return "NOT SCORED" + (f": {of}" if failed else "")
    if failed and (not counted or failed / samples > max_failed_share):
        share = f" ({failed / samples:.0%} > {max_failed_share:.0%})" if counted else ""
        return f"FAILED SAMPLES: {of}{share}"
    return ""


def build_leaderboard(paths: list[str | Path], max_failed_share: float = DEFAULT_MAX_FAILED_SHARE) -> pd.DataFrame:
    """One row per checkpoint x regime x task of the results files (or folders) named.

    Two results for the same row (a rerun left in the same folder) are an error, since either
    could be the one meant.
    """
    if not 0 <= max_failed_share <= 1:
        raise ValueError(f"the share of failed samples {max_failed_share} must be in 0..1 (0.05 marks more than 5%)")
    rows = [row for path in results_files(paths) for row in result_rows(path)]
    for row in rows:
        row["note"] = _note(row["score"], row["samples"], row["failed"], max_failed_share)
    table = pd.DataFrame(rows, columns=[*COLUMNS, "categories"]).astype({column: "Int64" for column in COUNTS})
    repeated = table[table.duplicated(KEY, keep=False)]
    if not repeated.empty:
        listing = "; ".join(f"{key}: {', '.join(group['source'])}" for key, group in repeated.groupby(KEY))
        raise ValueError(f"several results for the same checkpoint, task and regime ({listing}); name one of each")
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


def category_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per-category scores (one column per category) of the rows whose task reports them."""
    return pd.DataFrame([{**dict(zip(KEY, key)), **scores}
                         for *key, scores in table[[*KEY, "categories"]].itertuples(index=False) if scores])


def _display(table: pd.DataFrame, missing) -> pd.DataFrame:
    """The table with ``missing`` for every value that is not there (no "nan" or "<NA>" shown)."""
    return table.astype(object).where(table.notna(), missing)


def to_markdown(table: pd.DataFrame) -> str:
    shown = _display(table.drop(columns=["source", "model", "categories"]), None).to_markdown(
        index=False, floatfmt=".4g", missingval="")
    per_category = category_table(table)
    if per_category.empty:
        return shown
    return f"{shown}\n\nScore per category:\n\n{per_category.to_markdown(index=False, floatfmt='.3f')}"


def check_plot_x(x: str) -> None:
    """Refuse an x axis the plot cannot draw, naming those it can."""
    if x not in PLOT_X:
        raise ValueError(f"cannot plot the score against {x!r}; valid: {', '.join(PLOT_X)}")


def plot_figure(table: pd.DataFrame, x: str = "attention_kept") -> Figure:
    """Score against ``x``, one of ``PLOT_X`` (the kept share of attention edges by default): a
    colour per checkpoint and task, a marker per regime, named in a legend below the axes, since
    text beside each point collides where two regimes keep nearly the same edges (``full`` and
    staged's stage 2) or two checkpoints share one.

    A row without edge counts (an upstream model, running plain attention) is drawn at a kept share
    of 1; against a measured cost, a row that did not measure it is not drawn.
    """
    check_plot_x(x)
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    figure = Figure(figsize=(8, 5), dpi=110, layout="constrained")
    axes = figure.add_subplot()
    scored = table[table["score"].notna()]  # rows NOT SCORED are not drawn
    if x == "attention_kept":
        scored = scored.assign(attention_kept=scored["attention_kept"].astype(float).fillna(1.0))
    else:
        scored = scored[scored[x].notna()]
    series = dict(zip(scored[["checkpoint", "task"]].drop_duplicates().itertuples(index=False, name=None),
                      itertools.cycle(f"C{i}" for i in range(10))))
    markers = dict(zip(scored["regime"].drop_duplicates(), itertools.cycle(MARKERS)))
    for row in scored.itertuples(index=False):
        marker, fill = markers[row.regime]
        axes.errorbar(getattr(row, x), row.score, yerr=0.0 if pd.isna(row.stderr) else row.stderr, capsize=3,
                      markersize=7, marker=marker, fillstyle=fill, color=series[(row.checkpoint, row.task)],
                      linestyle="none")
    axes.set_xlabel(PLOT_X[x])
    axes.set_ylabel("score (± stderr)")
    if x == "attention_kept":
        axes.set_xlim(max(0.0, table["attention_kept"].astype(float).fillna(1.0).min() - 0.1), 1.02)
    axes.grid(alpha=0.3)
    handles = [Line2D([], [], color=colour, linewidth=6, label=f"{checkpoint} / {task}")
               for (checkpoint, task), colour in series.items()]
    handles += [Line2D([], [], color="0.3", marker=marker, fillstyle=fill, linestyle="none", label=regime)
                for regime, (marker, fill) in markers.items()]
    if handles:
        figure.legend(handles=handles, loc="outside lower left", fontsize=8, frameon=False, alignment="left",
                      title="colour: checkpoint / task, marker: regime", title_fontsize=8)
    return figure


def plot_png(table: pd.DataFrame, x: str = "attention_kept") -> bytes:
    buffer = io.BytesIO()
    plot_figure(table, x).savefig(buffer, format="png")
    return buffer.getvalue()


# Clicking a header sorts its table's rows by that column, numerically where both cells are numbers,
# ascending then descending; empty cells stay last.
SORT_SCRIPT = """
for (const header of document.querySelectorAll("table.sortable thead th")) {
  header.addEventListener("click", () => {
    const body = header.closest("table").tBodies[0];
    const ascending = header.getAttribute("aria-sort") !== "ascending";
    for (const other of header.parentNode.children) other.removeAttribute("aria-sort");
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    const cell = row => row.cells[header.cellIndex].textContent.trim();
    body.append(...[...body.rows].sort((a, b) => {
      const [x, y] = [cell(a), cell(b)];
      if (!x || !y) return !x - !y;
      const order = isNaN(x) || isNaN(y) ? x.localeCompare(y) : x - y;
      return ascending ? order : -order;
    }));
  });
}
"""
STYLE = ("body{font-family:sans-serif;margin:2em}img{max-width:100%}"
         ".scroll{overflow-x:auto;max-width:100%;margin-bottom:2em}"
         "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
         "td{white-space:nowrap}th{cursor:pointer;background:#f4f4f4}"
         'th[aria-sort=ascending]::after{content:" ▲"}th[aria-sort=descending]::after{content:" ▼"}')


def _html_table(table: pd.DataFrame, digits: str) -> str:
    """A sortable table in a box of its own that scrolls sideways when it is wider than the page."""
    shown = table.to_html(index=False, classes="sortable", float_format=lambda x: f"{x:{digits}}")
    return f'<div class="scroll">{shown}</div>'


def to_html(table: pd.DataFrame, title: str = "lmms-eval-flow leaderboard", plot_x: str = "attention_kept") -> str:
    """One self-contained page: the plot of the score against ``plot_x`` (an embedded PNG) and both tables."""
    image = base64.b64encode(plot_png(table, plot_x)).decode()
    per_category = category_table(table)
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        f'<img alt="score against {html.escape(PLOT_X[plot_x])}" src="data:image/png;base64,{image}">',
        "<h2>Checkpoint x regime x task</h2>",
        _html_table(_display(table.drop(columns="categories"), ""), ".4g"),
    ]
    if not per_category.empty:
        sections += ["<h2>Score per category</h2>", _html_table(per_category, ".3f")]
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head>\n<body>\n" + "\n".join(sections)
            + f"\n<script>{SORT_SCRIPT}</script>\n</body></html>\n")


def write_leaderboard(table: pd.DataFrame, folder: str | Path, plot_x: str = "attention_kept") -> list[Path]:
    """``leaderboard.md``, ``leaderboard.csv`` (plus ``leaderboard_categories.csv`` where tasks
    report categories) and ``leaderboard.html``, its plot against ``plot_x``, in ``folder``; returns
    their paths. Every file is rendered before the first is written, so an error leaves none of them
    half updated.

    ``source`` is written relative to ``folder``, so a results folder holding its own leaderboard
    can be moved or committed without naming the machine that wrote it."""
    folder = Path(folder)
    table = table.assign(source=[os.path.relpath(Path(source).resolve(), folder.resolve())
                                 for source in table["source"]])
    contents = {"leaderboard.md": to_markdown(table) + "\n",
                "leaderboard.csv": table.drop(columns="categories").to_csv(index=False)}
    if not category_table(table).empty:
        contents["leaderboard_categories.csv"] = category_table(table).to_csv(index=False)
    contents["leaderboard.html"] = to_html(table, plot_x=plot_x)
    folder.mkdir(parents=True, exist_ok=True)
    return [atomic_write_text(folder / name, text) for name, text in contents.items()]
