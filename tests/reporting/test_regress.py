"""The regression gate on the committed demo results, doc by doc: it passes them unchanged (also
with --exact), and catches what a broken regime does: blocking nothing (a rise), blocking too
much (a drop), an edge count off by one, a flipped doc under --exact, a doc gone."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from lmms_eval_flow.cli import main
from lmms_eval_flow.reporting.doc_outcomes import samples_file
from lmms_eval_flow.reporting.leaderboard import results_files
from lmms_eval_flow.reporting.regress import docs_path, paired_p_value, regress

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results" / "flow_temporal_toy"
BASELINE = ROOT / "results" / "baselines" / "flow_temporal_toy.csv"
TASK = "flow_temporal_toy"


def _copy_results(tmp_path: Path) -> Path:
    return Path(shutil.copytree(RESULTS, tmp_path / "current", ignore=shutil.ignore_patterns("leaderboard*")))


def _run_of(results_dir: Path, regime: str, checkpoint: str = "qwen2_5_vl_temporal_toy") -> Path:
    """The results JSON of one run of the demo (each under ``<checkpoint>/<run>/``: ``.../staged/``)."""
    (path,) = [path for path in results_files([results_dir])
               if path.relative_to(results_dir).parts[:2] == (checkpoint, regime)]
    return path


def _edit_docs(results_dir: Path, regime: str, edit) -> list[dict]:
    """Rewrite one run's samples with ``edit(samples)`` and its aggregates to match, as a run whose
    docs came out so would have written them."""
    results = _run_of(results_dir, regime)
    path = samples_file(results, TASK)
    samples = [json.loads(line) for line in path.read_text().splitlines()]
    edit(samples)
    path.write_text("".join(json.dumps(sample) + "\n" for sample in samples))
    data = json.loads(results.read_text())
    metrics = data["results"][TASK]
    metrics["accuracy,none"] = sum(sample["accuracy"] for sample in samples) / len(samples)
    metrics["attention_edges,none"] = sum(sample["attention_edges"] for sample in samples) / len(samples)
    results.write_text(json.dumps(data))
    return samples


def _flip(samples: list[dict], to: float, count: int) -> list[int]:
    """Turn ``count`` docs scored otherwise into ``to`` (1.0 right, 0.0 wrong), replies with them."""
    flipped = [sample for sample in samples if sample["accuracy"] != to][:count]
    for sample in flipped:
        sample["accuracy"] = to
        sample["filtered_resps"] = sample["target"] if to else "Z"
    return [sample["doc_id"] for sample in flipped]


def _gate(capsys, *current: Path, flags=(), baseline: Path = BASELINE) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["regress", "--baseline", str(baseline), "--current", *map(str, current), *flags])
        raise SystemExit(0)
    return exit_info.value.code, capsys.readouterr().out


def _status(current: Path, regime: str, checkpoint: str = "qwen2_5_vl_temporal_toy", **options) -> pd.Series:
    table, _ = regress(BASELINE, [current], **options)
    return table[(table["regime"].str.split(" ").str[0] == regime) & (table["checkpoint"] == checkpoint)].iloc[0]


@pytest.mark.parametrize("flags", [(), ("--exact",)])
def test_the_committed_results_pass_their_baseline(capsys, flags):
    code, out = _gate(capsys, RESULTS, flags=flags)
    assert code == 0, out
    assert "no regression" in out and "(12 rows)" in out


def test_the_committed_baseline_is_what_the_baseline_command_writes(tmp_path, capsys):
    written = tmp_path / "flow_temporal_toy.csv"
    main(["baseline", "--current", str(RESULTS), "--output", str(written)])
    assert written.read_text() == BASELINE.read_text()
    assert docs_path(written).read_text() == docs_path(BASELINE).read_text()
    assert len(pd.read_csv(docs_path(written))) == 12 * 250  # every doc of every row: 6 runs of each checkpoint


def test_a_regime_that_blocks_nothing_is_caught_as_a_rise_with_other_edges(tmp_path, capsys):
    """``effective`` scoring what ``full`` scores, with full's edges: what a rule set that blocks
    nothing gives. A drop-only gate passed it as "improved"."""
    current = _copy_results(tmp_path)
    full = [json.loads(line) for line in samples_file(_run_of(current, "full"), TASK).read_text().splitlines()]
    _edit_docs(current, "effective", lambda samples: samples.__setitem__(slice(None), full))
    code, out = _gate(capsys, current)
    assert code == 1
    row = _status(current, "effective")
    assert row["status"] == "ROSE, EDGES CHANGED" and row["docs_edges_changed"] == 250
    assert row["docs_better"] > 100 and row["p_value"] < 1e-10
    assert "1 of 12 rows fail the gate" in out and "ROSE" in out


def test_a_rise_alone_fails(tmp_path):
    current = _copy_results(tmp_path)
    _edit_docs(current, "effective", lambda samples: _flip(samples, 1.0, 20))
    row = _status(current, "effective")
    assert (row["status"], row["docs_better"], row["docs_worse"]) == ("ROSE", 20, 0)
    assert row["p_value"] == pytest.approx(2 * 0.5 ** 20)


def test_a_regime_that_blocks_too_much_is_caught_as_a_drop(tmp_path):
    current = _copy_results(tmp_path)
    flipped = []
    _edit_docs(current, "full", lambda samples: flipped.extend(_flip(samples, 0.0, 8)))
    row = _status(current, "full")
    assert (row["status"], row["docs_better"], row["docs_worse"]) == ("REGRESSED", 0, 8)
    assert row["flipped"] == " ".join(f"-{doc}" for doc in flipped)
    assert row["change"] == pytest.approx(-8 / 250)


def test_an_edge_count_off_by_one_is_caught(tmp_path):
    current = _copy_results(tmp_path)
    _edit_docs(current, "staged", lambda samples: samples[7].update(attention_edges=samples[7]["attention_edges"] + 1))
    row = _status(current, "staged")
    assert (row["status"], row["docs_edges_changed"], row["change"]) == ("EDGES CHANGED", 1, 0)


def test_one_flipped_doc_is_chance_unless_exact(tmp_path):
    """On a GPU, a doc may flip between runs; on the deterministic CPU demo (``--exact``) it may not."""
    current = _copy_results(tmp_path)
    flipped = []
    _edit_docs(current, "temporal_exit", lambda samples: flipped.extend(_flip(samples, 1.0, 1)))
    loose = _status(current, "temporal_exit")
    assert (loose["status"], loose["docs_better"], loose["p_value"], loose["flipped"]) == ("ok", 1, 1.0, f"+{flipped[0]}")
    exact = _status(current, "temporal_exit", exact=True)
    assert (exact["status"], exact["docs_replies_changed"]) == ("REPLIES CHANGED", 1)


def test_a_doc_gone_and_a_run_gone_fail_the_gate(tmp_path, capsys):
    current = _copy_results(tmp_path)
    _edit_docs(current, "random", lambda samples: samples.pop(3))
    _run_of(current, "full").unlink()
    code, out = _gate(capsys, current)
    assert code == 1
    assert _status(current, "random")["status"] == "DOCS DIFFER (1 only in the baseline, 0 only now)"
    assert _status(current, "full")["status"] == "MISSING"


def test_results_without_their_samples_are_refused_naming_the_file(tmp_path):
    current = _copy_results(tmp_path)
    missing = samples_file(_run_of(current, "random"), TASK)
    missing.unlink()
    with pytest.raises(ValueError, match=f"{missing} is missing: .* run lmms-eval with --log_samples"):
        regress(BASELINE, [current])


def test_a_baseline_without_its_doc_outcomes_is_refused(tmp_path):
    alone = Path(shutil.copy(BASELINE, tmp_path / "alone.csv"))
    with pytest.raises(ValueError, match=f"has no per-doc outcomes \\({tmp_path / 'alone.docs.csv'}\\)"):
        regress(alone, [RESULTS])


@pytest.mark.parametrize("rose, fell, p_value", [(0, 0, 1.0), (3, 3, 1.0), (0, 6, 2 / 64), (1, 0, 1.0)])
def test_the_paired_test_is_the_exact_two_sided_sign_test(rose, fell, p_value):
    assert paired_p_value(rose, fell) == pytest.approx(p_value)
