"""The lmms-eval-flow console script: planning edges (and refusing layouts no model has), finding the
tasks, building tiny models."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lmms_eval_flow.engine.layout import TokenLayout
from lmms_eval_flow.engine.plan import SamplePlan
from lmms_eval_flow.engine.regimes import build_regime

LAYOUT = ["--prefix", "14", "--frames", "4", "--tokens-per-frame", "16", "--question", "30", "--template", "5"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lmms_eval_flow.cli", *args], capture_output=True, text=True)


@pytest.mark.parametrize("regime, flags, params", [
    ("full", [], {}),
    ("effective", ["--cross-frame", "6-15", "--video-question", "6-20", "--question-last", "16-25"],
     {"cross_frame": "6-15", "video_question": "6-20", "question_last": "16-25"}),
    ("random", ["--keep", "0.5", "--seed", "3"], {"keep": 0.5, "seed": 3}),
    ("staged", ["--query-last-frame", "none"], {"query_last_frame": "none"}),
    ("temporal_exit", ["--exit-layer", "12"], {"exit_layer": "12"}),
])
def test_edges_prints_the_plan_of_a_synthetic_layout(regime, flags, params):
    run = cli("edges", "--layers", "32", *LAYOUT, "--regime", regime, *flags)
    assert run.returncode == 0, run.stderr
    printed = json.loads(run.stdout)
    plan = SamplePlan(build_regime(regime, 32, **params), TokenLayout.synthetic(14, 4, 16, 30, 5))
    assert printed["regime"] == regime
    assert (printed["edges"], printed["full_edges"]) == (plan.edges, plan.full_edges)
    assert printed["kept"] == pytest.approx(plan.edges / plan.full_edges)
    assert printed["full_edges"] == 32 * 114 * 115 // 2


def test_edges_plans_the_authors_random_control_by_block_ratio():
    """Map the Flow's form: int(0.1 x 114 x 115 / 2) = 655 of the 6,555 causal pairs blocked in every layer."""
    run = cli("edges", "--layers", "32", *LAYOUT, "--regime", "random", "--block-ratio", "0.1")
    assert run.returncode == 0, run.stderr
    printed = json.loads(run.stdout)
    assert (printed["edges"], printed["full_edges"]) == (32 * (6555 - 655), 32 * 6555)


@pytest.mark.parametrize("flags, message", [
    (["--regime", "sparse"], "regime='sparse' is not a regime; valid regimes: full, effective"),
    (["--regime", "effective", "--cross-frame", "6-45"], "cross_frame='6-45' is outside the model"),
    (["--regime", "full", "--exit-layer", "3"], "exit_layer='3' does not apply to regime=full"),
])
def test_edges_errors_name_the_bad_value(flags, message):
    run = cli("edges", "--layers", "28", *LAYOUT, *flags)
    assert run.returncode == 2 and message in run.stderr and not run.stdout


@pytest.mark.parametrize("flags, message", [
    (["--layers", "-3"], "--layers -3 is not a language-model depth; valid: 1 to 1024"),
    (["--layers", "0"], "--layers 0 is not a language-model depth; valid: 1 to 1024"),
    (["--layers", "5000"], "--layers 5000 is not a language-model depth; valid: 1 to 1024"),
    (["--frames", "-1"], "--frames -1 must not be negative"),
    (["--tokens-per-frame", "0"], "--tokens-per-frame 0: a frame has at least one token"),
    (["--frames", "100000", "--tokens-per-frame", "100000"], "--frames 100000 is more than 1024, the most frames"),
    (["--frames", "2", "--tokens-per-frame", str(2**23)],
     f"the layout has {14 + 2**24 + 36} positions (--frames 2 x --tokens-per-frame {2**23} and the rest); at most 16777216"),
])
def test_edges_refuses_what_no_model_has_before_planning(flags, message):
    # argparse takes the last of a repeated flag, so these override LAYOUT's; the 100000 x 100000
    # layout once grew to 20 GB, and a depth of 0 or -3 gave a ZeroDivisionError or negative edges.
    run = cli("edges", "--layers", "28", *LAYOUT, *flags)
    assert (run.returncode, run.stdout) == (2, "") and f"lmms-eval-flow edges: error: {message}" in run.stderr


def test_edges_counts_a_layout_at_the_size_limit_from_group_sizes():
    """16.7 million positions: an N x N mask would take 2.8e14 bytes; counting takes none."""
    tokens = (2**24 - 14 - 36) // 2
    run = cli("edges", "--layers", "28", *LAYOUT, "--frames", "2", "--tokens-per-frame", str(tokens))
    assert run.returncode == 0, run.stderr
    length = 14 + 2 * tokens + 36
    assert json.loads(run.stdout)["edges"] == json.loads(run.stdout)["full_edges"] == 28 * length * (length + 1) // 2


# prefix 1 | frame 0: 2 | frame 1: 2 | question | template 1 | last 1, three layers; effective with
# cross-frame only in layer 1, question reading video in 1-2 and last reading question throughout.
SMALL = ["--layers", "3", "--prefix", "1", "--frames", "2", "--tokens-per-frame", "2", "--template", "1",
         "--regime", "effective", "--cross-frame", "1-1", "--video-question", "1-2", "--question-last", "1-3"]


def test_edges_per_layer_prints_each_layer_s_count_as_the_rules_allow_it():
    """9 positions, 45 causal pairs a layer; last never reads the 4 video tokens nor itself (-5) in any layer.
    Layer 1 allows the rest (40); layer 2 blocks frame 1 reading frame 0 (2 x 2: 36); layer 3, after
    video_question, blocks video reading video (3 + 3 within the frames, 4 across) and question reading
    video (2 x 4): 45 - 5 - 10 - 8 = 22."""
    run = cli("edges", *SMALL, "--question", "2", "--per-layer")
    assert run.returncode == 0, run.stderr
    total, *layers = map(json.loads, run.stdout.splitlines())
    assert (total["edges"], total["full_edges"]) == (98, 135)
    assert layers == [{"layer": 1, "edges": 40, "full_edges": 45, "kept": 40 / 45},
                      {"layer": 2, "edges": 36, "full_edges": 45, "kept": 36 / 45},
                      {"layer": 3, "edges": 22, "full_edges": 45, "kept": 22 / 45}]


def test_edges_without_per_layer_prints_the_totals_alone():
    run = cli("edges", *SMALL, "--question", "2")
    assert run.returncode == 0 and len(run.stdout.splitlines()) == 1 and json.loads(run.stdout)["edges"] == 98


def test_edges_instruction_counts_the_end_of_the_user_text_as_template():
    """3 user-text positions, 10 in all (55 pairs a layer; last loses 5 in each): layers 1 and 2 keep
    50 and 46 either way; in layer 3 each question position loses its 4 video keys. Counted as question
    the instruction loses them too (55 - 5 - 10 - 3 x 4 = 28); as template it keeps them (32)."""
    as_question, as_template = (cli("edges", *SMALL, "--question", "3", "--per-layer", *flags)
                                for flags in ([], ["--instruction", "1"]))
    assert as_question.returncode == as_template.returncode == 0, as_question.stderr + as_template.stderr
    assert [json.loads(line)["edges"] for line in as_question.stdout.splitlines()] == [124, 50, 46, 28]
    assert [json.loads(line)["edges"] for line in as_template.stdout.splitlines()] == [128, 50, 46, 32]
    assert json.loads(as_template.stdout.splitlines()[0])["kept"] == pytest.approx(128 / 165)


@pytest.mark.parametrize("value, message", [
    ("-1", "--instruction -1 is not a count of the last --question positions; valid: 0 to 3"),
    ("4", "--instruction 4 is not a count of the last --question positions; valid: 0 to 3"),
    ("2.5", "argument --instruction: invalid int value: '2.5'"),
])
def test_edges_refuses_an_instruction_that_is_not_part_of_the_question(value, message):
    run = cli("edges", *SMALL, "--question", "3", "--instruction", value)
    assert (run.returncode, run.stdout) == (2, "") and f"lmms-eval-flow edges: error: {message}" in run.stderr


def test_tasks_dir_is_what_lmms_eval_needs():
    run = cli("tasks-dir")
    folder = Path(run.stdout.strip())
    assert run.returncode == 0 and (folder / "flow_synthetic" / "flow_synthetic.yaml").is_file()


def test_make_tiny_model_writes_a_loadable_checkpoint(tmp_path):
    from transformers import AutoConfig

    run = cli("make-tiny-model", str(tmp_path / "m"), "--family", "qwen2_5_vl")
    assert run.returncode == 0, run.stderr
    assert AutoConfig.from_pretrained(tmp_path / "m").text_config.num_hidden_layers == 28
    bad = cli("make-tiny-model", str(tmp_path / "x"), "--family", "llama9")
    assert bad.returncode == 2 and "llama9" in bad.stderr and "qwen2_5_vl" in bad.stderr
