"""What the flow benchmark tasks share: where a benchmark's data comes from, where a doc's
video file is, the published sizes, the chat turn, and the per-doc score.

Where the data comes from
-------------------------
By default a benchmark reads the hub dataset that upstream lmms-eval reads, with the same
``dataset_kwargs``: lmms-eval downloads it and extracts its video archives into
``$HF_HOME/<cache_dir>``, so data already fetched for upstream tasks is reused and the
numbers are comparable.

When ``LMMS_EVAL_FLOW_DATA_DIR`` is set and holds a folder named after the benchmark
(``tempcompass``, ``tvbench``, ``tomato``, ``nextqa``, ``activitynetqa``, ``longvideobench``),
that folder is read instead, with no network access. It is laid out like the hub repository
(a ``README.md`` whose ``configs:`` section names the annotation files of each config and
split, as ``huggingface-cli download <repo> --repo-type dataset --local-dir`` writes it) with
the videos beside the annotations exactly as lmms-eval extracts them under
``$HF_HOME/<cache_dir>``. The CI fixtures are such folders.

lmms-eval reads ``dataset_path`` and ``dataset_kwargs`` from the task YAML and downloads
before any task hook runs (``process_docs`` sees the data only afterwards), so the choice has
to be made when the YAML is read: each template says ``dataset_path: !function
utils.DATASET_PATH`` and ``dataset_kwargs: !function utils.DATASET_KWARGS``, and lmms-eval's
``!function`` tag hands over those module attributes, computed by ``Benchmark.dataset_path()``
and ``Benchmark.dataset_kwargs()``. Every other part of the task is the same for both sources.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from loguru import logger

from .reply import failure_of, flow_metrics
from .run_errors import check_some_ran

DATA_DIR_VARIABLE = "LMMS_EVAL_FLOW_DATA_DIR"


@dataclass(frozen=True)
class Benchmark:
    """One benchmark's data source, video folders and published sizes.

    ``published_sizes`` maps ``(dataset config, split)`` to ``(task, question count)``;
    the hub config of a dataset without named configs is ``"default"``.
    """

    name: str  # the benchmark's folder under LMMS_EVAL_FLOW_DATA_DIR
    hub_path: str  # the hub dataset upstream lmms-eval reads
    cache_dir: str  # where lmms-eval extracts its videos, relative to HF_HOME (upstream's value)
    published_sizes: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)

    def local_dir(self) -> Path | None:
        """The benchmark's folder under ``$LMMS_EVAL_FLOW_DATA_DIR``, when that is where the data is."""
        return _local_folder(os.environ.get(DATA_DIR_VARIABLE) or None, self.name, self.hub_path)

    def dataset_path(self) -> str:
        """``dataset_path`` for the task YAML: the local folder or the hub dataset."""
        folder = self.local_dir()
        return str(folder) if folder else self.hub_path

    def dataset_kwargs(self) -> dict:
        """``dataset_kwargs`` for the task YAML: upstream's for the hub, none for a local folder.

        On the hub path ``video: True`` makes lmms-eval fetch and extract the videos into
        ``$HF_HOME/<cache_dir>`` unless that folder exists already, as upstream does.
        """
        if self.local_dir():
            return {}
        return {"token": True, "video": True, "cache_dir": self.cache_dir}

    def video_roots(self) -> list[Path]:
        """Folders a doc's relative video path is looked up in, in order."""
        folder = self.local_dir()
        if folder:
            return [folder]
        hf_home = Path(os.path.expandvars(os.environ.get("HF_HOME", "~/.cache/huggingface"))).expanduser()
        snapshot = _hub_snapshot(self.hub_path, hf_home)
        return [hf_home / self.cache_dir, *([snapshot] if snapshot else [])]

    def video(self, *relative_paths: str) -> str:
        """The first of ``relative_paths`` that exists under a video root, as an absolute path.

        A missing video is an error that lists every place looked at, never a skipped doc.
        """
        tried = [root / path for root in self.video_roots() for path in relative_paths]
        for path in tried:
            if path.is_file():
                return str(path)
        raise FileNotFoundError(f"{self.name}: no video at any of {', '.join(map(str, tried))}")

    def prepare_docs(self, dataset):
        """``process_docs`` hook: check the split's size and note each doc's dataset config.

        lmms-eval calls it on each evaluated split after loading. The size check covers
        whatever was loaded (hub or local folder): a partial copy, a fixture or a changed hub
        dataset all say so in the log, naming the task and both counts. The config name
        (``flow_config``) tells a benchmark's shared functions which format or video folder
        a doc belongs to, since the docs themselves do not say.
        """
        config, split = dataset.config_name or "default", str(dataset.split)
        if (config, split) in self.published_sizes:
            task, expected = self.published_sizes[config, split]
            if len(dataset) != expected:
                logger.warning(
                    f"{task}: the {self.name} data has {len(dataset):,} questions in {config}/{split}, "
                    f"the published count is {expected:,}; scores are not comparable with published ones"
                )
        return dataset.add_column("flow_config", [config] * len(dataset))


@cache
def _local_folder(root: str | None, name: str, hub_path: str) -> Path | None:
    if root is None:
        return None
    folder = Path(root).expanduser() / name
    if not folder.is_dir():
        logger.warning(f"{DATA_DIR_VARIABLE}={root} has no {name}/ folder; {name} is read from the hub ({hub_path})")
        return None
    logger.info(f"{name}: reading {folder} ({DATA_DIR_VARIABLE}) instead of the hub dataset {hub_path}")
    return folder


@cache
def _hub_snapshot(repo_id: str, hf_home: Path) -> Path | None:
    """The cached hub snapshot of a dataset repo, if any (some repos ship videos unzipped)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id=repo_id, repo_type="dataset", local_files_only=True))
    except LocalEntryNotFoundError:  # not in the cache: there is nothing to look in
        return None


def lettered(options: list[str]) -> dict[str, str]:
    """Options keyed by letter, in order: {"A": ..., "B": ...}."""
    return {chr(ord("A") + index): text for index, text in enumerate(options)}


def options_block(options: dict[str, str]) -> str:
    """One "A. text" line per option."""
    return "\n".join(f"{key}. {text}" for key, text in options.items())


def prompt(kwargs: dict | None, body: str, default_post_prompt: str = "") -> str:
    """``body`` between lmms-eval's ``pre_prompt`` and ``post_prompt`` (model-specific overrides)."""
    kwargs = kwargs or {}
    return f"{kwargs.get('pre_prompt', '')}{body}{kwargs.get('post_prompt', default_post_prompt)}"


def video_messages(video: str, text: str, start: float | None = None, end: float | None = None) -> list[dict]:
    """One user turn for chat models: the video first, then the text.

    ``start``/``end`` (seconds) cut the clip to that window: lmms-eval's chat protocol passes
    them to the video reader (``video_start``/``video_end`` in qwen-vl-utils).
    """
    content = {"type": "video", "url": video}
    if start is not None:
        content["start_time"] = float(start)
    if end is not None:
        content["end_time"] = float(end)
    return [{"role": "user", "content": [content, {"type": "text", "text": text}]}]


def metric_name(category) -> str:
    """A category as a metric-name suffix: "shape&trend" -> "shape_trend", 15 -> "15"."""
    return re.sub(r"[^0-9a-z]+", "_", str(category).lower()).strip("_")


def score(correct: bool, reply: str, category=None, categories=(), doc: dict | None = None) -> dict:
    """One doc's metrics: ``accuracy``, per-category accuracies and, from a flow model, the reply's
    attention edges and ``failed_samples`` (why the sample could not run, or None).

    Every doc reports every ``accuracy_<category>`` key, ``None`` for the categories it is not
    in, so each metric has one entry per doc (lmms-eval reads a task's sample count off its
    metrics) and ``mean_of_scored`` averages only the docs of that category. A failed sample
    counts as a wrong answer and has no edges. ``doc`` finds the edges of a reply that
    lmms-eval's response cache served as plain text (see ``reply.attention_metrics``).
    """
    failure = failure_of(reply)
    value = 0.0 if failure else float(correct)
    if categories and category not in categories:
        raise ValueError(f"category {category!r} is not one of {list(categories)}")
    per_category = {f"accuracy_{metric_name(c)}": (value if c == category else None) for c in categories}
    return {"accuracy": value, **per_category, **flow_metrics(reply, doc)}


def mean_of_scored(values: list) -> float:
    """The mean of the values that are not ``None``; NaN when a category had no docs. Also the
    aggregation of the edge metrics, which failed samples leave as ``None``."""
    scored = [value for value in values if value is not None]
    return sum(scored) / len(scored) if scored else math.nan


def failed_samples(reasons: list) -> dict:
    """``failed_samples`` in a task's results: how many samples could not run, and why.

    Each reason names the task, the doc id and the file. Failed samples are scored as wrong
    answers (never dropped from the accuracy) and left out of the edge means. A task whose
    every sample failed stops the run instead (``run_errors.check_some_ran``).
    """
    check_some_ran(reasons)
    failures = [reason for reason in reasons if reason is not None]
    return {"count": len(failures), "reasons": failures}
