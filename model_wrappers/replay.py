"""``flow_replay``: answer every doc with a saved reply, to score replies again without a model.

Useful to re-score a run after a parser or task change, to score replies produced elsewhere,
and in the tests, where it answers from a fixture's key. ``--model_args replies=PATH`` names
a JSONL file, or a folder of them, holding either

- records ``{"task": "flow_tomato", "doc_id": 17, "reply": "B"}``, or, with ``key=FIELD``,
  ``{"task": "flow_tomato", "FIELD": <the doc's value>, "reply": "B"}`` (robust to doc order);
- lmms-eval's own ``--log_samples`` files (``*_samples_<task>.jsonl``): each line's
  ``doc_id`` and first ``filtered_resps`` entry.

A doc with no saved reply, or with two, is an error naming the task and doc: a re-scored run
covers exactly the docs it is asked for (use ``--limit`` or ``--tasks`` to ask for fewer).
"""

from __future__ import annotations

import json
from pathlib import Path

from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms


class Replay(lmms):
    """A chat-protocol lmms-eval model whose replies are read from files."""

    is_simple = False

    def __init__(self, replies: str, key: str | None = None, batch_size: int | str = 1, max_batch_size=None,
                 device=None) -> None:  # batch_size, max_batch_size, device: passed by lmms-eval, unused
        super().__init__()
        self.key = key
        self.replies = load_replies(Path(replies), key)

    def generate_until(self, requests: list[Instance]) -> list[str]:
        return [self._reply(*request.args[3:6]) for request in requests]

    def _reply(self, doc_id: int, task: str, split: str) -> str:
        value = doc_id if self.key is None else self.task_dict[task][split][doc_id][self.key]
        try:
            return self.replies[task, _hashable(value)]
        except KeyError:
            by = "doc_id" if self.key is None else self.key
            raise KeyError(f"flow_replay has no saved reply for {task} {by}={value!r}") from None

    def loglikelihood(self, requests):
        raise NotImplementedError("flow_replay only replays generated replies (generate_until tasks)")

    def generate_until_multi_round(self, requests):
        raise NotImplementedError("flow_replay only replays single-turn replies")


def load_replies(path: Path, key: str | None = None) -> dict[tuple[str, object], str]:
    """{(task, doc_id or key value): reply} from a JSONL file or a folder of them."""
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    if not files or not all(file.is_file() for file in files):
        raise FileNotFoundError(f"flow_replay: no JSONL replies at {path}")
    replies: dict[tuple[str, object], str] = {}
    for file in files:
        for number, line in enumerate(file.read_text().split("\n"), 1):
            if not line.strip():
                continue
            task, value, reply = _record(json.loads(line), file, key)
            if (task, value) in replies:
                raise ValueError(f"flow_replay: two replies for {task} {key or 'doc_id'}={value!r} ({file}:{number})")
            replies[task, value] = reply
    return replies


def _record(record: dict, file: Path, key: str | None) -> tuple[str, object, str]:
    if "_samples_" in file.name and "filtered_resps" in record:  # an lmms-eval --log_samples line
        task = file.stem.split("_samples_", 1)[1]
        value = record["doc_id"] if key is None else record["doc"][key]
        reply = record["filtered_resps"][0]
        return task, _hashable(value), reply[0] if isinstance(reply, list) else reply
    missing = [name for name in ("task", key or "doc_id", "reply") if name not in record]
    if missing:
        raise ValueError(f"flow_replay: a record in {file} lacks {', '.join(missing)}: {record}")
    return record["task"], _hashable(record[key or "doc_id"]), record["reply"]


def _hashable(value):
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict)) else value
