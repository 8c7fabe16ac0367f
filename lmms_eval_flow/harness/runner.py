"""Running the real lmms-eval CLI as a subprocess and reading back what it wrote.

The demo, the CI gate and the tests all evaluate through the CLI users type, never through
an in-process shortcut. The CLI can exit 0 after a failure, so a run only counts as done
when its results file exists and lists every task asked for.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

# The flow task suite, the folder to pass to lmms-eval's --include_path. Found, not imported:
# the tasks import this package.
TASKS_DIR = Path(importlib.util.find_spec("lmms_eval_flow.tasks").submodule_search_locations[0]).resolve()


class LmmsEvalFailed(RuntimeError):
    pass


def lmms_eval_command(model: str, model_args: str, tasks: str, include_path: Path, output_path: Path,
                      *extra: str, processes: int = 1) -> tuple[list[str], dict[str, str]]:
    """The command line (and environment) of one lmms-eval run, on 1 or more processes."""
    args = ["--model", model, "--model_args", model_args, "--tasks", tasks, "--include_path", str(include_path),
            "--output_path", str(output_path), "--log_samples", "--batch_size", "1", *extra]
    env = dict(os.environ)
    if processes == 1:
        return [sys.executable, "-m", "lmms_eval", *args], env
    # accelerate shards CPU processes (MULTI_CPU) when told to use the CPU; on GPUs leave this unset.
    env.setdefault("ACCELERATE_USE_CPU", "1")
    launcher = [str(Path(sys.executable).with_name("accelerate")), "launch", "--multi_gpu", "--num_processes",
                str(processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    return [*launcher, "-m", "lmms_eval", *args], env


def read_jsonl(path: Path) -> list[dict]:
    """One JSON object per line; lines end at "\\n" only, since replies may hold other line breaks."""
    return [json.loads(line) for line in Path(path).read_text().split("\n") if line.strip()]


def run_lmms_eval(model: str, model_args: str, tasks: str, include_path: Path, output_path: Path, *extra: str,
                  processes: int = 1, quiet: bool = True) -> tuple[dict, dict[str, list[dict]]]:
    """Run lmms-eval; return its results JSON and the logged samples of each task."""
    output_path = Path(output_path)
    command, env = lmms_eval_command(model, model_args, tasks, include_path, output_path, *extra, processes=processes)
    run = subprocess.run(command, env=env, capture_output=quiet, text=True)
    log = f"\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}" if quiet else ""
    return read_results(output_path, tasks, run.returncode, log)


def run_lmms_eval_many(runs: list[dict], config_path: Path,
                       quiet: bool = True) -> list[tuple[dict, dict[str, list[dict]]]]:
    """Several lmms-eval runs in one process (its ``--config`` YAML list), paying its start-up and
    its task index once (``many_runs``).

    Each run is a dict of lmms-eval arguments (``model``, ``model_args``, ``tasks``,
    ``include_path``, ``output_path``, and e.g. ``limit``, ``gen_kwargs``); returns what
    ``run_lmms_eval`` returns, per run, in order. ``quiet=False`` shows lmms-eval's own output
    (its progress bars) as it runs.
    """
    runs = [{"log_samples": True, "batch_size": 1, **run, "include_path": str(run["include_path"]),
             "output_path": str(run["output_path"])} for run in runs]
    Path(config_path).write_text(json.dumps(runs))  # JSON is YAML
    run = subprocess.run([sys.executable, "-m", "lmms_eval_flow.harness.many_runs", "--config", str(config_path)],
                         capture_output=quiet,
                         text=True)
    log = f"\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}" if quiet else " (its output is above)"
    return [read_results(Path(r["output_path"]), r["tasks"], run.returncode, log) for r in runs]


def read_results(output_path: Path, tasks: str, returncode: int, log: str) -> tuple[dict, dict[str, list[dict]]]:
    """The results JSON and the logged samples of each task that a run wrote to ``output_path``."""
    found = sorted(output_path.rglob("*_results.json"), key=lambda p: p.stat().st_mtime)
    if returncode != 0 or not found:
        raise LmmsEvalFailed(f"lmms-eval exited {returncode} without results in {output_path}:{log}")
    results = json.loads(found[-1].read_text())
    missing = [task for task in tasks.split(",") if task not in results["results"]]
    if missing:
        raise LmmsEvalFailed(f"lmms-eval results lack {', '.join(missing)}:{log}")
    stamp = found[-1].name.removesuffix("_results.json")
    samples = {
        path.name.split("_samples_", 1)[1].removesuffix(".jsonl"): read_jsonl(path)
        for path in found[-1].parent.glob(f"{stamp}_samples_*.jsonl")
    }
    return results, samples
