"""The edge ledger: every answered sample's reply, attention edges and measured prefill cost, kept
as it is answered,
so that a run interrupted and resumed with lmms-eval's ``--use_cache`` loses and recomputes nothing.

Why lmms-eval's response cache is not enough on its own:

- it stores a run's replies only once the model's ``generate_until`` has returned for all of
  them (one call for every task of the run), in a folder of that run that is merged into the
  shared cache only when the run ends well: a run killed after hours leaves nothing to reuse;
- it keeps reply *text* only, so a reply it serves reaches the task's scorer without the
  sample's edge counts and costs.

So a flow model run under lmms-eval's response cache appends each answered sample here as soon
as it has it, answers from here the requests the response cache sends it again after an
interruption, and the scorer finds here the edges and costs of replies that the response cache
serves as plain text. As lmms-eval caches only deterministic generation, so does the ledger.

Layout: ``<root>/<fingerprint>/rank_<r>.jsonl`` with ``<root>`` the model argument
``edge_ledger=DIR`` or ``$HF_HOME/lmms_eval_flow/edge_ledgers``; ``fingerprint`` covers every model
argument that can change a reply or an edge count, so runs that differ in any of them never share
records (``about.json`` beside the records names them). One JSON object per line, flushed and
fsynced as it is written; each process writes its own file, and reads every process's file (a
resumed run may use another process count). A line cut short by a killed process is skipped.

One run at a time: a process answering into ``rank_<r>.jsonl`` holds ``rank_<r>.lock`` (a
``filelock``, released by the system when the process ends, however it ends) and names itself in
``rank_<r>.holder.json``; a second run with the same arguments would answer the same docs into
the same file, so it is refused (``LedgerInUse``) with the ledger and its holder named.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import socket
import sys
import threading
import time
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout
from lmms_eval.caching.response_cache import ResponseCache, canonicalize_gen_kwargs, is_deterministic
from lmms_eval.utils import is_multimodal_content

from lmms_eval_flow import __version__
from lmms_eval_flow.atomic import atomic_write_text
from lmms_eval_flow.harness.run_errors import RunStopped
from lmms_eval_flow.harness.sample_checks import describe

# Model arguments that change no result: stopping at a failure or not, batching (regimes are
# batch-independent), and where the ledger itself lives. (The failure thresholds do: a sample
# answered under one budget may fail under another.)
NOT_FINGERPRINTED = ("strict", "edge_ledger", "batch_size", "max_batch_size")


class LedgerError(RunStopped):
    """The edge ledger cannot be written: no answer may go unrecorded under ``--use_cache``."""


class LedgerInUse(LedgerError):
    """Another run holds the ledger: two runs with the same arguments would answer the same docs twice."""


@dataclass
class HeldLedgerFiles:
    """The ledger files this process holds, by lock path: a process holds each for its lifetime (the
    runs of one lmms-eval --config list follow one another in one process and share them), so its
    second ``hold`` of a file is no second run. ``held_ledger_files`` is the process's one instance."""

    locks: dict[Path, FileLock] = field(default_factory=dict)


held_ledger_files = HeldLedgerFiles()


def default_root() -> Path:
    hf_home = os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface"
    return Path(hf_home).expanduser() / "lmms_eval_flow" / "edge_ledgers"


def fingerprint(model: str, arguments: dict) -> dict:
    """What a ledger's records depend on: the model class, its output-relevant arguments and
    this package's version."""
    relevant = {key: str(value) for key, value in sorted(arguments.items()) if key not in NOT_FINGERPRINTED}
    return {"model": model, "arguments": relevant, "lmms_eval_flow": __version__}


def doc_key(doc) -> str:
    """A doc's identity from its non-media fields, equal on the model side (lmms-eval's
    ``task_dict``) and on the scorer side (its media-free copy of the docs): media are left out
    with lmms-eval's own test (``is_multimodal_content``), and so is any value JSON cannot hold
    (a decoded video object)."""
    fields = {}
    for name, value in doc.items():
        if is_multimodal_content(value):
            continue
        try:
            fields[name] = json.dumps(value, sort_keys=True)
        except (TypeError, ValueError):
            continue
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:20]


def request_key(context: str, gen_kwargs: dict) -> str:
    """A request's identity beyond its doc: the prompt text and the generation settings that
    change the reply (lmms-eval's own canonical form)."""
    payload = f"{context}\0{canonicalize_gen_kwargs(gen_kwargs)}"
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def cacheable(gen_kwargs: dict) -> bool:
    """Whether lmms-eval would cache this request's reply (greedy, one sequence)."""
    return is_deterministic("generate_until", gen_kwargs)


class ResponseCacheCalls:
    """Which generations lmms-eval's response cache (``--use_cache``) asks for: the one reach-in
    into it.

    lmms-eval tells a model nothing about its cache: with ``--use_cache`` its evaluator calls
    ``ResponseCache.execute``, which calls the model's ``generate_until`` with the requests it has
    no reply for. So ``execute`` is wrapped, once per process and for every cache, to mark the
    calls made inside it (in a context variable: a call from another thread is not marked).
    tests/harness/test_lmms_eval_contract.py fails if the evaluator stops generating through it.
    """

    inside_execute = ContextVar("inside lmms-eval's ResponseCache.execute", default=False)

    @classmethod
    def watch(cls) -> None:
        """Wrap ``ResponseCache.execute`` so that what it calls sees ``inside_execute`` set."""
        execute = ResponseCache.execute

        @functools.wraps(execute)
        def marked_execute(*args, **kwargs):
            inside = cls.inside_execute.set(True)
            try:
                return execute(*args, **kwargs)
            finally:
                cls.inside_execute.reset(inside)

        ResponseCache.execute = marked_execute


ResponseCacheCalls.watch()


def asked_by_response_cache() -> bool:
    """Whether lmms-eval's response cache is the caller of this generation: the run asked for resuming."""
    return ResponseCacheCalls.inside_execute.get()


def scoring_task() -> str:
    """The task whose replies lmms-eval is scoring now.

    ``process_results`` receives only the doc and the replies. lmms-eval's evaluator records the
    task it is scoring, for its LLM judges, in ``usage_metrics._CURRENT_TASK_CONTEXT`` (set by
    ``set_task_context`` before each task's scoring, cleared after): the one reach-in into it.
    tests/harness/test_lmms_eval_contract.py fails if lmms-eval stops doing so.
    """
    from lmms_eval.models.model_utils import usage_metrics

    task = usage_metrics._CURRENT_TASK_CONTEXT
    if task is None:
        raise RuntimeError("a plain-text reply is being scored outside lmms-eval's scoring phase: "
                           "there is no task to look its attention edges up for")
    return task


class EdgeLedger:
    """The records of one model configuration, in ``directory``; this process writes ``rank_<rank>.jsonl``."""

    def __init__(self, directory: str | Path, rank: int = 0, about: dict | None = None):
        self.directory = Path(directory)
        self.path = self.directory / f"rank_{rank}.jsonl"
        self.about = about
        self._handle = None
        self._lock = threading.Lock()  # lmms-eval scores docs in worker threads
        self._index: dict[tuple[str, str], list[dict]] | None = None

    @classmethod
    def for_model(cls, model: str, arguments: dict, root: str | Path | None, rank: int) -> "EdgeLedger":
        about = fingerprint(model, arguments)
        name = hashlib.sha256(json.dumps(about, sort_keys=True).encode()).hexdigest()[:16]
        return cls(Path(root or default_root()).expanduser() / name, rank, about)

    # -- holding ----------------------------------------------------------------------------
    def hold(self) -> None:
        """Hold this process's ledger file until the process ends, or stop the run: a ledger
        that cannot be written, or that another run is answering into."""
        lock_path = self.directory / f"{self.path.stem}.lock"
        if lock_path in held_ledger_files.locks:
            return
        holder_path = self.directory / f"{self.path.stem}.holder.json"
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                  "command": " ".join(sys.argv)}
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            lock = FileLock(lock_path, thread_local=False)
            lock.acquire(timeout=0)
            held_ledger_files.locks[lock_path] = lock
            atomic_write_text(holder_path, json.dumps(holder) + "\n")
        except Timeout:
            raise LedgerInUse(f"the edge ledger {self.path} is in use by another run ({_holder(holder_path)}): "
                              f"both would answer the same docs into it. Wait for that run to end, or give this "
                              f"one its own folder with edge_ledger=DIR") from None
        except OSError as error:
            raise LedgerError(f"cannot write the edge ledger in {self.directory} ({describe(error)}); "
                              f"give a writable folder with edge_ledger=DIR") from error

    # -- writing -----------------------------------------------------------------------------
    def append(self, task: str, doc_id: int, doc: str, request: str, reply: str) -> None:
        """Record one answered sample, a ``FlowReply`` with its edges and measured cost, on disk before this returns."""
        costs = asdict(reply.cost) if reply.cost else {}
        record = {"task": task, "doc_id": doc_id, "doc": doc, "request": request, "reply": str(reply),
                  "edges": reply.edges, "full_edges": reply.full_edges, **costs}
        with self._lock:
            handle = self._open()
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
            if self._index is not None:
                self._index.setdefault((task, doc), []).append(record)

    def _open(self):
        if self._handle is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            if self.about is not None and not (self.directory / "about.json").exists():
                atomic_write_text(self.directory / "about.json", json.dumps(self.about, indent=2) + "\n")
            self._handle = open(self.path, "a", encoding="utf-8")
            if self._handle.tell() and not self.path.read_bytes().endswith(b"\n"):
                self._handle.write("\n")  # a line cut short by a killed run: start on a fresh one
        return self._handle

    # -- reading -----------------------------------------------------------------------------
    def records(self, task: str, doc: str) -> list[dict]:
        """Every record of this task and doc, from every process's file."""
        with self._lock:
            if self._index is None:
                self._index = {}
                for path in sorted(self.directory.glob("rank_*.jsonl")):
                    for record in _read_records(path):
                        self._index.setdefault((record["task"], record["doc"]), []).append(record)
            return list(self._index.get((task, doc), []))

    def reply_for(self, task: str, doc: str, request: str) -> dict | None:
        """The record of an earlier answer to exactly this request, if there is one."""
        return next((r for r in reversed(self.records(task, doc)) if r["request"] == request), None)

    def record_of(self, task: str, doc: str, reply: str) -> dict:
        """The record (edges and cost) of the sample whose reply lmms-eval's cache served as plain
        text: the latest, if several, as a sample's edges never change but its measured cost may."""
        matching = [r for r in self.records(task, doc) if r["reply"].strip() == reply.strip()]
        found = {(r["edges"], r["full_edges"]) for r in matching}
        if len(found) == 1:
            return matching[-1]
        if not found:
            raise LookupError(
                f"{task}: reply {reply[:60]!r} came from lmms-eval's response cache, but the edge ledger "
                f"{self.directory} has no record of it, so its attention edges are unknown. Run with the "
                f"edge_ledger= of the run that produced the cache, or with a fresh --use_cache folder")
        raise LookupError(
            f"{task}: the edge ledger {self.directory} holds the reply {reply[:60]!r} for this doc with different "
            f"edge counts {sorted(found)} (prompts changed between runs?); delete that folder and the --use_cache "
            f"folder to start afresh")

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _holder(path: Path) -> str:
    """Who holds a ledger file, as its holder wrote it."""
    try:
        holder = json.loads(path.read_text())
        return f"pid {holder['pid']} on {holder['host']}, since {holder['since']}: {holder['command'][:300]}"
    except (OSError, ValueError, KeyError):
        return f"its holder has not named itself in {path} yet"


def _read_records(path: Path) -> list[dict]:
    records = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # empty, or cut short by a killed process: that sample was not answered
    return records
