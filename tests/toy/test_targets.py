"""toy.targets: what the known-answer toy's plant predicts for each regime, read from a demo's results
(the committed ones, and copies with a run left out)."""

import shutil
from pathlib import Path

import pytest

from lmms_eval_flow.reporting.leaderboard import build_leaderboard
from lmms_eval_flow.toy import KNOWN_ANSWER_DIR
from lmms_eval_flow.toy.targets import check_targets

RESULTS = Path(__file__).resolve().parents[2] / "results" / "flow_temporal_toy"
KNOWN = KNOWN_ANSWER_DIR.name


def test_the_targets_read_each_regime_from_the_leaderboard():
    table = build_leaderboard([RESULTS])
    checks = check_targets(table, KNOWN)
    rows = table[table["checkpoint"] == KNOWN].set_index("regime")
    assert checks.iloc[0]["measured"] == f"{rows.loc['full', 'score']:.3f}"
    assert checks.iloc[0]["met"] == (rows.loc["full", "score"] >= 0.90)
    effective = next(label for label in rows.index if label.startswith("effective"))
    delta = rows.loc[effective, "score"] - rows.loc["full", "score"]
    (measured,) = checks[(checks["regime"] == "effective") & checks["target"].str.startswith(">=")]["measured"]
    assert measured == f"{rows.loc[effective, 'score']:.3f} ({delta:+.3f})"
    assert set(checks["regime"]) == {"full", "effective", "random", "temporal_exit", "staged stage 2"}


def test_a_regime_that_did_not_run_misses_its_target(tmp_path):
    current = Path(shutil.copytree(RESULTS / KNOWN, tmp_path / KNOWN))
    shutil.rmtree(current / "random")
    checks = check_targets(build_leaderboard([tmp_path]), KNOWN).set_index("regime")
    assert checks.loc["random", "measured"] == "did not run" and not checks.loc["random", "met"]


def test_targets_need_a_full_run(tmp_path):
    current = Path(shutil.copytree(RESULTS / KNOWN, tmp_path / KNOWN))
    shutil.rmtree(current / "full")
    with pytest.raises(ValueError, match="no full run of qwen2_5_vl_known_answer_toy"):
        check_targets(build_leaderboard([tmp_path]), KNOWN)
