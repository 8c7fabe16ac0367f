"""The report commands on results that are not a clean run: stderr "N/A" (a --limit 1 run, upstream
videomme), failed samples, a task with no accuracy, files that are not results; and baselines the
gate cannot compare against. Each case runs the console script as users type it (a subprocess);
its variants run the same ``main`` in this process, which saves the seconds of importing lmms-eval."""

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lmms_eval_flow.cli import main

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results" / "flow_temporal_toy"
BASELINE = ROOT / "results" / "baselines" / "flow_temporal_toy.csv"
FULL_RUN = next((RESULTS / "qwen2_5_vl_temporal_toy" / "full").rglob("*_results.json"))
TASK = "flow_temporal_toy"


def cli(*args, in_process=False) -> subprocess.CompletedProcess:
    """The command's exit code, stdout and stderr; from a subprocess unless ``in_process``."""
    if not in_process:
        return subprocess.run([sys.executable, "-m", "lmms_eval_flow.cli", *map(str, args)], capture_output=True,
                              text=True)
    stdout, stderr, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            main(list(map(str, args)))
        except SystemExit as exit_info:
            code = exit_info.code
    return subprocess.CompletedProcess(args, code, stdout.getvalue(), stderr.getvalue())


def results_file(folder: Path, edit=None, name: str = "run") -> Path:
    """The committed full run, changed by ``edit(data, metrics)``, as ``folder/<name>_results.json``."""
    data = json.loads(FULL_RUN.read_text())
    if edit:
        edit(data, data["results"][TASK])
    path = folder / name / f"{name}_results.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data))
    return path


def failed(count: int, samples: int, accuracy="keep"):
    """An edit: ``count`` of ``samples`` failed; ``accuracy`` NaN, None, "absent" or kept."""
    def edit(data, metrics):
        data["n-samples"][TASK] = {"original": samples, "effective": samples}
        metrics["failed_samples,none"] = {"count": count, "reasons": [f"{TASK} doc {i}: missing" for i in range(count)]}
        if accuracy == "absent":
            del metrics["accuracy,none"], metrics["accuracy_stderr,none"]
        elif accuracy != "keep":
            metrics["accuracy,none"] = metrics["accuracy_stderr,none"] = accuracy
    return edit


def board(tmp_path: Path, *results, flags=(), in_process=False) -> tuple[subprocess.CompletedProcess, pd.DataFrame | None]:
    out = tmp_path / "board"
    run = cli("leaderboard", *results, "--output", out, *flags, in_process=in_process)
    return run, pd.read_csv(out / "leaderboard.csv") if run.returncode == 0 else None


# -- leaderboard ---------------------------------------------------------------------------


def test_stderr_na_of_a_one_doc_run_and_of_upstream_videomme_writes_every_file(tmp_path):
    def one_doc(data, metrics):
        data["n-samples"][TASK] = {"original": 250, "effective": 1}
        metrics["accuracy_stderr,none"] = "N/A"

    def upstream_videomme(data, metrics):
        data["config"].update(model="qwen2_5_vl", model_args="pretrained=Qwen/Qwen2.5-VL-7B-Instruct")
        data["results"] = {"videomme": {"alias": "videomme", "videomme_perception_score,none": 62.3,
                                        "videomme_perception_score_stderr,none": "N/A"}}
        data["higher_is_better"] = {"videomme": {"videomme_perception_score": True}}
        data["n-samples"] = {"videomme": {"original": 2700, "effective": 2700}}

    run, table = board(tmp_path, results_file(tmp_path, one_doc, "limit1"),
                       results_file(tmp_path, upstream_videomme, "videomme"))
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in (tmp_path / "board").iterdir()) == [
        "leaderboard.csv", "leaderboard.html", "leaderboard.md", "leaderboard_categories.csv"]
    rows = table.set_index("task")
    assert rows.loc[TASK, "score"] == json.loads(FULL_RUN.read_text())["results"][TASK]["accuracy,none"]
    assert rows["stderr"].isna().all() and rows.loc[TASK, "samples"] == 1
    assert rows.loc["videomme", ["metric", "score", "regime"]].tolist() == ["videomme_perception_score", 62.3, "full"]
    assert pd.isna(rows.loc["videomme", "failed"])  # an upstream model does not report failures: unknown, not 0
    assert "nan" not in (tmp_path / "board" / "leaderboard.md").read_text()


def test_failed_samples_are_shown_and_a_high_share_is_marked(tmp_path):
    few, many = results_file(tmp_path, failed(12, 250), "few"), results_file(tmp_path, failed(30, 250), "many")
    edit = json.loads(many.read_text())
    edit["config"]["model_args"] = edit["config"]["model_args"].replace("regime=full", "regime=staged")
    many.write_text(json.dumps(edit))
    run, table = board(tmp_path, few, many)
    assert run.returncode == 0, run.stderr
    rows = table.set_index(table["regime"].str.split().str[0])
    assert rows["failed"].to_dict() == {"full": 12, "staged": 30}
    assert pd.isna(rows.loc["full", "note"])  # 4.8%: not over 5%
    assert rows.loc["staged", "note"] == "FAILED SAMPLES: 30 of 250 samples failed (12% > 5%)"
    assert "FAILED SAMPLES: 30 of 250" in run.stdout
    run, table = board(tmp_path, few, many, flags=["--max-failed-share", "0.2"], in_process=True)
    assert table["note"].isna().all()


@pytest.mark.parametrize("accuracy, in_process", [(float("nan"), False), (None, True), ("absent", True)])
def test_a_task_whose_every_sample_failed_is_not_scored_and_not_zero(tmp_path, accuracy, in_process):
    path = results_file(tmp_path, failed(12, 12, accuracy))
    run, table = board(tmp_path, path, in_process=in_process)
    assert run.returncode == 0, run.stderr
    (row,) = table.to_dict("records")
    assert row["note"] == "NOT SCORED: 12 of 12 samples failed" and row["failed"] == 12
    assert pd.isna(row["score"]) and pd.isna(row["delta_vs_full"]) and row["metric"] == "accuracy"
    markdown = (tmp_path / "board" / "leaderboard.md").read_text()
    assert "NOT SCORED" in markdown and "nan" not in markdown and "| accuracy |         |" in markdown
    assert "NOT SCORED" in (tmp_path / "board" / "leaderboard.html").read_text()
    gate = cli("regress", "--baseline", BASELINE, "--current", path, in_process=in_process)
    assert gate.returncode == 1 and "NOT SCORED" in gate.stdout
    assert "rows fail the gate against" in gate.stdout


def _not_results(tmp_path: Path, content: str) -> tuple[Path, Path]:
    """A good results file and a bad one beside it; the output folder holds an older leaderboard."""
    good = results_file(tmp_path, name="good")
    bad = tmp_path / "bad" / "bad_results.json"
    bad.parent.mkdir()
    bad.write_text(content)
    (tmp_path / "board").mkdir()
    (tmp_path / "board" / "leaderboard.md").write_text("older\n")
    return good, bad


@pytest.mark.parametrize("content, message, in_process", [
    ('{"results": {"flow_temporal_toy": {"accuracy,n', "cannot be read as an lmms-eval results JSON: Unterminated",
     False),
    (json.dumps({"results": {TASK: {"accuracy,none": 0.5}}}), "it has no 'config' object (the model and its arguments)",
     True),
    (json.dumps({"config": {"model": "x"}}), "it has no 'results' object (the scores)", True),
    ("[]", "it holds a list, not an object", True),
])
def test_a_file_that_is_not_results_is_named_and_nothing_is_written(tmp_path, content, message, in_process):
    good, bad = _not_results(tmp_path, content)
    run, _ = board(tmp_path, tmp_path, in_process=in_process)  # the folder: both files
    assert run.returncode == 2 and not run.stdout
    assert f"lmms-eval-flow leaderboard: error: {bad} " in run.stderr and message in run.stderr
    assert [p.name for p in (tmp_path / "board").iterdir()] == ["leaderboard.md"]
    assert (tmp_path / "board" / "leaderboard.md").read_text() == "older\n"


def test_a_share_outside_0_1_is_refused(tmp_path):
    run, _ = board(tmp_path, results_file(tmp_path), flags=["--max-failed-share", "5"], in_process=True)
    assert run.returncode == 2 and "the share of failed samples 5.0 must be in 0..1" in run.stderr
    assert not (tmp_path / "board").exists()


# -- regress -------------------------------------------------------------------------------


def _baseline(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "baseline.csv"
    path.write_text(text)
    return path


def test_a_baseline_with_a_header_and_no_rows_is_an_error(tmp_path):
    header = BASELINE.read_text().splitlines()[0]
    gate = cli("regress", "--baseline", _baseline(tmp_path, header + "\n"), "--current", RESULTS)
    assert gate.returncode == 2 and not gate.stdout
    assert f"lmms-eval-flow regress: error: baseline {tmp_path / 'baseline.csv'} has a header and no rows" in gate.stderr


def test_a_baseline_row_given_twice_is_an_error(tmp_path):
    lines = BASELINE.read_text().splitlines()
    row = pd.read_csv(BASELINE).iloc[1]
    gate = cli("regress", "--baseline", _baseline(tmp_path, "\n".join([*lines, lines[2]]) + "\n"), "--current", RESULTS)
    assert gate.returncode == 2 and not gate.stdout
    assert "holds the same checkpoint / task / regime more than once" in gate.stderr
    assert f"({row['checkpoint']} / {row['task']} / {row['regime']})" in gate.stderr


@pytest.mark.parametrize("text, message", [
    ("", "cannot be read as a leaderboard CSV: No columns to parse"),
    ("checkpoint,task,regime,metric,score,samples\ntoy,t,full,accuracy,,250\n",
     "has rows without a score (toy / t / full)"),
])
def test_a_baseline_that_cannot_be_compared_against_is_named(tmp_path, text, message):
    gate = cli("regress", "--baseline", _baseline(tmp_path, text), "--current", RESULTS, in_process=True)
    assert gate.returncode == 2 and f"baseline {tmp_path / 'baseline.csv'} " in gate.stderr and message in gate.stderr
