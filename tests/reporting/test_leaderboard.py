"""The leaderboard, built from the committed demo results: its numbers are the results files'."""

import itertools
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.text import Text

from lmms_eval_flow.cli import main
from lmms_eval_flow.reporting.leaderboard import (PLOT_X, build_leaderboard, category_table, plot_figure,
                                                  results_files, to_html)
from lmms_eval_flow.engine.regimes import PARAMETERS

RESULTS = Path(__file__).resolve().parents[2] / "results" / "flow_temporal_toy"
PLAIN = RESULTS / "qwen2_5_vl_temporal_toy"  # one checkpoint's runs, a folder per run


def copy_results(folder: Path, checkpoint: str) -> Path:
    """The plain toy's committed results files under ``folder/checkpoint``, as run from a checkpoint of
    that name."""
    for source in results_files([PLAIN]):
        data = json.loads(source.read_text())
        data["config"]["model_args"] = re.sub(r"pretrained=[^,]*", f"pretrained=/models/{checkpoint}",
                                              data["config"]["model_args"])
        copy = folder / checkpoint / source.relative_to(PLAIN)
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(json.dumps(data))
    return folder / checkpoint


def with_costs(folder: Path) -> dict[str, dict]:
    """The plain toy's committed results in ``folder``, all but the ``full`` run given measured costs,
    distinct per run, and the ``full`` run none (as a run made before the cost metrics); returns each
    run's costs by its results file."""
    costs = {}
    for run, source in enumerate(results_files([PLAIN])):
        data = json.loads(source.read_text())
        copy = folder / source.relative_to(PLAIN)
        metrics = data["results"]["flow_temporal_toy"]
        for key in [key for key in metrics if key.startswith(("prefill_seconds", "kv_cache_bytes", "attention_flops"))]:
            del metrics[key]
        if "regime=full" not in data["config"]["model_args"]:
            costs[str(copy)] = {"prefill_seconds": 0.25 * (run + 1), "kv_cache_bytes": 40960.0 * (run + 1),
                             "attention_flops": 3.2e6 * (run + 1)}
            data["results"]["flow_temporal_toy"].update({f"{name},none": value
                                                         for name, value in costs[str(copy)].items()})
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(json.dumps(data))
    return costs


@pytest.fixture
def two_checkpoints(tmp_path) -> Path:
    for checkpoint in ["toy_a", "toy_b"]:
        copy_results(tmp_path / "results", checkpoint)
    return tmp_path / "results"


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
    assert list(committed["source"]) == [os.path.relpath(source, RESULTS) for source in table["source"]]


def test_the_html_page_is_self_contained(table):
    page = to_html(table)
    assert page.count('src="data:image/png;base64,') == 1
    assert not re.search(r'(src|href)="(?!data:)', page)
    for regime in table["regime"]:
        assert f"<td>{regime}</td>" in page


def test_written_files_name_their_results_relative_to_their_folder(two_checkpoints):
    main(["leaderboard", str(two_checkpoints), "--output", str(two_checkpoints)])
    for written in two_checkpoints.glob("leaderboard*"):
        text = written.read_text()
        assert str(two_checkpoints.parent) not in text and "/tmp" not in text, written.name
    sources = pd.read_csv(two_checkpoints / "leaderboard.csv")["source"]
    assert len(sources) == 12 and all((two_checkpoints / source).is_file() for source in sources)
    assert sources.str.startswith("toy_a/full/").sum() == 1
    page = (two_checkpoints / "leaderboard.html").read_text()
    assert all(f"<td>{source}</td>" in page for source in sources)


def test_each_table_is_sortable_inside_a_box_that_scrolls(table):
    page = to_html(table)
    assert ".scroll{overflow-x:auto" in page
    boxed = re.findall(r'<div class="scroll">\s*<table [^>]*class="[^"]*\bsortable\b', page)
    assert len(boxed) == page.count("<table") == 2
    assert re.search(r'<script>.*querySelectorAll\("table\.sortable thead th"\).*</script>', page, re.DOTALL)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium")
def test_clicking_a_header_sorts_its_rows_numerically_in_a_browser(tmp_path, table):
    """The page's own script, run by Chromium: clicking ``score`` once sorts ascending, twice descending."""
    clicks = """<script>
      const table = document.querySelector("table.sortable");
      const score = [...table.tHead.rows[0].cells].find(cell => cell.textContent === "score");
      const scores = () => [...table.tBodies[0].rows].map(row => row.cells[score.cellIndex].textContent).join(" ");
      score.click(); const ascending = scores(); score.click();
      document.title = ascending + "|" + scores();
    </script></body>"""
    page = tmp_path / "clicked.html"
    page.write_text(to_html(table).replace("</body>", clicks))
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    ascending, descending = (order.split() for order in re.search(r"<title>(.*)</title>", dom)[1].split("|"))
    expected = sorted(table["score"])
    assert [float(score) for score in ascending] == pytest.approx(expected)
    assert [float(score) for score in descending] == pytest.approx(expected[::-1])


def test_the_plot_names_each_regime_once_and_no_label_covers_another(two_checkpoints):
    table = build_leaderboard([two_checkpoints])
    figure = plot_figure(table)
    figure.draw_without_rendering()
    (legend,) = figure.legends
    series = [f"{checkpoint} / flow_temporal_toy" for checkpoint in ["toy_a", "toy_b"]]
    assert [text.get_text() for text in legend.get_texts()] == [*series, *table["regime"].drop_duplicates()]
    regime_markers = [(handle.get_marker(), handle.get_fillstyle()) for handle in legend.legend_handles[2:]]
    assert len(set(regime_markers)) == len(regime_markers) == 6
    (axes,) = figure.axes
    assert len(axes.containers) == len(table)  # every row a point, none hidden under a label
    labels = [text for text in figure.findobj(Text) if text.get_visible() and text.get_text()]
    assert not legend.get_window_extent().overlaps(axes.get_window_extent())
    for first, second in itertools.combinations(labels, 2):
        assert not first.get_window_extent().overlaps(second.get_window_extent()), (first, second)


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


def test_rows_carry_each_runs_measured_costs(tmp_path):
    costs = with_costs(tmp_path)
    table = build_leaderboard([tmp_path]).set_index("source")
    assert len(costs) == len(table) - 1
    for source, measured in costs.items():
        assert table.loc[source, list(measured)].to_dict() == measured
    full = table[table["regime"] == "full"]
    assert full[list(PLOT_X)[2:]].isna().all(axis=None)  # a run without costs has none, not 0
    assert table.columns.get_loc("prefill_seconds") == table.columns.get_loc("attention_kept") + 1


@pytest.mark.parametrize("x", ["kv_cache_bytes", "prefill_seconds", "attention_flops", "attention_edges"])
def test_the_score_can_be_plotted_against_any_cost(tmp_path, x):
    with_costs(tmp_path)
    table = build_leaderboard([tmp_path])
    figure = plot_figure(table, x=x)
    (axes,) = figure.axes
    drawn = table[table[x].notna()]  # against a measured cost, the run that did not measure it is not drawn
    assert len(drawn) == len(table) - (x != "attention_edges")
    points = [(container.lines[0].get_xdata()[0], container.lines[0].get_ydata()[0]) for container in axes.containers]
    assert points == list(zip(drawn[x], drawn["score"]))
    assert axes.get_xlabel() == PLOT_X[x]


def test_cli_plots_against_the_cost_asked_for_and_refuses_others(tmp_path, capsys):
    with_costs(tmp_path / "results")
    main(["leaderboard", str(tmp_path / "results"), "--output", str(tmp_path / "board"), "--plot-x", "kv_cache_bytes"])
    page = (tmp_path / "board" / "leaderboard.html").read_text()
    assert f'<img alt="score against {PLOT_X["kv_cache_bytes"]}"' in page
    assert "<th>kv_cache_bytes</th>" in page and "<td>4.096e+04</td>" in page  # effective's, the first run
    with pytest.raises(SystemExit) as stopped:
        main(["leaderboard", str(tmp_path / "results"), "--plot-x", "accuracy"])
    assert stopped.value.code == 2
    assert capsys.readouterr().err == ("lmms-eval-flow leaderboard: error: cannot plot the score against 'accuracy'; "
                                       "valid: " + ", ".join(PLOT_X) + "\n")
