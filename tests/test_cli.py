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
