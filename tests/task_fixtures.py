"""The flow benchmarks' test fixtures, assembled into a ``LMMS_EVAL_FLOW_DATA_DIR`` folder.

Each ``tests/fixtures/<benchmark>/`` holds a few docs in the real dataset's schema, laid out
like the hub repository, and a ``clips.json`` naming the videos (by path) and the synthetic
clip to render for each. Only annotations are committed; the clips are rendered here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import datasets

from lmms_eval_flow.toy.clips import render_clip

FIXTURES = Path(__file__).resolve().parent / "fixtures"
BENCHMARKS = ("tempcompass", "tvbench", "tomato", "nextqa", "activitynetqa", "longvideobench")


def build_data_dir(root: Path) -> Path:
    """Copy every fixture under ``root`` and render its clips where the real videos would be."""
    for name in BENCHMARKS:
        folder = root / name
        shutil.copytree(FIXTURES / name, folder)
        for relative, spec in json.loads((folder / "clips.json").read_text()).items():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            render_clip(spec, folder / relative)
    return root


def fixture_docs(name: str, config: str | None = None) -> list[dict]:
    """A fixture's docs of one config, in the order lmms-eval numbers them (doc_id)."""
    loaded = datasets.load_dataset(str(FIXTURES / name), name=config)
    [split] = loaded.values()
    return list(split)
