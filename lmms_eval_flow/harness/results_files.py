"""The check that lmms-eval's results files were written, made after lmms-eval saves them.

lmms-eval's ``EvaluationTracker`` writes the results JSON (``save_results_aggregated``) and each
task's samples (``save_results_samples``) inside ``try ... except Exception`` that only logs, and
writes the results JSON with a file it leaves to the garbage collector to close: on a full disk
its ``ENOSPC`` comes at that close, where Python drops it (outside its development mode), and
leaves a 0-byte file. The run then exits 0 with nothing valid written. lmms-eval offers no hook after these writes, so
``install_results_check`` wraps the two methods on the class; this is the one place the harness
does so (a contract test keeps it matched to lmms-eval's methods and paths). A file that is not
what was saved stops the run with ``ResultsNotWritten``.
"""

from __future__ import annotations

import functools
import json
import os
import stat
from pathlib import Path

from lmms_eval.loggers.evaluation_tracker import EvaluationTracker

from lmms_eval_flow.harness.run_errors import ResultsNotWritten

FIX = "Free space on the disk, or give --output_path a folder this user can write, and run the evaluation again"


def install_results_check() -> None:
    """From now on, every ``EvaluationTracker`` checks the files it saved; a second call changes nothing."""
    if getattr(EvaluationTracker, "lmms_eval_flow_checks_files", False):
        return
    save_aggregated, save_samples = EvaluationTracker.save_results_aggregated, EvaluationTracker.save_results_samples

    @functools.wraps(save_aggregated)
    def save_results_aggregated(self, results: dict, samples: dict, datetime_str: str) -> None:
        save_aggregated(self, results=results, samples=samples, datetime_str=datetime_str)
        if self.output_path:
            check_results_file(results_folder(self) / f"{datetime_str.replace(':', '-')}_results.json")

    @functools.wraps(save_samples)
    def save_results_samples(self, task_name: str, samples: list) -> None:
        if not self.output_path:
            return save_samples(self, task_name=task_name, samples=samples)
        if not hasattr(self, "date_id"):  # lmms-eval names the samples file after the results file
            raise ResultsNotWritten(f"lmms-eval did not write the samples of task {task_name}: their file is named "
                                    f"after the run's results file, not saved yet. Save the results first "
                                    f"(EvaluationTracker.save_results_aggregated)")
        path = results_folder(self) / f"{self.date_id}_samples_{task_name}.jsonl"
        start = path.stat().st_size if path.is_file() else 0  # lmms-eval appends to a file already there
        save_samples(self, task_name=task_name, samples=samples)
        check_samples_file(path, start, len(samples), task_name)

    EvaluationTracker.save_results_aggregated = save_results_aggregated
    EvaluationTracker.save_results_samples = save_results_samples
    EvaluationTracker.lmms_eval_flow_checks_files = True


def results_folder(tracker: EvaluationTracker) -> Path:
    """Where lmms-eval writes a run's files: ``<output_path>/<model_name_sanitized>``."""
    return Path(str(tracker.output_path)) / str(tracker.general_config_tracker.model_name_sanitized)


def check_results_file(path: Path) -> None:
    """Stop the run unless ``path`` is a non-empty regular file holding JSON."""
    problem = file_problem(path)
    if problem is None:
        try:
            json.loads(path.read_bytes())
        except (OSError, ValueError) as error:
            problem = f"is not valid JSON ({type(error).__name__}: {error})"
    if problem is not None:
        raise ResultsNotWritten(f"lmms-eval did not write the run's results: {path} {problem}. {FIX}")


def check_samples_file(path: Path, start: int, expected: int, task_name: str) -> None:
    """Stop the run unless ``path`` gained, from byte ``start`` on, one JSON line per sample."""
    if expected == 0:
        return  # lmms-eval writes no file for a task without samples
    problem = file_problem(path, empty_allowed=True)
    if problem is None:
        try:
            with open(path, "rb") as file:
                file.seek(start)
                appended = file.read().decode("utf-8", errors="replace")  # a line cut mid-character is not JSON
        except OSError as error:
            problem = f"cannot be read ({type(error).__name__}: {error})"
        else:
            valid = sum(is_json(line) for line in appended.split("\n") if line.strip())
            if valid != expected:
                problem = f"holds {valid} of its {expected} JSON lines"
    if problem is not None:
        raise ResultsNotWritten(f"lmms-eval did not write the samples of task {task_name}: {path} {problem}. {FIX}")


def file_problem(path: Path, empty_allowed: bool = False) -> str | None:
    """What keeps ``path`` from being a written file (missing, not a regular file, 0 bytes), or None."""
    try:
        status = os.stat(path)
    except OSError:
        return "is missing"
    if not stat.S_ISREG(status.st_mode):
        return "is not a regular file"
    if status.st_size == 0 and not empty_allowed:
        return "is 0 bytes"
    return None


def is_json(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True
