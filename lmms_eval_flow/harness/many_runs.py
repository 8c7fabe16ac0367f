"""``python -m lmms_eval --config runs.yaml``, with lmms-eval's task index built once per process.

lmms-eval runs each entry of a ``--config`` list through a fresh ``TaskManager``, and each one
parses every task YAML lmms-eval ships (13,000 files, about 7 s on one CPU core) before it looks
up the one task asked for. The files do not change between the runs of one process, so
``python -m lmms_eval_flow.harness.many_runs --config runs.yaml`` keeps the first index built for
each (include path, include defaults) and hands each later ``TaskManager`` a copy of it; everything
else is lmms-eval's own CLI, started as ``python -m lmms_eval`` starts it. The one reach-in,
``TaskManager.initialize_tasks``, is guarded by tests/harness/test_lmms_eval_contract.py.
"""

from __future__ import annotations

import copy
import json
import runpy
import sys

from lmms_eval.tasks import TaskManager


def index_once(initialize_tasks):
    """``TaskManager.initialize_tasks`` remembering its index per (include path, include defaults)."""
    built = {}

    def initialize(manager, include_path=None, include_defaults=True):
        key = (json.dumps(include_path), include_defaults)
        if key not in built:
            built[key] = initialize_tasks(manager, include_path=include_path, include_defaults=include_defaults)
        return copy.deepcopy(built[key])

    return initialize


def main() -> None:
    TaskManager.initialize_tasks = index_once(TaskManager.initialize_tasks)
    sys.argv[0] = "lmms_eval"
    runpy.run_module("lmms_eval", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
