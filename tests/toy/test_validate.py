"""``lmms-eval-flow validate``: the knockout sweep and calibrate checked against the known-answer
toy's planted ranges. Scoring on hand-made sweep summaries; the real sweep on the shipped toy."""

import subprocess
import sys

import pandas as pd
import pytest

from lmms_eval_flow.engine.regimes import RANGE_KEYS
from lmms_eval_flow.toy import KNOWN_ANSWER_DIR, planted_ranges
from lmms_eval_flow.toy.validate import score_recovery

PLANTED = {"cross_frame": "1-4", "video_question": "5-8", "question_last": "9-12"}
CLI = [sys.executable, "-m", "lmms_eval_flow.cli"]


def summary(changes: dict[str, dict[int, float]]) -> pd.DataFrame:
    """A knockout summary: every pathway at every layer of 12, 0% unless ``changes`` says."""
    return pd.DataFrame([{"pathway": key, "layer": layer, "relative_change": changes.get(key, {}).get(layer, 0.0)}
                         for key in RANGE_KEYS for layer in range(1, 13)])


def planted_drops(**overrides) -> dict[str, dict[int, float]]:
    drops = {key: {layer: -40.0 for layer in range(int(text.split("-")[0]), int(text.split("-")[1]) + 1)}
             for key, text in PLANTED.items()}
    for key, layers in overrides.items():
        drops[key] = layers
    return drops


def test_drops_exactly_in_the_planted_layers_pass_with_precision_and_recall_one():
    table = score_recovery(summary(planted_drops()), PLANTED, 12).set_index("pathway")
    assert table["recovered"].to_dict() == PLANTED
    assert (table["precision"] == 1).all() and (table["recall"] == 1).all() and table["passed"].all()


def test_a_drop_one_layer_outside_its_range_fails_on_precision():
    drops = planted_drops(video_question={4: -6.0, 5: -40.0, 6: -40.0, 7: -40.0, 8: -40.0})
    row = score_recovery(summary(drops), PLANTED, 12).set_index("pathway").loc["video_question"]
    assert row["recovered"] == "4-8" and row["precision"] == pytest.approx(0.8) and not row["passed"]


def test_a_range_found_only_in_part_fails_below_sixty_percent_recall_and_passes_above():
    two = score_recovery(summary(planted_drops(question_last={10: -9.0, 11: -9.0})), PLANTED, 12)
    three = score_recovery(summary(planted_drops(question_last={9: -9.0, 10: -9.0, 11: -9.0})), PLANTED, 12)
    assert two.set_index("pathway").loc["question_last", ["recall", "passed"]].tolist() == [0.5, False]
    assert three.set_index("pathway").loc["question_last", ["recall", "passed"]].tolist() == [0.75, True]


def test_a_pathway_with_no_drop_recovers_nothing_and_fails():
    row = score_recovery(summary(planted_drops(cross_frame={3: -4.9})), PLANTED, 12).set_index("pathway").loc["cross_frame"]
    assert row["recovered"] == "none" and row["recall"] == 0 and pd.isna(row["precision"]) and not row["passed"]


def test_validate_refuses_a_checkpoint_without_a_plant(tiny_model_dir, tmp_path):
    run = subprocess.run([*CLI, "validate", "--checkpoint", str(tiny_model_dir), "--output", str(tmp_path)],
                         capture_output=True, text=True)
    assert run.returncode != 0 and "has no planted ranges" in run.stderr


def test_the_shipped_known_answer_toy_records_its_plant():
    assert planted_ranges(KNOWN_ANSWER_DIR) == PLANTED


def test_the_validation_of_the_shipped_toy_reports_and_exits_as_its_table_says(tmp_path):
    """The validation CI runs (the first 20 docs: 4 per question type): the sweep over every layer, the
    recovered ranges scored against the planted ones, and the exit code of the targets."""
    run = subprocess.run([*CLI, "validate", "--limit", "20", "--output", str(tmp_path)], capture_output=True, text=True)
    table = pd.read_csv(tmp_path / "validation.csv").set_index("pathway")
    assert table["planted"].to_dict() == PLANTED
    summary = pd.read_csv(tmp_path / "sweep" / "summary.csv")
    assert sorted(summary["layer"].unique()) == list(range(1, 13)) and set(summary["pathway"]) == set(RANGE_KEYS)
    pd.testing.assert_frame_equal(table, score_recovery(summary, PLANTED, 12).set_index("pathway"), check_dtype=False)
    missed = table.index[~table["passed"]].tolist()
    assert run.returncode == (1 if missed else 0), run.stdout + run.stderr[-3000:]
    if missed:
        assert f"did not recover the planted range of {', '.join(missed)}" in run.stdout
