"""The accuracy gate on the committed demo results: it passes them, catches a planted
regression, tolerates a small-sample wobble and fails on a missing row."""

import json
import shutil
from pathlib import Path

import pytest

from lmms_eval_flow.cli import main
from lmms_eval_flow.reporting.leaderboard import results_files
from lmms_eval_flow.reporting.regress import compare, difference_stderr, read_baseline, regress

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results" / "flow_temporal_toy"
BASELINE = ROOT / "results" / "baselines" / "flow_temporal_toy.csv"


def _copy_results(tmp_path: Path) -> Path:
    return Path(shutil.copytree(RESULTS, tmp_path / "current", ignore=shutil.ignore_patterns("leaderboard*")))


def _edit(results_dir: Path, regime: str, accuracy_change: float, samples: int | None = None) -> str:
    """Change the accuracy (and optionally the sample count) of one regime's results file (the
    demo writes each run under a folder named after it: ``staged/``, ``staged_query_last_frame-none/``)."""
    for path in results_files([results_dir]):
        data = json.loads(path.read_text())
        if path.relative_to(results_dir).parts[0] == regime:
            (task, metrics), = data["results"].items()
            metrics["accuracy,none"] = round(metrics["accuracy,none"] + accuracy_change, 6)
            if samples is not None:
                data["n-samples"][task]["effective"] = samples
            path.write_text(json.dumps(data))
            return task
    raise AssertionError(f"no results for regime={regime}")


def _gate(capsys, *current: Path, baseline: Path = BASELINE) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["regress", "--baseline", str(baseline), "--current", *map(str, current)])
        raise SystemExit(0)
    return exit_info.value.code, capsys.readouterr().out


def test_the_committed_results_pass_their_baseline(capsys):
    code, out = _gate(capsys, RESULTS)
    assert code == 0, out
    assert "REGRESSED" not in out and "no regression" in out


def test_a_planted_regression_fails_the_gate_and_is_named(tmp_path, capsys):
    current = _copy_results(tmp_path)
    _edit(current, "effective", -0.2)
    code, out = _gate(capsys, current)
    assert code == 1
    (line,) = [line for line in out.splitlines() if line.rstrip().endswith("REGRESSED")]
    assert "effective" in line and "-0.200" in line


def test_a_wobble_of_a_few_docs_passes(tmp_path, capsys):
    current = _copy_results(tmp_path)
    _edit(current, "staged", -3 / 250)
    code, out = _gate(capsys, current)
    assert code == 0, out


def test_the_allowed_drop_grows_as_the_sample_count_shrinks(tmp_path):
    baseline = read_baseline(BASELINE)
    row = baseline[baseline["regime"] == "full"].iloc[0]
    for samples, expected in [(250, "REGRESSED"), (20, "ok")]:
        current = baseline.copy()
        current.loc[current["regime"] == "full", "score"] = row["score"] - 0.1
        current.loc[current["regime"] == "full", "samples"] = samples
        base = baseline.copy()
        base.loc[base["regime"] == "full", "samples"] = samples
        status = compare(base, current).set_index("regime").loc["full", "status"]
        assert status == expected, (samples, status)


def test_a_missing_row_fails_the_gate(tmp_path, capsys):
    current = _copy_results(tmp_path)
    full_run = next(path for path in results_files([current]) if "regime=full," in path.read_text())
    full_run.unlink()
    code, out = _gate(capsys, current)
    assert code == 1
    assert "MISSING" in out


def test_scores_that_are_not_proportions_are_refused():
    baseline = read_baseline(BASELINE)
    current = baseline.assign(score=baseline["score"] * 100)
    with pytest.raises(ValueError, match="not a proportion"):
        compare(baseline, current)


def test_the_standard_error_of_a_difference():
    # p = 0.5 on 100 docs each side: sqrt(2 * 0.25 / 100), with the +1/+1 smoothing leaving 0.5 at 0.5.
    assert difference_stderr(0.5, 100, 0.5, 100) == pytest.approx((2 * 0.25 / 100) ** 0.5)
    assert difference_stderr(1.0, 50, 1.0, 50) > 0  # a perfect score still has noise


def test_regress_function_reports_every_baseline_row():
    table, passed = regress(BASELINE, [RESULTS])
    assert passed and len(table) == len(read_baseline(BASELINE))
