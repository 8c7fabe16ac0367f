"""Numerical safety and determinism over random layouts, ranges and rule sets (hypothesis):
exact edge counts, kept shares within [0, 1], attention outputs with no NaN or inf in float32
and bfloat16 on both backends (rows with no key left exactly zero), random masks that depend on
nothing but the sample; and the perturbations on the tiny model in both dtypes."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from family_cases import make_inputs
from test_attention import forward
from transformers import Qwen2_5_VLForConditionalGeneration
from transformers.models.qwen2.configuration_qwen2 import Qwen2Config
from transformers.models.qwen2.modeling_qwen2 import Qwen2Attention

from lmms_eval_flow.engine.attention import ACTIVE_BATCH, BatchPlan, flow_attention
from lmms_eval_flow.engine.layout import GROUPS, TokenLayout
from lmms_eval_flow.engine.mask_draw import RandomDraw
from lmms_eval_flow.engine.perturbations import Perturbed, parse_perturbations
from lmms_eval_flow.engine.plan import SamplePlan
from lmms_eval_flow.engine.regimes import Regime, Rule, build_regime

HEADS, KV_HEADS, HEAD_DIM = 4, 2, 8


@st.composite
def layouts(draw, max_frames: int = 5) -> TokenLayout:
    """A prompt with frames of uneven sizes and sometimes option spans in the question."""
    prefix = draw(st.integers(0, 5))
    frames = draw(st.lists(st.integers(1, 4), max_size=max_frames))
    question = draw(st.integers(0, 8))
    video_stop = prefix + sum(frames)
    length = video_stop + question + draw(st.integers(0, 3)) + 1
    options = [(video_stop + 1, video_stop + 3), (video_stop + 4, video_stop + 6)] if question >= 7 and draw(st.booleans()) else []
    return TokenLayout.from_spans(length, prefix, frames, (video_stop, video_stop + question), options)


@st.composite
def regimes(draw, depth: int) -> Regime:
    """A built regime with drawn ranges, or a drawn rule set (which blocks whole rows at times)."""
    def a_range():
        first = draw(st.integers(1, depth))
        return f"{first}-{draw(st.integers(first, depth))}"

    kind = draw(st.sampled_from(["effective", "random", "random_keep", "staged", "temporal_exit", "rules"]))
    if kind in ("effective", "random"):
        seed = {"seed": draw(st.integers(0, 9))} if kind == "random" else {}
        return build_regime(kind, depth, cross_frame=a_range(), video_question=a_range(), question_last=a_range(), **seed)
    if kind == "random_keep":
        return build_regime("random", depth, keep=draw(st.floats(0.9, 1.0)), seed=draw(st.integers(0, 9)),
                            cross_frame=a_range(), video_question=a_range(), question_last=a_range())
    if kind == "staged":
        return build_regime("staged", depth, query_last_frame=a_range(), no_inter_frame=a_range())
    if kind == "temporal_exit":  # the masked form: dropping positions is not a mask on these tensors
        return build_regime("temporal_exit", depth, exit_layer=draw(st.integers(1, depth)), exit_by="mask")
    groups = st.lists(st.sampled_from(GROUPS), min_size=1, max_size=3, unique=True).map(tuple)
    rules = tuple(
        Rule(f"rule{i}", draw(groups), draw(groups), frozenset(draw(st.sets(st.integers(0, depth - 1), min_size=1))),
             draw(st.sampled_from(["any", "earlier", "not_last"])))
        for i in range(draw(st.integers(1, 4))))
    return Regime("drawn", depth, rules)


def reachable(regime: Regime, layout: TokenLayout) -> bool:
    """``keep`` can ask for more blocked pairs than a short prompt has after its video."""
    try:
        return bool(SamplePlan(regime, layout).edges_per_layer)
    except ValueError:
        return False


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_analytic_edges_equal_dense_counts_and_kept_is_a_share(data):
    depth = data.draw(st.integers(2, 30))
    layout, regime = data.draw(layouts()), data.draw(regimes(depth))
    plan = SamplePlan(regime, layout)
    if not reachable(regime, layout):
        return
    assert plan.edges_per_layer == [int(plan.allowed(layer).sum()) for layer in range(depth)]
    assert 0 <= plan.edges <= plan.full_edges
    assert 0.0 <= plan.edges / plan.full_edges <= 1.0


def attention_module(layer: int) -> Qwen2Attention:
    config = Qwen2Config(hidden_size=HEADS * HEAD_DIM, num_attention_heads=HEADS, num_key_value_heads=KV_HEADS,
                         num_hidden_layers=layer + 1)
    return Qwen2Attention(config, layer).eval()


def attend(plans: list[SamplePlan], pads: list[int], layer: int, backend: str, tensors):
    """The registered attention function on one layer of a prefill, as the model calls it."""
    batch = BatchPlan(plans, pads, tensors[0].shape[2], backend)
    token = ACTIVE_BATCH.set(batch)
    try:
        module = attention_module(layer)
        output, _ = flow_attention(module, *tensors, None, scaling=module.scaling)
    finally:
        ACTIVE_BATCH.reset(token)
    return output  # [B, N, H, D]


def no_key_rows(plan: SamplePlan, pad: int, layer: int, length: int) -> torch.Tensor:
    """[N] True where a row reads no key in this layer under the regime's mask; padding rows read
    nothing either (a layer no sample masks runs the stock call, where the model's own padding
    mask, not passed here, takes care of them)."""
    rows = torch.zeros(length, dtype=torch.bool)
    rows[pad:] = ~plan.allowed(layer).any(-1)
    return rows


@settings(max_examples=40, deadline=None)
@given(st.data(), st.sampled_from([torch.float32, torch.bfloat16]))
def test_attention_has_no_nan_and_rows_without_keys_are_zero_on_both_backends(data, dtype):
    depth = data.draw(st.integers(2, 8))
    regime = data.draw(regimes(depth))
    samples = [data.draw(layouts(max_frames=4)) for _ in range(data.draw(st.integers(1, 2)))]
    if not all(reachable(regime, layout) for layout in samples):
        return
    plans = [SamplePlan(regime, layout) for layout in samples]
    length = max(layout.length for layout in samples)
    pads = [length - layout.length for layout in samples]  # left padding, as lmms-eval batches
    layer = data.draw(st.integers(0, depth - 1))
    generator = torch.Generator().manual_seed(data.draw(st.integers(0, 2**16)))
    sharpness = data.draw(st.sampled_from([1.0, 30.0]))  # large logits too: softmax must not overflow

    def tensor(heads, scale=1.0):
        return (torch.randn(len(plans), heads, length, HEAD_DIM, generator=generator) * scale).to(dtype)

    tensors = (tensor(HEADS, sharpness), tensor(KV_HEADS, sharpness), tensor(KV_HEADS))
    outputs = {backend: attend(plans, pads, layer, backend, tensors) for backend in ("dense", "blocks")}
    for output in outputs.values():
        assert torch.isfinite(output).all()
        for row, (plan, pad) in enumerate(zip(plans, pads)):
            assert torch.count_nonzero(output[row, no_key_rows(plan, pad, layer, length)]) == 0
            if any(p.masked(layer) for p in plans):
                assert torch.count_nonzero(output[row, :pad]) == 0
    if sharpness == 1.0:  # with logits in the thousands the two summation orders differ in rounding only
        tolerance = 2e-5 if dtype == torch.float32 else 2e-2
        torch.testing.assert_close(outputs["blocks"].float(), outputs["dense"].float(), rtol=tolerance, atol=tolerance)


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_a_random_mask_depends_only_on_its_sample_seed_and_layer(data):
    """Not on the batch it is in, its place there, nor anything run before it: a run gives the
    same masks in any batch order and on any number of processes."""
    depth = data.draw(st.integers(2, 12))
    regime = data.draw(regimes(depth).filter(lambda regime: isinstance(regime.draw, RandomDraw)))
    mine, other = data.draw(layouts()), data.draw(layouts())
    if not (reachable(regime, mine) and reachable(regime, other)):
        return
    layer = data.draw(st.integers(0, depth - 1))
    alone = SamplePlan(regime, mine).allowed(layer)
    SamplePlan(regime, other).allowed(layer)  # whatever ran before
    length = max(mine.length, other.length)
    for order in ([mine, other], [other, mine]):
        plans = [SamplePlan(regime, layout) for layout in order]
        batch = BatchPlan(plans, [length - layout.length for layout in order], length, "dense")
        if not any(plan.masked(layer) for plan in plans):
            continue
        mask, _ = batch.attention_mask(layer, length, length, None)
        row = order.index(mine)
        pad = length - mine.length
        assert torch.equal(mask[row, 0, pad:, pad:], alone | _own_position_where_empty(alone))
        assert not mask[row, 0, pad:, :pad].any()


def _own_position_where_empty(allowed: torch.Tensor) -> torch.Tensor:
    """The dense backend lets a row with no key read itself (then zeroes it) to keep SDPA finite."""
    return torch.diag(~allowed.any(-1))


# -- the perturbations on the tiny model ---------------------------------------------------
PERTURBATIONS = ["reverse_frames", "reverse_positions", "shuffle_video_positions@10", "shuffle_question_positions@10",
                 "no_rope@5-28"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@torch.no_grad()
def test_perturbations_under_every_regime_give_finite_logits(tiny_model_dir, processor, dtype):
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model_dir, dtype=dtype).eval()
    inputs = make_inputs(processor, ["Which way does the red square move? A. left B. right"])
    text = model.model.language_model
    for regime in [build_regime(name, 28) for name in ("effective", "random", "staged", "temporal_exit")]:
        for perturbation in PERTURBATIONS:
            with Perturbed(text, text.layers, parse_perturbations(perturbation, 28, regime)):
                logits, _ = forward(model, processor, inputs, regime)
            assert torch.isfinite(logits).all(), (regime.name, perturbation)
