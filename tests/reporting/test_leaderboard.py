"""The leaderboard, built from the committed demo results: its numbers are the results files'."""

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from lmms_eval_flow.cli import main
from lmms_eval_flow.reporting.leaderboard import build_leaderboard, category_table, results_files, to_html
from lmms_eval_flow.engine.regimes import PARAMETERS

RESULTS = Path(__file__).resolve().parents[2] / "results" / "flow_temporal_toy"


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return build_leaderboard([RESULTS])


def test_one_row_per_results_file_with_its_numbers(table):
    files = results_files([RESULTS])
    assert len(table) == len(files) >= 5
    for row in table.itertuples(index=False):
        data = json.loads(Path(row.source).read_text())
        metrics = data["results"][row.task]
        assert row.metric == "accuracy"
        assert row.score == metrics["accuracy,none"]
        assert row.stderr == metrics["accuracy_stderr,none"]
        assert row.samples == data["n-samples"][row.task]["effective"]
        assert row.attention_edges == metrics["attention_edges,none"]
        assert row.attention_kept == metrics["attention_kept,none"]
        assert row.categories == {key.split(",")[0].removeprefix("accuracy_"): value for key, value in metrics.items()
                                  if re.fullmatch(r"accuracy_[a-z]+,none", key) and "stderr" not in key}


def test_delta_is_against_full_of_the_same_checkpoint_and_task(table):
    full = table[table["regime"] == "full"].set_index(["checkpoint", "task"])["score"]
    for row in table.itertuples(index=False):
        assert row.delta_vs_full == pytest.approx(row.score - full[(row.checkpoint, row.task)])
    assert table.iloc[0]["regime"] == "full"  # SPEC's order, full first


def test_the_committed_leaderboard_is_the_one_built_from_the_committed_results(table):
    committed = pd.read_csv(RESULTS / "leaderboard.csv")
    columns = ["checkpoint", "regime", "task", "score", "stderr", "delta_vs_full", "samples", "attention_edges",
               "attention_kept"]
    pd.testing.assert_frame_equal(committed[columns], table[columns], check_dtype=False)


def test_the_html_page_is_self_contained(table):
    page = to_html(table)
    assert page.count('src="data:image/png;base64,') == 1
    assert not re.search(r'(src|href)="(?!data:)', page)
    for regime in table["regime"]:
        assert f"<td>{regime}</td>" in page


def test_an_upstream_model_counts_as_full(tmp_path, table):
    source = Path(table[table["regime"].str.startswith("effective")].iloc[0]["source"])
    data = json.loads(source.read_text())
    flow_arguments = {"regime", *PARAMETERS}
    args = ",".join(part for part in data["config"]["model_args"].split(",")
                    if part.split("=")[0] not in flow_arguments)
    data["config"].update(model="qwen2_5_vl", model_args=args)
    (tmp_path / "upstream_results.json").write_text(json.dumps(data))
    (row,) = build_leaderboard([tmp_path]).to_dict("records")
    assert row["regime"] == "full" and row["delta_vs_full"] == 0


def test_the_same_row_twice_is_an_error(tmp_path):
    first = results_files([RESULTS])[0]
    shutil.copy(first, tmp_path / "again_results.json")
    with pytest.raises(ValueError, match="several results for the same checkpoint, task and regime"):
        build_leaderboard([first, tmp_path])


def test_cli_writes_markdown_csv_and_html(tmp_path, capsys):
    main(["leaderboard", str(RESULTS), "--output", str(tmp_path)])
    assert "| checkpoint" in capsys.readouterr().out
    written = sorted(path.name for path in tmp_path.iterdir())
    assert written == ["leaderboard.csv", "leaderboard.html", "leaderboard.md", "leaderboard_categories.csv"]
    categories = pd.read_csv(tmp_path / "leaderboard_categories.csv")
    assert set(categories.columns) >= {"direction", "order", "size", "count", "static"}
    assert len(categories) == len(category_table(build_leaderboard([RESULTS])))
