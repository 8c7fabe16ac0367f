"""The flex backend (compiled FlexAttention over the dense mask's blocks) against the dense reference,
on every family's tiny model, in float32: logits within ATOL of dense for every regime, the same
layers masked, the same edges handed to the attention call, blocked rows zero.

The compiled FlexAttention is one per process (``flex.compiled_flex``), so the module pays its
compilations (10-25 s each on this CPU) once per dtype, per family's model class imported and for the
first length past one 128-block, not once per test: ~100 s for the file from a cold inductor cache.
"""

import pytest
import torch
from family_cases import CLIP, FAMILIES, QUESTION, make_inputs
from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

from lmms_eval_flow.engine.families import apply_regime
from lmms_eval_flow.engine.regimes import build_regime
from lmms_eval_flow.engine.session import BACKENDS
from lmms_eval_flow.toy.clips import clip_path

# float32: flex and SDPA sum in other orders; the largest difference seen was 2e-7.
ATOL = 1e-5
REGIME_CASES = [("full", {}), ("effective", {}), ("random", {}), ("staged", {}),
                ("temporal_exit", {"exit_by": "mask"}), ("temporal_exit", {"exit_by": "drop"})]
FAMILY_NAMES = list(dict.fromkeys(["qwen2_5_vl", *(family.name for family in FAMILIES)]))


class Case:
    """One family's tiny float32 model, its tokenizer and the inputs of one question about ``CLIP``."""

    def __init__(self, name, model_dir):
        if name == "qwen2_5_vl":  # its inputs as tests/engine/test_attention.py builds them
            processor = AutoProcessor.from_pretrained(model_dir, max_pixels=3136, min_pixels=3136)
            self.model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).eval()
            self.inputs = make_inputs(processor, [QUESTION])
        else:
            family = next(family for family in FAMILIES if family.name == name)
            processor = AutoProcessor.from_pretrained(model_dir)
            self.model = family.model_class.from_pretrained(model_dir, dtype=torch.float32).eval()
            self.inputs = family.inputs(processor, str(clip_path(CLIP)), [QUESTION])
        self.processor, self.tokenizer = processor, processor.tokenizer
        self.depth = self.model.config.text_config.num_hidden_layers

    @torch.no_grad()
    def forward(self, regime, backend, inputs=None):
        with apply_regime(self.model, self.tokenizer, regime, backend) as session:
            logits = self.model(**(inputs or self.inputs)).logits
        return logits, session.take_records()


@pytest.fixture(scope="module", params=FAMILY_NAMES)
def case(request, tiny_model_dir, family_model_dir):
    model_dir = tiny_model_dir if request.param == "qwen2_5_vl" else family_model_dir(request.param)
    return Case(request.param, model_dir)


@pytest.mark.parametrize("name, params", REGIME_CASES, ids=[f"{n}-{p.get('exit_by', '')}" for n, p in REGIME_CASES])
def test_flex_equals_dense_on_the_layers_dense_masks(case, applied_masks, flex_layers, name, params):
    regime = build_regime(name, case.depth, **params)
    dense, [dense_plan] = case.forward(regime, "dense")
    dense_calls = [(call.layer, call.allowed_pairs) for call in applied_masks]
    masked_layers = [call.layer for call in applied_masks if call.mask is not None]
    assert not flex_layers
    applied_masks.clear()
    flex, [plan] = case.forward(regime, "flex")
    assert torch.isfinite(flex).all()
    torch.testing.assert_close(flex, dense, rtol=0, atol=ATOL)
    # the layers dense masked ran through flex, the others (and drop's late layers) stayed stock
    assert flex_layers == masked_layers
    assert bool(flex_layers) == (name not in ("full", "temporal_exit") or params.get("exit_by") == "mask")
    # what flex was handed is what dense was handed and what the plan counts
    assert [(call.layer, call.allowed_pairs) for call in applied_masks] == dense_calls
    assert [pairs for _, pairs in dense_calls] == plan.edges_per_layer == dense_plan.edges_per_layer


@pytest.mark.parametrize("name", ["effective", "temporal_exit"])
@torch.no_grad()
def test_flex_generates_the_dense_tokens(case, name):
    """The prefill through flex, each generated token as one masked row (as under dense)."""
    regime = build_regime(name, case.depth, **({"exit_by": "mask"} if name == "temporal_exit" else {}))
    tokens = {}
    for backend in ("dense", "flex"):
        with apply_regime(case.model, case.tokenizer, regime, backend):
            tokens[backend] = case.model.generate(**case.inputs, max_new_tokens=4, do_sample=False)
    assert torch.equal(tokens["flex"], tokens["dense"])


@torch.no_grad()
def test_rows_with_no_key_are_zero_under_flex(model, processor, inputs):
    """temporal exit by mask: in late layers video rows read nothing, and their output is exactly zero."""
    outputs = {}
    handle = model.model.language_model.layers[27].self_attn.register_forward_hook(
        lambda module, args, output: outputs.update(last_layer=output[0]))
    try:
        with apply_regime(model, processor.tokenizer, build_regime("temporal_exit", 28, exit_by="mask"), "flex") as session:
            logits = model(**inputs).logits
    finally:
        handle.remove()
    [plan] = session.take_records()
    assert torch.isfinite(logits).all()
    assert torch.count_nonzero(outputs["last_layer"][0, plan.layout.positions("video")]) == 0


@pytest.mark.parametrize("name", ["effective", "random", "temporal_exit"])
@torch.no_grad()
def test_left_padded_batch_under_flex_equals_dense(model, processor, name, flex_layers):
    questions = [QUESTION, "Which shape appears later? A. circle B. square"]
    batch = make_inputs(processor, questions)
    regime = build_regime(name, 28, **({"exit_by": "mask"} if name == "temporal_exit" else {}))
    with apply_regime(model, processor.tokenizer, regime, "dense"):
        dense = model(**batch).logits
    with apply_regime(model, processor.tokenizer, regime, "flex"):
        flex = model(**batch).logits
    assert flex_layers
    present = batch["attention_mask"].bool()  # padding positions read nothing under either backend
    torch.testing.assert_close(flex[present], dense[present], rtol=0, atol=ATOL)


def test_attention_backend_flex_is_accepted_and_unknown_ones_refused(model, processor):
    from lmms_eval_flow.harness.flow_model import parse_flow_arguments

    assert BACKENDS == ("auto", "blocks", "dense", "flex")
    flow, rest = parse_flow_arguments("qwen2_5_vl_flow", "effective", 28, {"attention_backend": "flex"}, ())
    assert flow.backend == "flex" and rest == {}
    refused = r"attention_backend='sparse' is not valid; valid: auto, blocks, dense, flex"
    with pytest.raises(ValueError, match=refused):
        parse_flow_arguments("qwen2_5_vl_flow", "effective", 28, {"attention_backend": "sparse"}, ())
    with pytest.raises(ValueError, match=refused):
        apply_regime(model, processor.tokenizer, build_regime("effective", 28), "sparse")
    with apply_regime(model, processor.tokenizer, build_regime("effective", 28), "flex") as session:
        assert session.backend == "flex"


@torch.no_grad()
def test_bfloat16_under_flex_is_finite_and_near_dense(tiny_model_dir, processor, inputs):
    """bfloat16 (what lmms-eval loads): no NaN, within a few bfloat16 steps of dense (2e-2 on logits of
    size ~0.6; 8e-3 seen), and the rows that read nothing still exactly zero."""
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model_dir, dtype=torch.bfloat16).eval()
    outputs = {}
    model.model.language_model.layers[27].self_attn.register_forward_hook(
        lambda module, args, output: outputs.update(last_layer=output[0]))
    for name, params in [("effective", {}), ("temporal_exit", {"exit_by": "mask"})]:
        regime = build_regime(name, 28, **params)
        with apply_regime(model, processor.tokenizer, regime, "dense"):
            dense = model(**inputs).logits
        with apply_regime(model, processor.tokenizer, regime, "flex") as session:
            flex = model(**inputs).logits
        [plan] = session.take_records()
        assert torch.isfinite(flex).all()
        torch.testing.assert_close(flex.float(), dense.float(), rtol=0, atol=2e-2)
    assert torch.count_nonzero(outputs["last_layer"][0, plan.layout.positions("video")]) == 0
