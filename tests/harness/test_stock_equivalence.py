"""``regime=full`` is the stock model, for every family, in lmms-eval's default dtype and in float32.

Through the real CLI, 12 docs and 32 new tokens (long enough for rounded rotary frequencies to
show), each flow wrapper's replies equal lmms-eval's own wrapper's on the same tiny checkpoint; in
process, the first-step logits are bit-identical to the stock transformers model's, and no floating
buffer has changed dtype from what ``from_pretrained`` gave it (``model.to(bfloat16)`` would round
the float32 rotary frequencies transformers keeps).
"""

import os
from pathlib import Path

import pytest
import torch
from conftest import TASKS_DIR
from family_cases import FAMILY, QUESTION
from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

from lmms_eval_flow.toy.clips import clip_path
from lmms_eval_flow.harness.runner import run_lmms_eval_many

DOCS, NEW_TOKENS = 12, 32
# (family, flow wrapper, lmms-eval's wrapper of the family, extra model args, checkpoint in bfloat16)
CASES = [
    ("qwen2_5_vl", "qwen2_5_vl_flow", "qwen2_5_vl", "", False),
    # lmms-eval's Qwen2.5-VL loads bfloat16 only; float32's reference is from_pretrained in float32
    # (of a bfloat16 checkpoint, as published ones are: widening its weights is exact).
    ("qwen2_5_vl", "qwen2_5_vl_flow", "stock_qwen2_5_vl_float32", "dtype=float32", True),
    ("qwen3_vl", "qwen3_vl_flow", "qwen3_vl", "", False),
    ("llava_onevision", "llava_onevision_flow", "stock_llava_hf", "dtype=bfloat16", False),
    ("llava_onevision", "llava_onevision_flow", "stock_llava_hf", "dtype=float32", False),
    ("llava_next_video", "llava_next_video_flow", "stock_huggingface", "", False),
    ("videollama3", "videollama3_flow", "stock_huggingface", "", False),
]
CASE_IDS = [f"{family}-{extra or 'default'}" for family, _, _, extra, _ in CASES]


@pytest.fixture(scope="module")
def checkpoint(family_model_dir, tmp_path_factory):
    """``checkpoint(family, bfloat16)``: the family's tiny checkpoint, or a bfloat16 copy of it."""
    copies = {}

    def path(family: str, bfloat16: bool) -> Path:
        if not bfloat16:
            return family_model_dir(family)
        if family not in copies:
            copies[family] = tmp_path_factory.mktemp(f"{family}_bfloat16")
            Qwen2_5_VLForConditionalGeneration.from_pretrained(family_model_dir(family), dtype=torch.bfloat16) \
                .save_pretrained(copies[family])
            AutoProcessor.from_pretrained(family_model_dir(family)).save_pretrained(copies[family])
        return copies[family]

    return path


@pytest.fixture(scope="module")
def cli_replies(checkpoint, tmp_path_factory) -> dict:
    """Every case's (flow replies, stock replies, stock output tokens), all runs in one lmms-eval process;
    lmms-eval's wrappers run first, before any flow model is loaded in it."""
    out = tmp_path_factory.mktemp("stock_equivalence")
    plugin = out / "stock_wrappers-0.dist-info"  # registers tests/stock_wrappers.py as pip would
    plugin.mkdir()
    (plugin / "METADATA").write_text("Metadata-Version: 2.1\nName: stock-wrappers\nVersion: 0\n")
    (plugin / "entry_points.txt").write_text("[lmms_eval.models]\nstock = stock_wrappers:manifests\n")

    def run(case: int, model: str, side: str) -> dict:
        family, _, _, extra, bfloat16 = CASES[case]
        args = ",".join(filter(None, [f"pretrained={checkpoint(family, bfloat16)}", FAMILY[family].model_args, extra]))
        if side == "flow":
            args += ",regime=full"
        elif "dtype" in extra and model.startswith("stock_qwen"):
            args = args.replace(f",{extra}", "")  # its dtype is its own
        return {"model": model, "model_args": args, "tasks": "flow_synthetic", "include_path": TASKS_DIR,
                "output_path": out / f"{case}_{side}", "limit": DOCS, "gen_kwargs": f"max_new_tokens={NEW_TOKENS}"}

    runs = [run(i, case[2], "stock") for i, case in enumerate(CASES)] + [run(i, case[1], "flow") for i, case in enumerate(CASES)]
    old_path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(out), str(Path(__file__).resolve().parents[1]), old_path]))
    try:
        results = run_lmms_eval_many(runs, out / "runs.yaml")
    finally:
        if old_path is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old_path

    def replies(samples):
        return {s["doc_id"]: s.get("resps", s["filtered_resps"]) for s in samples["flow_synthetic"]}

    stock, flow = results[:len(CASES)], results[len(CASES):]
    return {CASE_IDS[i]: (replies(flow[i][1]), replies(stock[i][1]),
                          [s["token_counts"][0]["output_tokens"] for s in stock[i][1]["flow_synthetic"]],
                          [s["attention_kept"] for s in flow[i][1]["flow_synthetic"]])
            for i in range(len(CASES))}


@pytest.mark.parametrize("case", CASE_IDS)
def test_full_replies_equal_lmms_eval_own_wrapper_through_the_cli(cli_replies, case):
    flow, stock, stock_tokens, kept = cli_replies[case]
    assert len(stock) == DOCS and flow == stock
    assert kept == [1.0] * DOCS
    assert sum(stock_tokens) >= DOCS * NEW_TOKENS // 2, f"replies too short to compare: {stock_tokens}"


# (family, flow wrapper arguments, the dtype lmms-eval loads in, the dtype the model computes in)
IN_PROCESS = [
    ("qwen2_5_vl", {}, torch.bfloat16, torch.bfloat16),
    ("qwen2_5_vl", {"dtype": "float32"}, torch.bfloat16, torch.float32),
    ("qwen3_vl", {}, torch.bfloat16, torch.bfloat16),
    ("llava_onevision", {"dtype": "bfloat16"}, torch.bfloat16, torch.bfloat16),
    ("llava_onevision", {"dtype": "float32"}, torch.float32, torch.float32),
    ("llava_next_video", {}, torch.bfloat16, torch.bfloat16),
    ("videollama3", {}, torch.bfloat16, torch.bfloat16),
]


def flow_wrapper(family: str):
    from lmms_eval_flow.model_wrappers import WRAPPERS

    module, name = WRAPPERS[f"{family}_flow"].rsplit(".", 1)
    return getattr(__import__(module, fromlist=[name]), name)


def model_arguments(family: str) -> dict:
    return dict(pair.split("=") for pair in FAMILY[family].model_args.split(","))


def family_inputs(family: str, model_dir: Path):
    video = str(clip_path({"frames": 8, "size": 64, "fps": 4, "objects": [
        {"shape": "square", "color": "red", "start": [10, 28], "velocity": [4, 0], "size": 12}]}))
    return FAMILY[family].inputs(FAMILY[family].processor(model_dir), video, [QUESTION])


@pytest.mark.parametrize("family, arguments, loaded, computed", IN_PROCESS,
                         ids=[f"{f}-{a.get('dtype', 'default')}" for f, a, _, _ in IN_PROCESS])
@torch.no_grad()
def test_full_keeps_buffers_and_first_step_logits_of_the_stock_model(family, arguments, loaded, computed,
                                                                     checkpoint):
    model_dir = checkpoint(family, computed != loaded)  # float32 of bfloat16 weights: a bfloat16 checkpoint
    flow = flow_wrapper(family)(pretrained=str(model_dir), regime="full", **model_arguments(family), **arguments)
    model_class = type(flow.model)
    as_loaded = model_class.from_pretrained(model_dir, dtype=loaded)
    buffers = {name: buffer.dtype for name, buffer in flow.model.named_buffers() if buffer.is_floating_point()}
    assert buffers and buffers == {name: b.dtype for name, b in as_loaded.named_buffers() if b.is_floating_point()}
    assert any(dtype == torch.float32 for dtype in buffers.values())  # the rotary frequencies, kept in float32
    assert {p.dtype for p in flow.model.parameters()} == {computed}

    stock = model_class.from_pretrained(model_dir, dtype=computed).eval()
    inputs = family_inputs(family, model_dir)
    inputs = {k: v.to(computed) if v.is_floating_point() else v for k, v in inputs.items()}
    ours = flow.model(**inputs).logits[:, -1]
    assert torch.equal(ours, stock(**inputs).logits[:, -1])
    assert torch.isfinite(ours).all()
