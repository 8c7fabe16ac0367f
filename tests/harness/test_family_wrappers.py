"""Every family's flow wrapper through lmms-eval: argument checks before loading and every regime of
every family through the real CLI with its edges in the results (``full`` against lmms-eval's own
wrappers: test_stock_equivalence)."""

from pathlib import Path

import pytest
from loguru import logger
import transformers
from conftest import TASKS_DIR
from family_cases import FAMILIES, FAMILY
from lmms_eval.models.chat.huggingface import Huggingface
from lmms_eval.utils import simple_parse_args_string
from wrapper_calls import flow_class

from lmms_eval_flow.harness.runner import run_lmms_eval_many

REGIMES = ["full", "effective", "random", "staged", "temporal_exit"]
DOCS = 3
MAX_NEW_TOKENS = 4
ARGS = {"device": "cpu", "device_map": "cpu"}


def lmms_eval_args(family: str) -> dict:
    return simple_parse_args_string(FAMILY[family].model_args)


@pytest.mark.parametrize("family", FAMILY)
def test_bad_arguments_fail_before_the_model_loads(family, family_model_dir, monkeypatch):
    wrapper = flow_class(family)
    other = "qwen3_vl" if family == "qwen2_5_vl" else "qwen2_5_vl"  # a checkpoint of another family

    def refuse(*args, **kwargs):
        raise AssertionError("the model started loading before the arguments were checked")

    monkeypatch.setattr(transformers.PreTrainedModel, "from_pretrained", classmethod(refuse))
    model_dir = str(family_model_dir(family))
    with pytest.raises(ValueError, match=r"regime='sparse' is not a regime"):
        wrapper(pretrained=model_dir, regime="sparse", **ARGS)
    with pytest.raises(ValueError, match=rf"unknown model argument\(s\) croSS_frame for {family}_flow"):
        wrapper(pretrained=model_dir, regime="effective", croSS_frame="6-15", **ARGS)
    other_dir = family_model_dir(other)
    with pytest.raises(ValueError, match=rf"{family}_flow needs a \w+ checkpoint; {other_dir} is a {other} checkpoint"):
        wrapper(pretrained=str(other_dir), regime="full", **ARGS)
    if family == "qwen3_vl":
        with pytest.raises(ValueError, match=r"exit_layer=2 is too early for Qwen3-VL"):
            wrapper(pretrained=model_dir, regime="temporal_exit", exit_layer=2, **ARGS)
    if issubclass(wrapper, Huggingface):  # lmms-eval's generic chat wrapper
        with pytest.raises(ValueError, match=r"runs batch_size=1 only \(got 2\)"):
            wrapper(pretrained=model_dir, regime="full", batch_size=2, **ARGS)


GUESS = "a guess: none published for this model; the row of the closest published depth, "


@pytest.mark.parametrize("family, ranges, source", [
    ("llava_onevision", ("1-15", "6-20", "21-28"), GUESS + "VideoLLaMA3-7B (Qwen2.5-7B LM) (28 layers)"),
    ("llava_next_video", ("6-15", "6-20", "16-25"), "published for LLaVA-NeXT-7B video"),
    ("videollama3", ("1-15", "6-20", "21-28"), "published for VideoLLaMA3-7B (Qwen2.5-7B LM)"),
    ("qwen3_vl", ("6-15", "6-20", "16-25"), GUESS + "LLaVA-NeXT-7B video (32 layers)"),  # 36 layers: 32 and 40 tie
])
def test_default_effective_ranges_are_the_familys_published_row_or_a_stated_guess(family, ranges, source,
                                                                                  family_model_dir):
    """Through the wrapper, which tells the engine the checkpoint's family; a guess is logged."""
    warnings = []
    sink = logger.add(lambda message: warnings.append(str(message)), level="WARNING")
    try:
        model = flow_class(family)(pretrained=str(family_model_dir(family)), regime="effective", **lmms_eval_args(family))
    finally:
        logger.remove(sink)
    settings = model.regime.settings
    assert (settings["cross_frame"], settings["video_question"], settings["question_last"]) == ranges
    assert settings["ranges_from"] == source
    assert any(source in w and "give cross_frame" in w for w in warnings) == source.startswith("a guess")


@pytest.fixture(scope="module")
def regime_runs(family_model_dir, tmp_path_factory) -> dict:
    """Every regime of every family through the lmms-eval CLI, in one lmms-eval process."""
    out = tmp_path_factory.mktemp("family_runs")
    cases = [(family, regime) for family in FAMILIES for regime in REGIMES]
    runs = [{"model": family.model, "model_args": f"pretrained={family_model_dir(family.name)},regime={regime},"
             f"{family.model_args}", "tasks": "flow_synthetic", "include_path": TASKS_DIR,
             "output_path": out / f"{family.name}_{regime}", "limit": DOCS,
             "gen_kwargs": f"max_new_tokens={MAX_NEW_TOKENS}"} for family, regime in cases]
    results = run_lmms_eval_many(runs, Path(out) / "runs.yaml")
    return {(family.name, regime): result for (family, regime), result in zip(cases, results)}


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("family", [family.name for family in FAMILIES])
def test_every_regime_runs_through_the_cli_and_reports_edges(regime_runs, family, regime):
    results, samples = regime_runs[(family, regime)]
    metrics, lines = results["results"]["flow_synthetic"], samples["flow_synthetic"]
    assert len(lines) == DOCS
    for name in ("attention_edges", "attention_kept"):
        assert metrics[f"{name},none"] == pytest.approx(sum(s[name] for s in lines) / len(lines))
    if regime == "full":
        assert all(s["attention_kept"] == 1.0 for s in lines)
    else:
        assert all(0 < s["attention_kept"] < 1 and s["attention_edges"] > 0 for s in lines)
    assert results["config"]["model_args"].count(f"regime={regime}") == 1


@pytest.mark.parametrize("family", [family.name for family in FAMILIES])
def test_random_blocks_as_many_edges_as_effective_per_sample(regime_runs, family):
    def edges(regime):
        return {s["doc_id"]: s["attention_edges"] for s in regime_runs[(family, regime)][1]["flow_synthetic"]}

    assert edges("random") == edges("effective")
