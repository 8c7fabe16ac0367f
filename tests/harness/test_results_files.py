"""lmms-eval's results files are checked once it has written them (``results_files``): a run
whose results or samples were not written stops with ``ResultsNotWritten`` and exits 1, where
lmms-eval alone logs the error and exits 0."""

import inspect
import json
import subprocess

import pytest
from conftest import SMALL_VIDEO_ARGS, TASKS_DIR
from lmms_eval.loggers.evaluation_tracker import EvaluationTracker
from lmms_eval.utils import sanitize_model_name
from loguru import logger
from test_reliability_run import stopped

from lmms_eval_flow.harness import runner
from lmms_eval_flow.harness.results_files import (FIX, check_results_file, check_samples_file, install_results_check,
                                                  results_folder)
from lmms_eval_flow.harness.run_errors import ResultsNotWritten

DATETIME = "20260101_120000"  # as lmms-eval's get_datetime_str gives it; also its date_id
SAMPLE = {"doc_id": 0, "doc": {}, "target": "A", "arguments": [("Which way?",)], "resps": [["A"]],
          "filtered_resps": ["A"], "doc_hash": "0"}  # the fields lmms-eval's save_results_samples reads


@pytest.fixture
def checked(monkeypatch):
    """The check installed on lmms-eval's EvaluationTracker for this test only."""
    for name in ("save_results_aggregated", "save_results_samples"):
        monkeypatch.setattr(EvaluationTracker, name, getattr(EvaluationTracker, name))
    monkeypatch.setattr(EvaluationTracker, "lmms_eval_flow_checks_files",
                        getattr(EvaluationTracker, "lmms_eval_flow_checks_files", False), raising=False)
    install_results_check()


def tracker(output_path) -> EvaluationTracker:
    """A tracker as lmms-eval's evaluator leaves it before saving, for ``--model_args pretrained=org/tiny``."""
    made = EvaluationTracker(output_path=str(output_path))
    made.general_config_tracker.log_experiment_args(model_source="qwen2_5_vl_flow", model_args="pretrained=org/tiny",
                                                    system_instruction=None, chat_template=None,
                                                    fewshot_as_multiturn=False)
    return made


def test_lmms_eval_writes_where_the_check_reads(checked, tmp_path):
    """The contract with lmms-eval 0.7.3 this check stands on: these methods, these parameters,
    and its files at the paths the check reads."""
    parameters = {name: list(inspect.signature(inspect.unwrap(getattr(EvaluationTracker, name))).parameters)
                  for name in ("save_results_aggregated", "save_results_samples")}
    assert parameters == {"save_results_aggregated": ["self", "results", "samples", "datetime_str"],
                          "save_results_samples": ["self", "task_name", "samples"]}
    saving = tracker(tmp_path)
    saving.save_results_aggregated(results={"results": {"flow_synthetic": {}}}, samples=None, datetime_str=DATETIME)
    saving.save_results_samples(task_name="flow_synthetic", samples=[dict(SAMPLE), dict(SAMPLE, doc_id=1)])
    folder = results_folder(saving)
    assert folder == tmp_path / "org__tiny"
    written = sorted(path for path in tmp_path.rglob("*") if path.is_file())
    assert written == [folder / f"{DATETIME}_results.json", folder / f"{DATETIME}_samples_flow_synthetic.jsonl"]
    assert json.loads(written[0].read_text())["results"] == {"flow_synthetic": {}}
    assert [json.loads(line)["doc_id"] for line in written[1].read_text().splitlines()] == [0, 1]


def test_installing_twice_checks_once(checked):
    installed = EvaluationTracker.save_results_aggregated, EvaluationTracker.save_results_samples
    install_results_check()
    assert (EvaluationTracker.save_results_aggregated, EvaluationTracker.save_results_samples) == installed
    assert all(method.__wrapped__ is inspect.unwrap(method) for method in installed)  # one wrapper on lmms-eval's


def test_a_results_file_lost_at_close_stops_the_run(checked, tmp_path):
    """A full disk: lmms-eval's write succeeds into the buffer and fails at the close the garbage
    collector makes, where Python drops the error (it reports it only in its development mode)."""
    saving = tracker(tmp_path)
    results_file = tmp_path / "org__tiny" / f"{DATETIME}_results.json"
    results_file.parent.mkdir()
    results_file.symlink_to("/dev/full")
    warnings = []
    sink = logger.add(warnings.append, level="WARNING")
    try:
        with pytest.raises(ResultsNotWritten) as stop:
            saving.save_results_aggregated(results={"results": {}}, samples=None, datetime_str=DATETIME)
    finally:
        logger.remove(sink)
    assert warnings == []  # lmms-eval saw no error
    assert str(stop.value) == f"lmms-eval did not write the run's results: {results_file} is not a regular file. {FIX}"
    assert "Free space on the disk, or give --output_path a folder this user can write" in FIX


def test_samples_lmms_eval_failed_to_write_stop_the_run(checked, tmp_path):
    """Lines an earlier save appended to the same file do not count for this one."""
    saving = tracker(tmp_path)
    saving.save_results_aggregated(results={"results": {}}, samples=None, datetime_str=DATETIME)
    saving.save_results_samples(task_name="flow_synthetic", samples=[dict(SAMPLE), dict(SAMPLE)])
    unsaveable = {key: value for key, value in SAMPLE.items() if key != "arguments"}  # lmms-eval logs a KeyError
    with pytest.raises(ResultsNotWritten) as stop:
        saving.save_results_samples(task_name="flow_synthetic", samples=[dict(SAMPLE), unsaveable])
    samples_file = tmp_path / "org__tiny" / f"{DATETIME}_samples_flow_synthetic.jsonl"
    assert str(stop.value) == (f"lmms-eval did not write the samples of task flow_synthetic: {samples_file} holds 1 "
                               f"of its 2 JSON lines. {FIX}")


def test_samples_saved_before_the_results_stop_the_run(checked, tmp_path):
    """lmms-eval names the samples file after the results file (its date_id); without it, it writes none."""
    with pytest.raises(ResultsNotWritten) as stop:
        tracker(tmp_path).save_results_samples(task_name="flow_synthetic", samples=[dict(SAMPLE)])
    assert str(stop.value) == ("lmms-eval did not write the samples of task flow_synthetic: their file is named after "
                               "the run's results file, not saved yet. Save the results first "
                               "(EvaluationTracker.save_results_aggregated)")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content, problem", [
    (b"", "is 0 bytes"),
    (b'{"results": {', ("is not valid JSON (JSONDecodeError: Expecting property name enclosed in double quotes: "
                        "line 1 column 14 (char 13))")),
])
def test_a_results_file_not_as_saved_is_named(tmp_path, content, problem):
    results_file = tmp_path / "results.json"
    results_file.write_bytes(content)
    with pytest.raises(ResultsNotWritten) as stop:
        check_results_file(results_file)
    assert str(stop.value) == f"lmms-eval did not write the run's results: {results_file} {problem}. {FIX}"


def test_a_samples_line_cut_short_does_not_count(tmp_path):
    samples_file = tmp_path / "samples.jsonl"
    samples_file.write_bytes('{"doc_id": 0}\n{"doc_id": 1, "resps": "\u00e9"}\n'.encode()[:-4])  # cut inside "é"
    with pytest.raises(ResultsNotWritten) as stop:
        check_samples_file(samples_file, 0, 2, "flow_synthetic")
    assert str(stop.value) == (f"lmms-eval did not write the samples of task flow_synthetic: {samples_file} holds 1 "
                               f"of its 2 JSON lines. {FIX}")


def test_an_unwritable_output_folder_stops_the_run(tiny_model_dir, tmp_path):
    """Through the real CLI: a plain file where lmms-eval makes the model's results folder (as root
    too, unlike a read-only folder), so its mkdir fails; lmms-eval alone would exit 0."""
    blocked = tmp_path / sanitize_model_name(str(tiny_model_dir))
    blocked.write_text("")
    command, env = runner.lmms_eval_command("qwen2_5_vl_flow", f"pretrained={tiny_model_dir},{SMALL_VIDEO_ARGS}",
                                            "flow_synthetic", TASKS_DIR, tmp_path, "--limit", "1")
    message = stopped(subprocess.run(command, env=env, capture_output=True, text=True, timeout=600), tmp_path)
    assert message.startswith(f"ResultsNotWritten: lmms-eval did not write the run's results: {blocked}/")
    assert message.endswith(f"_results.json is missing. {FIX}")
    assert blocked.read_text() == ""
