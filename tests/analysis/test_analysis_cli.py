"""The analysis commands end to end on a tiny model and flow_synthetic: knockout (resumed, also after
Ctrl-C and a torn row), calibrate
and the logit lens, as users type them (each in its own process), through lmms-eval's own model and
task loading. The model is random, so these tests check what is run and written, never scientific
outcomes."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import SMALL_VIDEO_ARGS, TASKS_DIR
from transformers import AutoConfig, AutoProcessor, Qwen2_5_VLForConditionalGeneration

from lmms_eval_flow.engine.regimes import build_regime

LAYERS = 6
CLI = Path(sys.executable).with_name("lmms-eval-flow")


def lmms_eval_flow(*args: str, fails: bool = False) -> str:
    """Run the command; its stdout (or, when it is meant to fail, its stderr)."""
    run = subprocess.run([str(CLI), *args], capture_output=True, text=True)
    assert (run.returncode != 0) == fails, f"exit {run.returncode}:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return run.stderr if fails else run.stdout


@pytest.fixture(scope="module")
def shallow_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny Qwen2.5-VL cut to its first 6 decoder layers, so a whole sweep is a few dozen passes."""
    out = tmp_path_factory.mktemp("models") / f"qwen2_5_vl_{LAYERS}_layers"
    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.text_config.num_hidden_layers = LAYERS
    config.text_config.layer_types = config.text_config.layer_types[:LAYERS]
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model_dir, config=config, dtype=torch.bfloat16)
    model.save_pretrained(out)
    AutoProcessor.from_pretrained(tiny_model_dir).save_pretrained(out)
    return out


def model_flags(model_dir, *extra):
    return ["--model_args", f"pretrained={model_dir},{SMALL_VIDEO_ARGS}", "--tasks", "flow_synthetic",
            "--include_path", str(TASKS_DIR), "--limit", "2", "--samples", "all", *extra]


@pytest.fixture(scope="module")
def sweep(shallow_model_dir, tmp_path_factory):
    """A knockout run over two window centres, then resumed with three pathways over every layer;
    what each run printed."""
    sweep = tmp_path_factory.mktemp("sweep")
    printed = [lmms_eval_flow("knockout", *model_flags(shallow_model_dir), "--window", "5", "--output", str(sweep),
                              *extra)
               for extra in (["--pathway", "question_last", "--layers", "1-2"],
                             ["--pathway", "cross_frame,video_question,question_last"])]
    return sweep, printed


def test_knockout_states_its_passes_and_resumes(sweep):
    folder, (first, resumed) = sweep
    assert "1 pathway(s) x 2 window(s) of 5 layers x 2 doc(s) at most = 4 forward passes, after a base pass of 2" in first
    assert "knockout passes: 4 to run, 0 done before" in first
    assert "knockout passes: 32 to run, 4 done before" in resumed
    knocked = pd.read_csv(folder / "knockout.csv")
    assert len(knocked) == 3 * LAYERS * 2 and not knocked.duplicated(["pathway", "layer", "doc_id"]).any()
    windows = knocked.drop_duplicates("layer").set_index("layer")[["first_layer", "last_layer"]]
    assert windows.values.tolist() == [[1, 3], [1, 4], [1, 5], [2, 6], [3, 6], [4, 6]]
    assert ((knocked["p_pred"] > 0) & (knocked["p_pred"] <= 1)).all()
    summary = pd.read_csv(folder / "summary.csv")
    assert summary.groupby("pathway")["layer"].apply(list).to_dict() == {
        p: list(range(1, LAYERS + 1)) for p in ("cross_frame", "question_last", "video_question")}
    assert (summary["docs"] == 2).all()
    base = pd.read_csv(folder / "base.csv")
    assert sorted(base["target"]) == ["A", "D"]
    assert (base["correct"] == (base["pred_token"] == base["true_token"])).all()
    assert (folder / "knockout.png").stat().st_size > 10_000
    assert json.loads((folder / "sweep.json").read_text())["depth"] == LAYERS


def test_an_interrupted_sweep_resumes_to_the_rows_of_an_uninterrupted_one(shallow_model_dir, sweep, tmp_path):
    """Ctrl-C (SIGINT) once knockout rows are being written, a torn row as a kill mid-write leaves
    one, then the same command again: every row is the uninterrupted sweep's, none lost or doubled."""
    folder, knocked, key = tmp_path / "interrupted", tmp_path / "interrupted" / "knockout.csv", ["pathway", "layer", "doc_id"]
    command = [str(CLI), "knockout", *model_flags(shallow_model_dir), "--window", "5", "--output", str(folder)]
    with open(tmp_path / "stderr.txt", "w") as stderr:
        # SIGINT acts as in a terminal even where the test runner's own process ignores it.
        run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        while run.poll() is None and not (knocked.exists() and knocked.stat().st_size):
            time.sleep(0.01)
        run.send_signal(signal.SIGINT)
        assert run.wait(timeout=120) == 130
    message = (tmp_path / "stderr.txt").read_text()
    kept = pd.read_csv(knocked)
    assert f"interrupted; {len(kept)} knockout rows kept in {folder}; run the same command again to resume" in message
    assert "Traceback" not in message
    reference = pd.read_csv(sweep[0] / "knockout.csv").sort_values(key, ignore_index=True)
    assert 0 < len(kept) < len(reference)
    pd.testing.assert_frame_equal(kept.sort_values(key, ignore_index=True),
                                  reference.merge(kept[key]).sort_values(key, ignore_index=True))

    done = set(knocked.read_text().splitlines())
    todo = next(line for line in (sweep[0] / "knockout.csv").read_text().splitlines() if line not in done)
    with open(knocked, "a") as handle:
        handle.write(todo[: len(todo) // 2])  # no newline: the row was cut short
    resumed = lmms_eval_flow(*command[1:])
    assert f"knockout passes: {len(reference) - len(kept)} to run, {len(kept)} done before" in resumed
    pd.testing.assert_frame_equal(pd.read_csv(knocked).sort_values(key, ignore_index=True), reference)
    pd.testing.assert_frame_equal(pd.read_csv(folder / "base.csv"), pd.read_csv(sweep[0] / "base.csv"))
    pd.testing.assert_frame_equal(pd.read_csv(folder / "summary.csv"), pd.read_csv(sweep[0] / "summary.csv"))


def test_a_sweep_resumes_only_with_its_own_settings(shallow_model_dir, sweep):
    error = lmms_eval_flow("knockout", *model_flags(shallow_model_dir), "--window", "9", "--output", str(sweep[0]),
                           fails=True)
    assert "other settings (window=5)" in error


def test_calibrate_writes_ranges_the_regime_reads(sweep, tmp_path):
    ranges_file = tmp_path / "ranges.json"
    # Any change is below +1000%: every interval is kept, whatever the random model does.
    printed = lmms_eval_flow("calibrate", str(sweep[0]), "--output", str(ranges_file), "--samples", "all",
                             "--threshold", "1000")
    content = json.loads(ranges_file.read_text())
    assert {key: content[key] for key in ("cross_frame", "video_question", "question_last")} == {
        "cross_frame": "1-6", "video_question": "1-6", "question_last": "1-6"}
    assert content["depth"] == LAYERS and content["provenance"]["window"] == 5 and content["provenance"]["docs"] == 2
    assert "attention edges per sample" in printed and f"ranges={ranges_file}" in printed
    regime = build_regime("effective", LAYERS, ranges=str(ranges_file))
    assert regime.settings["cross_frame"] == "1-6" and regime.settings["ranges_from"] == f"file {ranges_file}"


def test_logit_lens_reads_every_layer_and_ends_at_the_models_answer(shallow_model_dir, sweep, tmp_path):
    lens = tmp_path / "lens"
    lmms_eval_flow("logit-lens", *model_flags(shallow_model_dir), "--keywords", "left,right,moving", "--output", str(lens))
    answers = pd.read_csv(lens / "answer_probability.csv")
    assert sorted(answers.groupby("doc_id")["layer"].apply(list).tolist()) == [list(range(1, LAYERS + 1))] * 2
    # Read through the final norm and unembedding, the last layer gives the model's own probabilities.
    last = answers[answers["layer"] == LAYERS].set_index("doc_id")
    base = pd.read_csv(sweep[0] / "base.csv").set_index("doc_id")
    assert last["p_pred"].to_dict() == pytest.approx(base["p_pred"].to_dict(), rel=1e-2)
    assert last["p_true"].to_dict() == pytest.approx(base["p_true"].to_dict(), rel=1e-2)
    keywords = pd.read_csv(lens / "keywords.csv")
    assert sorted(keywords["keyword"].unique()) == ["left", "moving", "right"] and len(keywords) == 3 * LAYERS
    assert (keywords["video_tokens"] == 2 * 16).all()  # 16 video tokens per doc, read in every layer
    top = pd.read_csv(lens / "video_top1.csv")
    assert set(top["layer"]) == set(range(1, LAYERS + 1)) and (top.groupby("layer")["count"].sum() <= 2 * 16).all()
    assert (lens / "answer_probability.png").exists() and (lens / "keywords.png").exists()
