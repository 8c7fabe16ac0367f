"""qwen2_5_vl_flow through lmms-eval: argument checks before loading, and every regime through
the real CLI with its edge and cost metrics in the results JSON and the logged samples."""

import pytest
import transformers
from transformers import AutoConfig
from conftest import SMALL_VIDEO_ARGS, TASKS_DIR, run_lmms_eval

from lmms_eval_flow.harness.runner import run_lmms_eval_many
from lmms_eval_flow.model_wrappers.qwen2_5_vl_flow import Qwen2_5_VLFlow
from lmms_eval_flow.engine.regimes import REGIMES

LIMIT = ["--limit", "6", "--gen_kwargs", "max_new_tokens=6"]
PER_SAMPLE = ("attention_edges", "attention_kept", "prefill_seconds", "kv_cache_bytes", "attention_flops")


@pytest.fixture
def no_model_loading(monkeypatch):
    """Fail the test if the weights start loading: argument errors must come first."""
    def refuse(*args, **kwargs):
        raise AssertionError("the model started loading before the arguments were checked")

    monkeypatch.setattr(transformers.Qwen2_5_VLForConditionalGeneration, "from_pretrained", refuse)


@pytest.mark.parametrize("model_args, message", [
    ({"regime": "sparse"}, r"regime='sparse' is not a regime; valid regimes: " + ", ".join(REGIMES)),
    ({"regime": "effective", "cross_frame": "6-45"}, r"cross_frame='6-45' is outside the model: its language model has 28 layers"),
    ({"regime": "effective", "video_question": "six"}, r"video_question='six' is not a layer range"),
    ({"regime": "staged", "exit_layer": 20}, r"exit_layer=20 does not apply to regime=staged"),
    ({"regime": "full", "croSS_frame": "6-15"}, r"unknown model argument\(s\) croSS_frame for qwen2_5_vl_flow; valid: regime, .*cross_frame.*perturb, perturb_seed, dtype"),
    ({"dtype": "float16"}, r"dtype='float16' is not supported; valid: bfloat16 \(lmms-eval's\), float32"),
    ({"perturb": "reverse_frames+no_rope@40"}, r"perturb no_rope layer='40' is outside the model: its language model has 28 layers"),
    ({"perturb": "reverse_franes"}, r"'reverse_franes' is not a perturbation; valid: reverse_frames, reverse_positions"),
    ({"regime": "temporal_exit", "exit_layer": 29}, r"exit_layer=29 is not a layer of this model: give a number within 1-28"),
])
def test_bad_arguments_fail_before_the_model_loads(tiny_model_dir, no_model_loading, model_args, message):
    with pytest.raises(ValueError, match=message):
        Qwen2_5_VLFlow(pretrained=str(tiny_model_dir), device="cpu", device_map="cpu", **model_args)


def generated_tokens(samples) -> int:
    return sum(s["token_counts"][0]["output_tokens"] for s in samples["flow_synthetic"])


def replies(samples):
    """Raw replies by doc; lmms-eval logs `resps` only where it differs from `filtered_resps`."""
    return {s["doc_id"]: s.get("resps", s["filtered_resps"]) for s in samples["flow_synthetic"]}


@pytest.fixture(scope="module")
def regime_runs(tiny_model_dir, tmp_path_factory):
    """The four sparse regimes through the lmms-eval CLI, in one lmms-eval process."""
    out = tmp_path_factory.mktemp("regime_runs")
    regimes = ["effective", "random", "staged", "temporal_exit"]
    runs = [{"model": "qwen2_5_vl_flow", "model_args": f"pretrained={tiny_model_dir},regime={regime},{SMALL_VIDEO_ARGS}",
             "tasks": "flow_synthetic", "include_path": TASKS_DIR, "output_path": out / regime, "limit": 6,
             "gen_kwargs": "max_new_tokens=6"} for regime in regimes]
    return dict(zip(regimes, run_lmms_eval_many(runs, out / "runs.yaml")))


@pytest.mark.parametrize("regime", ["effective", "random", "staged", "temporal_exit"])
def test_every_regime_reports_edges_and_costs_in_results_and_samples(regime_runs, regime, tiny_model_dir):
    results, samples = regime_runs[regime]
    metrics = results["results"]["flow_synthetic"]
    lines = samples["flow_synthetic"]
    assert len(lines) == 6
    for name in PER_SAMPLE:
        assert metrics[f"{name},none"] == pytest.approx(sum(s[name] for s in lines) / len(lines))
    assert all(0 < s["attention_kept"] < 1 and s["attention_edges"] > 0 for s in lines)
    text = AutoConfig.from_pretrained(tiny_model_dir).text_config
    flops_per_edge = 4 * (text.hidden_size // text.num_attention_heads) * text.num_attention_heads
    assert all(s["attention_flops"] == flops_per_edge * s["attention_edges"] for s in lines)
    assert all(s["prefill_seconds"] > 0 and s["kv_cache_bytes"] > 0 for s in lines)
    assert results["config"]["model_args"].count(f"regime={regime}") == 1


def test_temporal_exit_holds_a_smaller_kv_cache_than_the_regimes_that_keep_video(regime_runs):
    def kv_bytes(regime):
        return {s["doc_id"]: s["kv_cache_bytes"] for s in regime_runs[regime][1]["flow_synthetic"]}

    dropped = kv_bytes("temporal_exit")
    for regime in ("effective", "random", "staged"):
        assert kv_bytes(regime).keys() == dropped.keys()
        assert all(dropped[doc] < kept for doc, kept in kv_bytes(regime).items())


def test_random_blocks_as_many_edges_as_effective_per_sample(regime_runs):
    effective = {s["doc_id"]: s["attention_edges"] for s in regime_runs["effective"][1]["flow_synthetic"]}
    random = {s["doc_id"]: s["attention_edges"] for s in regime_runs["random"][1]["flow_synthetic"]}
    assert effective == random


@pytest.mark.parametrize("regime", ["effective", "random"])  # random: its masks do not depend on the process count
def test_two_processes_shard_and_aggregate_like_one(regime_runs, tiny_model_dir, tmp_path, regime):
    results, samples = run_lmms_eval(tmp_path, "qwen2_5_vl_flow", f"pretrained={tiny_model_dir},regime={regime},{SMALL_VIDEO_ARGS}",
                                     "flow_synthetic", *LIMIT, processes=2)
    single_results, single_samples = regime_runs[regime]
    # lmms-eval's throughput counts rank 0's tokens: all of them on one process, a share on two
    assert single_results["throughput"]["total_gen_tokens"] == generated_tokens(single_samples)
    assert 0 < results["throughput"]["total_gen_tokens"] < generated_tokens(samples)
    metrics, single = results["results"]["flow_synthetic"], single_results["results"]["flow_synthetic"]
    for name in ("attention_edges,none", "attention_kept,none", "accuracy,none"):
        assert metrics[name] == pytest.approx(single[name])
    assert replies(samples) == replies(single_samples)
    edges = lambda lines: {s["doc_id"]: s["attention_edges"] for s in lines["flow_synthetic"]}  # noqa: E731
    assert edges(samples) == edges(single_samples)
