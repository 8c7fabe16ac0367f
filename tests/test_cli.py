"""The lmms-eval-flow console script: planning edges, finding the tasks, building tiny models."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lmms_eval_flow.layout import TokenLayout
from lmms_eval_flow.plan import SamplePlan
from lmms_eval_flow.regimes import build_regime

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
