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

What is checked when a task loads
---------------------------------
A local folder's annotation files must be readable UTF-8 text (or a binary format); one that is
not stops the run naming the file and why, before anything is generated. Each doc is checked by
its benchmark's ``check_doc`` in ``process_docs`` (``Benchmark.prepare_docs``): a field missing
or null, an answer that is not one of the options, a video path that leaves the data folder.
A bad doc is kept, with its reason in the ``flow_problem`` column (``sample_checks.PROBLEM``): its
prompt is that reason as text, with no video (``video_task``), which lmms-eval's own wrappers answer
and a flow model fails unrun; every model's reply to it is scored as wrong and counted in
``failed_samples``, so no reply to it is ever scored as a real answer and it never ends the run.

What is reported of every reply
-------------------------------
Beside its scores, a doc checked at load reports, whatever model replied (``sample_outcomes``):
``failed_samples``, why the sample could not run, and ``truncated``, its doc id when the reply was
cut off inside a reasoning block it never closed (``answers.cut_off_in_reasoning``). A truncated
reply scores as wrong; listed apart, it tells a budget too small from a wrong answer.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from loguru import logger

from lmms_eval_flow.harness.reply import failure_of, flow_metrics
from lmms_eval_flow.harness.results_files import install_results_check
from lmms_eval_flow.harness.run_errors import RunStopped, check_some_ran
from lmms_eval_flow.harness.sample_checks import PROBLEM, DocProblem, problem_of
from lmms_eval_flow.scoring.answers import cut_off_in_reasoning

DATA_DIR_VARIABLE = "LMMS_EVAL_FLOW_DATA_DIR"
TEXT_SUFFIXES = {".json", ".jsonl", ".csv", ".tsv", ".txt", ".md", ".yaml", ".yml"}
DOC_ID = "flow_doc_id"  # each doc's place in its split: lmms-eval's doc_id, which process_results is not given


class UnreadableData(RunStopped):
    """A local data folder whose annotation files cannot be read: it stops the run (exit 1) with
    the file and the reason, before any doc is loaded or generated."""


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
        """``dataset_kwargs`` for the task YAML: upstream's for the hub, a content-keyed cache for
        a local folder.

        On the hub path ``video: True`` makes lmms-eval fetch and extract the videos into
        ``$HF_HOME/<cache_dir>`` unless that folder exists already, as upstream does.

        ``datasets`` caches a local folder under its folder name and a hash of its README's
        configs, neither of which changes when an annotation is fixed or another copy is
        pointed at: the first copy ever loaded would be scored. So the folder is loaded into a
        cache directory of its own, named by a hash of the annotation files' bytes
        (``_content_key``): changed annotations are read again, unchanged ones reuse the cache.
        A content key rather than no cache, because lmms-eval passes ``download_mode`` itself
        (it cannot be overridden here) and a per-run directory would rebuild every time.
        """
        folder = self.local_dir()
        if folder:
            return {"cache_dir": str(_datasets_cache() / "lmms_eval_flow" / f"{self.name}-{_content_key(folder)}")}
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

        A missing video is an error that lists every place looked at, never a skipped doc; a
        path that would leave the data folder is refused (``inside_data``), never read.
        """
        tried = [root / inside_data(path) for root in self.video_roots() for path in relative_paths]
        for path in tried:
            if path.is_file():
                return str(path)
        raise FileNotFoundError(f"{self.name}: no video at any of {', '.join(map(str, tried))}")

    def prepare_docs(self, dataset, check=None):
        """``process_docs`` hook: check the split's size and each doc, and note each doc's config.

        lmms-eval calls it on each evaluated split after loading. The size check covers
        whatever was loaded (hub or local folder): a partial copy, a fixture or a changed hub
        dataset all say so in the log, naming the task and both counts. The config name
        (``flow_config``) tells a benchmark's shared functions which format or video folder
        a doc belongs to, since the docs themselves do not say. ``check(doc)`` raises
        ``DocProblem`` for a bad doc; its reason (naming the doc, its file and the field) goes
        into the ``flow_problem`` column, so the doc fails alone when it is run and scored. Each doc's
        place in the split (``DOC_ID``) names it where its reply is listed as ``truncated``.
        """
        install_results_check()  # a run on a flow task, with any model, exits 1 if its results were not written
        config, split = dataset.config_name or "default", str(dataset.split)
        problems = [self._problem(check, doc, config, split, index) for index, doc in enumerate(dataset)]
        bad = [problem for problem in problems if problem]
        if bad:
            logger.warning(f"{self.name} {config}/{split}: {len(bad)} of {len(dataset)} docs are invalid and will be "
                           "failed samples, scored as wrong:\n" + "\n".join(bad))
        if (config, split) in self.published_sizes:
            task, expected = self.published_sizes[config, split]
            if len(dataset) != expected:
                logger.warning(
                    f"{task}: the {self.name} data has {len(dataset):,} questions in {config}/{split}, "
                    f"the published count is {expected:,}; scores are not comparable with published ones"
                )
        with_config = dataset.add_column("flow_config", [config] * len(dataset)).add_column(PROBLEM, problems)
        return with_config.add_column(DOC_ID, list(range(len(dataset))))

    def _problem(self, check, doc: dict, config: str, split: str, index: int) -> str | None:
        """Why ``check`` refuses the doc, naming the doc and where it came from; None when it passes."""
        if check is None:
            return None
        try:
            check({**doc, "flow_config": config})
        except Exception as error:  # a check that trips on a bad value (a KeyError...) is a bad doc too
            reason = str(error) if isinstance(error, DocProblem) else f"{type(error).__name__}: {error}"
            folder = self.local_dir()
            files = ", ".join(_data_files(folder).get((config, split), ())) if folder else self.hub_path
            return f"{self.name} {config}/{split} doc {index} ({files or folder}): {reason}"
        return None


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


def _datasets_cache() -> Path:
    """Where lmms-eval has ``datasets`` cache what it loads (its own rule)."""
    import datasets

    return Path(os.environ.get("LMMS_EVAL_DATASETS_CACHE") or datasets.config.HF_DATASETS_CACHE).expanduser()


@cache
def _data_files(folder: Path) -> dict[tuple[str, str], tuple[str, ...]]:
    """The annotation files ``datasets`` reads from a local folder, by (config, split), relative
    to the folder; resolved by ``datasets`` itself, so exactly the files it will load."""
    from datasets.load import dataset_module_factory

    try:
        configs = dataset_module_factory(str(folder)).builder_configs_parameters.builder_configs or []
    except Exception as error:  # no data files, a README whose configs cannot be parsed...
        raise UnreadableData(f"cannot find the annotation files of {folder}: {type(error).__name__}: {error}") from None
    files = {}
    for config in configs:
        data_files = config.data_files.resolve(str(folder)) if hasattr(config.data_files, "resolve") else config.data_files
        for split, paths in (data_files or {}).items():
            files[config.name, str(split)] = tuple(os.path.relpath(path, folder) for path in paths)
    return files


def _content_key(folder: Path) -> str:
    """A hash of the folder's README (its configs) and annotation files; their sizes and times
    only decide whether to hash again (the list of files is resolved once per process)."""
    names = sorted({name for names in _data_files(folder).values() for name in names})
    names = ["README.md", *names] if (folder / "README.md").is_file() else names
    return _hash_files(folder, tuple((name, *_stat(folder / name)) for name in names))


def _stat(path: Path) -> tuple[int, int]:
    try:
        status = path.stat()
    except OSError as error:
        raise UnreadableData(f"cannot read the annotation file {path}: {error.strerror or error}") from None
    return status.st_size, status.st_mtime_ns


@cache
def _hash_files(folder: Path, stats: tuple) -> str:
    digest = hashlib.sha256()
    for name, size, _ in stats:
        digest.update(f"{name}\0{size}\0".encode())
        digest.update(read_annotations(folder / name))
    return digest.hexdigest()[:16]


def read_annotations(path: Path) -> bytes:
    """An annotation file's bytes; one that cannot be read, a text file that is not UTF-8 or a
    JSON file that does not parse is an ``UnreadableData`` naming the file and the reason
    (``datasets`` fails later with no file name: on the first doc it decodes, or with "An error
    occurred while generating the dataset")."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UnreadableData(f"cannot read the annotation file {path}: {error.strerror or error}") from None
    if path.suffix.lower() in TEXT_SUFFIXES:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            line = data[: error.start].count(b"\n") + 1
            raise UnreadableData(f"the annotation file {path} is not UTF-8 text: byte 0x{data[error.start]:02x} at "
                                 f"line {line} (offset {error.start}) is {error.reason}; save it as UTF-8") from None
        if path.suffix.lower() in (".json", ".jsonl"):
            _check_json(path, text)
    return data


def _check_json(path: Path, text: str) -> None:
    """A ``.jsonl`` file is one JSON value a line; a ``.json`` file one JSON value, or JSON lines
    (``datasets`` reads both)."""
    if path.suffix.lower() == ".json":
        try:
            json.loads(text)
            return
        except json.JSONDecodeError as error:
            if _json_lines_error(text):
                raise UnreadableData(f"the annotation file {path} is not valid JSON: line {error.lineno}, "
                                     f"column {error.colno}: {error.msg}") from None
            return
    problem = _json_lines_error(text)
    if problem:
        raise UnreadableData(f"the annotation file {path} is not valid JSON Lines: {problem}")


def _json_lines_error(text: str) -> str | None:
    for number, line in enumerate(text.split("\n"), 1):
        try:
            if line.strip():
                json.loads(line)
        except json.JSONDecodeError as error:
            return f"line {number}, column {error.colno}: {error.msg}"
    return None


@cache
def _hub_snapshot(repo_id: str, hf_home: Path) -> Path | None:
    """The cached hub snapshot of a dataset repo, if any (some repos ship videos unzipped)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id=repo_id, repo_type="dataset", local_files_only=True))
    except LocalEntryNotFoundError:  # not in the cache: there is nothing to look in
        return None


def inside_data(relative: str) -> str:
    """A video path from the data, normalised, when it stays inside the data folder.

    An absolute path, or one that climbs out with ``..``, is a ``DocProblem``: data never makes
    the task read a file elsewhere. The test is on the path as written, not on where symbolic
    links lead, since hub snapshots link their files into the hub cache's blob store.
    """
    path = os.path.normpath(str(relative))
    if os.path.isabs(path) or path == ".." or path.startswith(f"..{os.sep}"):
        raise DocProblem(f"video path {relative!r} leaves the data folder; paths must be relative, without '..'")
    return path


def require(doc: dict, **kinds) -> None:
    """Each named field is present, not null and of its kind (a type or a tuple of types)."""
    for name, kind in kinds.items():
        if name not in doc:
            raise DocProblem(f"field {name!r} is missing")
        value = doc[name]
        if value is None:
            raise DocProblem(f"field {name!r} is null or missing")  # datasets fills a missing key with null
        kinds_of = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(value, kinds_of) or (isinstance(value, bool) and bool not in kinds_of):
            expected = " or ".join(k.__name__ for k in kinds_of)
            raise DocProblem(f"field {name!r} = {value!r} is {type(value).__name__}, not {expected}")


def require_texts(doc: dict, name: str, minimum: int = 2) -> list[str]:
    """The doc's list field ``name`` (its options), each item a text, at least ``minimum`` of them."""
    require(doc, **{name: list})
    items = doc[name]
    bad = [index for index, item in enumerate(items) if not isinstance(item, str)]
    if bad or len(items) < minimum:
        raise DocProblem(f"field {name!r} = {items!r} is not a list of at least {minimum} texts")
    return items


def option_index(doc: dict, name: str, options) -> int:
    """The doc's answer field ``name`` as an index into ``options``; anything else (negative,
    past the last option, not a whole number) is a ``DocProblem`` naming the valid indices, so
    -1 is never read as the last option."""
    require(doc, **{name: (int, str)})
    value = doc[name]
    index = int(value) if isinstance(value, int) or value.strip().isdigit() else -1
    if not 0 <= index < len(options):
        raise DocProblem(f"field {name!r} = {value!r} is not an option index; valid: 0 to {len(options) - 1} "
                         f"({len(options)} options)")
    return index


def one_of(doc: dict, name: str, valid) -> None:
    """The doc's field ``name`` is one of ``valid``."""
    if doc.get(name) not in valid:
        value = f"= {doc[name]!r} is" if name in doc else "is missing,"
        raise DocProblem(f"field {name!r} {value} not one of {list(valid)}")


def lettered(options: list[str]) -> dict[str, str]:
    """Options keyed by letter, in order: {"A": ..., "B": ...}."""
    return {chr(ord("A") + index): text for index, text in enumerate(options)}


def options_block(options: dict[str, str], option_format: str = "{key}. {text}") -> str:
    """One line per option, each ``option_format`` of its key and text: "A. text", "(A) text"."""
    return "\n".join(option_format.format(key=key, text=text) for key, text in options.items())


def video_messages(video: str, text: str, start: float | None = None, end: float | None = None,
                   instructions: tuple[str, ...] = (), primer: str = "", stated_frames: int | None = None,
                   system: str = "") -> list[dict]:
    """One user turn for chat models: the video first, then the text; after a system turn of
    ``system`` where given (the benchmark's system text; every chat wrapper renders it, and a model's
    token layout draws it as prefix, before the video).

    ``start``/``end`` (seconds) cut the clip to that window: lmms-eval's chat protocol passes
    them to the video reader (``video_start``/``video_end`` in qwen-vl-utils). ``instructions``
    (the template parts of the text, ``video_task.Prompt.instructions``) ride on the text as
    ``instructions``, which lmms-eval's chat protocol leaves out of the prompt; a flow model hands
    them to the token layout, which draws them as template. ``primer`` (the start of the answer,
    ``video_task.Prompt.primer``) rides there too; a flow model sends it as the start of the
    assistant's turn (``harness.primer``). ``stated_frames``, the frame count the text tells the
    model it is shown, rides there too; a flow model sampling another count says so.
    """
    content = {"type": "video", "url": video}
    if start is not None:
        content["start_time"] = float(start)
    if end is not None:
        content["end_time"] = float(end)
    text_content = {"type": "text", "text": text, **({"instructions": list(instructions)} if instructions else {}),
                    **({"primer": primer} if primer else {}),
                    **({"stated_frames": stated_frames} if stated_frames is not None else {})}
    user = {"role": "user", "content": [content, text_content]}
    return [{"role": "system", "content": [{"type": "text", "text": system}]}, user] if system else [user]


def text_messages(text: str) -> list[dict]:
    """One user turn of text alone: an invalid doc's, which no model is shown a video for."""
    return [{"role": "user", "content": [{"type": "text", "text": text}]}]


def metric_name(category) -> str:
    """A category as a metric-name suffix: "shape&trend" -> "shape_trend", 15 -> "15"."""
    return re.sub(r"[^0-9a-z]+", "_", str(category).lower()).strip("_")


def score(correct: bool, reply: str, category=None, categories=(), doc: dict | None = None) -> dict:
    """One doc's metrics: ``accuracy``, per-category accuracies and, from a flow model, the reply's
    attention edges and ``failed_samples`` (why the sample could not run, or None).

    ``category`` is the doc's category, or a tuple of them where a doc counts in several (a
    question type and its group). Every doc reports every ``accuracy_<category>`` key, ``None``
    for the categories it is not in, so each metric has one entry per doc (lmms-eval reads a
    task's sample count off its metrics) and ``mean_of_scored`` averages only the docs of that
    category. A failed sample counts as a wrong answer and has no edges. ``doc`` finds the edges
    of a reply that lmms-eval's response cache served as plain text (see ``reply.attention_metrics``).

    A doc checked at load (``prepare_docs``) reports ``sample_outcomes`` with every reply, plain
    text too; an invalid one, or a truncated reply, scores 0 whatever was replied, an invalid doc
    in no category (it may have none).
    """
    value = 0.0 if unscored(reply, doc) else float(correct)
    return {"accuracy": value, **category_scores("accuracy", value, category, categories, doc),
            **flow_metrics(reply, doc), **sample_outcomes(reply, doc)}


def unscored(reply: str, doc: dict | None = None) -> bool:
    """Whether a reply scores 0 whatever it says: its sample could not run, its doc is invalid, or it
    was cut off inside a reasoning block."""
    return bool(failure_of(reply) or problem_of(doc) or cut_off_in_reasoning(reply))


def category_scores(metric: str, value: float, category, categories, doc: dict | None = None) -> dict:
    """``<metric>_<category>`` for each of ``categories``: ``value`` in the doc's own (``category``,
    one or a tuple), None in the others and in all of an invalid doc's."""
    own = () if problem_of(doc) else category if isinstance(category, tuple) else (category,)
    unknown = [name for name in own if name not in categories]
    if categories and unknown:
        raise ValueError(f"category {unknown[0]!r} is not one of {list(categories)}")
    return {f"{metric}_{metric_name(name)}": (value if name in own else None) for name in categories}


def sample_outcomes(reply: str, doc: dict | None) -> dict:
    """What a doc checked at load reports of every reply: ``failed_samples`` (why the sample could
    not run, or None) and ``truncated`` (the doc's id where the reply was cut off inside a reasoning
    block, or None); nothing for a doc that was not checked."""
    if doc is None or PROBLEM not in doc:
        return {}
    return {"failed_samples": failure_of(reply) or problem_of(doc),
            "truncated": doc[DOC_ID] if cut_off_in_reasoning(reply) else None}


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


def truncated_replies(doc_ids: list) -> dict:
    """``truncated`` in a task's results: how many replies were cut off inside a reasoning block
    (scored as wrong), and the ids of their docs."""
    truncated = [doc_id for doc_id in doc_ids if doc_id is not None]
    return {"count": len(truncated), "docs": truncated}
