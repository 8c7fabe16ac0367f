"""Effective ranges for a model no paper measured, derived from its own knockout sweeps.

SPEC's rule: divide the layers into 5-layer intervals (1-5, 6-10, ...; the last may be shorter)
and keep, for each of cross_frame, video_question and question_last, the intervals whose mean
change (the knockout summary's relative change of the predicted token's probability, averaged
over the interval's window centres) is below -5%. A range argument is one contiguous range, so
a pathway's range runs from its first kept interval to its last; intervals inside it that were
not kept are reported and recorded, never silently merged. The result is a ranges file that
``regime=effective`` (and ``random``) accept as ``ranges=FILE``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from lmms_eval_flow.atomic import atomic_write_text
from lmms_eval_flow.analysis.knockout import SweepFolder, selected_docs, summarize
from lmms_eval_flow.engine.layers import format_layer_range
from lmms_eval_flow.engine.layout import Segment, TokenLayout
from lmms_eval_flow.engine.plan import SamplePlan
from lmms_eval_flow.engine.regimes import RANGE_KEYS, build_regime

DEFAULT_THRESHOLD = -5.0
DEFAULT_INTERVAL = 5


def intervals(depth: int, size: int = DEFAULT_INTERVAL) -> list[range]:
    """0-based layer intervals of ``size`` layers from the first layer; the last may be shorter."""
    if size < 1:
        raise ValueError(f"--interval {size} must be at least 1 layer")
    return [range(start, min(start + size, depth)) for start in range(0, depth, size)]


def interval_means(summary: pd.DataFrame, key: str, depth: int, size: int = DEFAULT_INTERVAL) -> dict[str, float]:
    """Each ``size``-layer interval's mean change for the ``key`` pathway, by its 1-based name."""
    rows = summary[summary["pathway"] == key].set_index("layer")["relative_change"]
    missing = sorted(set(range(1, depth + 1)) - set(rows.index))
    if missing:
        raise ValueError(
            f"the sweep lacks the {key} knockout at layer(s) {format_ranges(missing)}; calibration needs "
            f"cross_frame, video_question and question_last swept over every layer: lmms-eval-flow knockout "
            f"... --pathway {','.join(RANGE_KEYS)} --window 5"
        )
    return {format_layer_range(interval): float(rows.loc[[l + 1 for l in interval]].mean())
            for interval in intervals(depth, size)}


def kept_range(means: dict[str, float], threshold: float = DEFAULT_THRESHOLD) -> tuple[str, list[str]] | None:
    """The range from the first to the last interval whose mean change is below ``threshold``, and
    the intervals kept; None when no interval is."""
    kept = [name for name, mean in means.items() if mean < threshold]
    if not kept:
        return None
    return f"{kept[0].split('-')[0]}-{kept[-1].split('-')[-1]}", kept


def derive_ranges(summary: pd.DataFrame, depth: int, threshold: float = DEFAULT_THRESHOLD,
                  size: int = DEFAULT_INTERVAL) -> tuple[dict[str, str], dict]:
    """The three ranges (1-based strings) from a knockout summary, and the evidence for each:
    every interval's mean change and the intervals left inside a range though not kept."""
    ranges, evidence = {}, {}
    for key in RANGE_KEYS:
        means = interval_means(summary, key, depth, size)
        found = kept_range(means, threshold)
        if found is None:
            lowest = min(means, key=means.get)
            raise ValueError(
                f"no {size}-layer interval of {key} has a mean change below {threshold}% (the lowest is "
                f"{means[lowest]:.2f}% at layers {lowest}), so the sweep shows no effective range for it; "
                f"sweep more docs, or set --threshold"
            )
        ranges[key], kept = found
        first, last = (int(x) for x in ranges[key].split("-"))
        evidence[key] = {"interval_means": means, "kept": kept,
                         "not_kept_inside": [name for name in means if name not in kept
                                             and first <= int(name.split("-")[0]) <= last]}
    return ranges, evidence


def format_ranges(layers: list[int]) -> str:
    """[1, 2, 3, 7] -> '1-3, 7'."""
    runs, start = [], None
    for i, layer in enumerate(layers):
        if start is None:
            start = layer
        if i + 1 == len(layers) or layers[i + 1] != layer + 1:
            runs.append(f"{start}-{layer}" if layer > start else f"{layer}")
            start = None
    return ", ".join(runs)


def write_ranges_file(path: str | Path, ranges: dict[str, str], depth: int, provenance: dict) -> Path:
    """The file ``ranges=FILE`` reads (regimes.read_ranges_file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, json.dumps({**ranges, "depth": depth, "provenance": provenance}, indent=2) + "\n")


def kept_edges(ranges_file: Path, depth: int, layouts: list[TokenLayout]) -> tuple[int, int]:
    """Attention edges ``regime=effective ranges=FILE`` keeps over these layouts, and full causal's."""
    regime = build_regime("effective", depth, ranges=str(ranges_file))
    plans = [SamplePlan(regime, layout) for layout in layouts]
    return sum(plan.edges for plan in plans), sum(plan.full_edges for plan in plans)


def calibrate(sweep_dir: str | Path, output: str | Path, samples: str = "correct",
              threshold: float = DEFAULT_THRESHOLD, size: int = DEFAULT_INTERVAL) -> dict:
    """Derive the ranges from a sweep folder, write the ranges file, print ranges and edge counts."""
    folder = SweepFolder(sweep_dir)
    settings = folder.settings()
    base, knocked = folder.base(), folder.knocked()
    summary = summarize(base, knocked, samples)
    swept = selected_docs(base, samples)
    swept = swept[swept["doc_id"].isin(knocked["doc_id"])]
    depth = settings["depth"]
    ranges, evidence = derive_ranges(summary, depth, threshold, size)
    for key in RANGE_KEYS:
        print(f"{key}: {ranges[key]}  (intervals kept: {', '.join(evidence[key]['kept'])})")
        if evidence[key]["not_kept_inside"]:
            print(f"  note: the range also spans {', '.join(evidence[key]['not_kept_inside'])}, "
                  f"whose mean change is not below {threshold}%")
    provenance = {
        "tool": "lmms-eval-flow calibrate",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "rule": f"{size}-layer intervals whose mean relative change of the predicted token's probability is "
                f"below {threshold}%; a range spans its first to last kept interval",
        "sweep": str(Path(sweep_dir).resolve()),
        **{key: settings[key] for key in ("model", "model_args", "task", "limit", "window", "regime")},
        "samples": samples,
        "docs": len(swept),
        "evidence": evidence,
    }
    path = write_ranges_file(output, ranges, depth, provenance)
    layouts = [TokenLayout(tuple(Segment(*s) for s in json.loads(text))) for text in swept["layout"]]
    edges, full = kept_edges(path, depth, layouts)
    print(f"regime=effective with these ranges keeps {edges / len(layouts):,.0f} of {full / len(layouts):,.0f} "
          f"attention edges per sample ({edges / full:.1%} of full causal), over the {len(layouts)} swept docs")
    print(f"ranges written to {path}; use them with --model_args ...,regime=effective,ranges={path}")
    return {**ranges, "edges": edges, "full_edges": full}
