"""Regimes on the real (tiny) Qwen2.5-VL model: what each changes, what it leaves alone, and
that the masks actually applied are the ones counted."""

import pytest
from family_cases import QUESTION, make_inputs
import torch
from transformers import Qwen2_5_VLForConditionalGeneration

from lmms_eval_flow.engine.families import apply_regime
from lmms_eval_flow.engine.layout import causal_edges
from lmms_eval_flow.engine.mask_draw import RandomDraw
from lmms_eval_flow.engine.regimes import Regime, Rule, build_regime
from lmms_eval_flow.engine.video_exit import KeepVideo

REGIME_CASES = [("effective", {}), ("random", {}), ("staged", {}), ("staged", {"query_last_frame": "none"}),
                ("temporal_exit", {}), ("temporal_exit", {"exit_by": "mask"})]




def forward(model, processor, inputs, regime: Regime | None, backend: str = "auto"):
    """Logits and the session's sample plans (None: the untouched model)."""
    if regime is None:
        return model(**inputs).logits, []
    with apply_regime(model, processor.tokenizer, regime, backend) as session:
        logits = model(**inputs).logits
    return logits, session.take_records()


@pytest.fixture(scope="module")
def full_logits(model, processor, inputs):
    with torch.no_grad():
        return forward(model, processor, inputs, None)[0]


@torch.no_grad()
def test_layout_finds_groups_of_the_prompt(model, processor, inputs):
    _, [plan] = forward(model, processor, inputs, build_regime("full", 28))
    layout = plan.layout
    ids = inputs["input_ids"][0]
    tokens = processor.tokenizer.convert_ids_to_tokens(ids)
    assert layout.num_frames == 4 and layout.size("video") == 16  # 4 temporal patches of 2x2 tokens
    assert {tokens[p] for p in layout.positions("video").tolist()} == {"<|video_pad|>"}
    assert tokens[layout.video_start - 1] == "<|vision_start|>"
    question = processor.tokenizer.decode(ids[layout.positions("question")])
    assert question.startswith("In which direction") and question.endswith("D. down")
    assert [tokens[p] for p in layout.positions("template").tolist()] == ["<|vision_end|>", "<|im_end|>", "Ċ",
                                                                          "<|im_start|>", "assistant"]
    assert layout.length == len(ids)


@torch.no_grad()
def test_generate_finds_the_same_layout_as_a_direct_forward(model, processor, inputs):
    with apply_regime(model, processor.tokenizer, build_regime("effective", 28)) as session:
        model(**inputs)
        model.generate(**inputs, max_new_tokens=2, do_sample=False)
        direct, generated = session.take_records()
    assert direct.layout == generated.layout


@torch.no_grad()
def test_full_is_bit_identical_and_passes_no_mask(model, processor, inputs, full_logits, applied_masks):
    logits, [plan] = forward(model, processor, inputs, build_regime("full", 28))
    assert torch.equal(logits, full_logits)
    assert len(applied_masks) == 28 and all(call.mask is None for call in applied_masks)  # SDPA's causal path
    assert plan.edges == plan.full_edges == 28 * causal_edges(inputs["input_ids"].shape[1])


@torch.no_grad()
def test_blocking_last_from_video_changes_only_the_last_position(model, processor, inputs, full_logits):
    rule = Rule("video_last", ("last",), ("video",), frozenset(range(28)))
    logits, _ = forward(model, processor, inputs, Regime("knockout", 28, (rule,)), backend="dense")
    assert torch.equal(logits[0, :-1], full_logits[0, :-1])
    assert not torch.allclose(logits[0, -1], full_logits[0, -1])


@pytest.mark.parametrize("name, params", REGIME_CASES)
@torch.no_grad()
def test_regime_keeps_positions_before_the_video_and_moves_the_answer(model, processor, inputs, full_logits, name, params):
    logits, [plan] = forward(model, processor, inputs, build_regime(name, 28, **params), backend="dense")
    start = plan.layout.video_start
    if plan.regime.video == KeepVideo():
        assert torch.equal(logits[0, :start], full_logits[0, :start])
    else:  # a shorter sequence from the exit layer on: same values, other summation order
        torch.testing.assert_close(logits[0, :start], full_logits[0, :start], rtol=0, atol=1e-5)
    assert not torch.allclose(logits[0, -1], full_logits[0, -1], atol=1e-4)
    assert plan.edges < plan.full_edges


@pytest.mark.parametrize("name, params", [("full", {}), *REGIME_CASES])
@torch.no_grad()
def test_applied_masks_count_what_the_plan_counts(model, processor, inputs, applied_masks, name, params):
    _, [plan] = forward(model, processor, inputs, build_regime(name, 28, **params), backend="dense")
    assert [call.allowed_pairs for call in applied_masks] == plan.edges_per_layer
    assert [call.layer for call in applied_masks] == list(range(28))


@pytest.mark.parametrize("name, params", REGIME_CASES)
@torch.no_grad()
def test_masks_held_are_bounded_by_distinct_rule_sets_not_layers(model, processor, inputs, applied_masks, name, params):
    regime = build_regime(name, 28, **params)
    forward(model, processor, inputs, regime, backend="dense")
    # random draws a mask per layer, so it may hold only the current one
    bound = 1 if isinstance(regime.draw, RandomDraw) else len({regime.rules_at(layer) for layer in range(28)})
    assert len(applied_masks) == 28 and max(call.masks_held for call in applied_masks) <= bound


# random's blocked pairs are drawn pair by pair, so they have no group structure; temporal exit by
# drop masks no layer before its exit and runs the later ones on a shorter sequence. Both run as
# masked calls even when the blocks backend is asked for.
NEVER_DECOMPOSED = [("random", {}), ("temporal_exit", {})]


@pytest.mark.parametrize("name, params", [case for case in REGIME_CASES if case not in NEVER_DECOMPOSED])
@torch.no_grad()
def test_group_decomposed_attention_equals_the_dense_mask(model, processor, inputs, applied_masks, decomposed_layers,
                                                          name, params):
    regime = build_regime(name, 28, **params)
    dense, _ = forward(model, processor, inputs, regime, backend="dense")
    masked_layers = [call.layer for call in applied_masks if call.mask is not None]
    assert masked_layers and not decomposed_layers
    blocks, _ = forward(model, processor, inputs, regime, backend="blocks")
    assert decomposed_layers == masked_layers  # every layer the dense run masked ran decomposed
    torch.testing.assert_close(blocks, dense, rtol=0, atol=2e-5)
    decomposed_layers.clear()
    with apply_regime(model, processor.tokenizer, regime, "blocks"):
        from_blocks = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert decomposed_layers == masked_layers  # the prefill; each generated token is one masked row
    with apply_regime(model, processor.tokenizer, regime, "dense"):
        assert torch.equal(from_blocks, model.generate(**inputs, max_new_tokens=6, do_sample=False))


@pytest.mark.parametrize("name, params", NEVER_DECOMPOSED)
@torch.no_grad()
def test_regimes_without_group_structure_run_masked_under_the_blocks_backend(model, processor, inputs,
                                                                             decomposed_layers, name, params):
    regime = build_regime(name, 28, **params)
    blocks, _ = forward(model, processor, inputs, regime, backend="blocks")
    assert not decomposed_layers
    assert torch.equal(blocks, forward(model, processor, inputs, regime, backend="dense")[0])


@torch.no_grad()
def test_random_is_seeded(model, processor, inputs):
    first, [plan] = forward(model, processor, inputs, build_regime("random", 28, seed=0))
    again, _ = forward(model, processor, inputs, build_regime("random", 28, seed=0))
    other, _ = forward(model, processor, inputs, build_regime("random", 28, seed=1))
    effective, [effective_plan] = forward(model, processor, inputs, build_regime("effective", 28))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert plan.edges_per_layer == effective_plan.edges_per_layer


@torch.no_grad()
def test_temporal_exit_drops_video_from_the_cache_with_the_masked_answers(model, processor, inputs):
    with apply_regime(model, processor.tokenizer, build_regime("temporal_exit", 28, exit_layer=20)) as session:
        dropped = model(**inputs, use_cache=True)
        dropped_tokens = model.generate(**inputs, max_new_tokens=8, do_sample=False)
        [plan, _] = session.take_records()
    with apply_regime(model, processor.tokenizer, build_regime("temporal_exit", 28, exit_layer=20, exit_by="mask")):
        masked = model(**inputs, use_cache=True)
        masked_tokens = model.generate(**inputs, max_new_tokens=8, do_sample=False)

    def cache_bytes(cache):
        return sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))

    length, video = plan.layout.length, plan.layout.size("video")
    expected = (28 * length - 9 * video) / (28 * length)  # layers 20-28 keep no video
    assert cache_bytes(dropped.past_key_values) / cache_bytes(masked.past_key_values) == pytest.approx(expected, abs=1e-12)
    assert [layer.keys.shape[2] for layer in dropped.past_key_values.layers] == [length] * 19 + [length - video] * 9
    kept = torch.ones(length, dtype=torch.bool)
    kept[plan.layout.positions("video")] = False
    assert dropped.logits.shape[1] == length - video
    torch.testing.assert_close(dropped.logits[0], masked.logits[0, kept], rtol=0, atol=1e-5)
    assert torch.equal(dropped_tokens, masked_tokens)


@pytest.mark.parametrize("backend", ["blocks", "dense"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name, params", REGIME_CASES)
@torch.no_grad()
def test_no_nan_and_fully_blocked_rows_are_zero(tiny_model_dir, processor, inputs, dtype, name, params, backend):
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model_dir, dtype=dtype).eval()
    outputs = {}
    model.model.language_model.layers[27].self_attn.register_forward_hook(
        lambda module, args, output: outputs.update(last_layer=output[0]))
    logits, [plan] = forward(model, processor, inputs, build_regime(name, 28, **params), backend)
    assert torch.isfinite(logits).all()
    if name == "temporal_exit" and params.get("exit_by") == "mask":
        # in late layers video rows read nothing: their attention output is exactly zero
        video = plan.layout.positions("video")
        assert torch.count_nonzero(outputs["last_layer"][0, video]) == 0


@pytest.mark.parametrize("name", ["effective", "random", "temporal_exit"])
@torch.no_grad()
def test_left_padded_batch_equals_samples_run_alone(model, processor, name):
    questions = [QUESTION, "Which shape appears later? A. circle B. square"]
    regime = build_regime(name, 28)
    batch, plans = forward(model, processor, make_inputs(processor, questions), regime)
    for row, question in enumerate(questions):
        alone, [plan] = forward(model, processor, make_inputs(processor, [question]), regime)
        torch.testing.assert_close(batch[row, -1], alone[0, -1], rtol=0, atol=1e-4)
        assert plans[row].layout == plan.layout and plans[row].edges == plan.edges


@pytest.mark.parametrize("name", ["random", "effective"])
@torch.no_grad()
def test_long_masked_prefills_run_in_row_chunks_with_the_same_result(model, processor, inputs, monkeypatch, name):
    import lmms_eval_flow.engine.attention as attention

    regime = build_regime(name, 28)
    whole, _ = forward(model, processor, inputs, regime, backend="dense")
    monkeypatch.setattr(attention, "PREFILL_CHUNK", 16)  # this prompt is ~100 positions: several chunks
    chunked, _ = forward(model, processor, inputs, regime, backend="dense")
    torch.testing.assert_close(chunked, whole, rtol=0, atol=2e-5)


@torch.no_grad()
def test_rows_of_one_batch_can_run_under_regimes_of_their_own(model, processor):
    """Training under per-row masks (the known-answer toy): each row gets what its regime alone gives."""
    questions = [QUESTION, QUESTION]
    effective, full = build_regime("effective", 28), build_regime("full", 28)
    inputs = make_inputs(processor, questions)
    with apply_regime(model, processor.tokenizer, effective, "dense") as session:
        session.row_regimes = [effective, full]
        mixed = model(**inputs).logits
        plans = session.take_records()
    assert [plan.regime for plan in plans] == [effective, full]
    for row, regime in enumerate((effective, full)):
        alone, _ = forward(model, processor, make_inputs(processor, [QUESTION]), regime, "dense")
        torch.testing.assert_close(mixed[row, -1], alone[0, -1], rtol=0, atol=1e-4)
    assert not torch.allclose(mixed[0, -1], mixed[1, -1])


def test_row_regimes_must_share_the_sessions_strategies(model, processor):
    with apply_regime(model, processor.tokenizer, "effective") as session:
        session.row_regimes = [build_regime("random", 28)]
        with pytest.raises(ValueError, match="does not share the session's mask draw"):
            model(**make_inputs(processor, [QUESTION]))
        session.row_regimes = [build_regime("effective", 28)] * 2
        with pytest.raises(ValueError, match="holds 2 regimes for a batch of 1 rows"):
            model(**make_inputs(processor, [QUESTION]))
