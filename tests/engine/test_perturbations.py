"""Perturbations change exactly what they claim, on the real (tiny) Qwen2.5-VL and its 3-D rotary
positions: what the text model and each decoder layer receive, with and without them. Also the
option spans the layout finds in a real prompt."""

import pytest
import torch
import transformers
from family_cases import make_inputs

from lmms_eval_flow.engine.layout import TokenLayout
from lmms_eval_flow.engine.families import apply_regime
from lmms_eval_flow.model_wrappers.qwen2_5_vl_flow import Qwen2_5_VLFlow
from lmms_eval_flow.engine.perturbations import (Perturbed, frame_reversal, group_shuffle, parse_perturbations,
                                          permute_position_ids)
from lmms_eval_flow.engine.regimes import build_regime

DEPTH = 28
QUESTION = "Which way does the red square move?\nA. left\nB. right\nC. up\nD. down"


@pytest.fixture(scope="module")
def inputs(processor):
    """One clip's inputs, its options on lines of their own."""
    return make_inputs(processor, [QUESTION])


@torch.no_grad()
def run(model, processor, inputs, perturb: str = "", regime: str = "full", generate: bool = False):
    """One forward (or a short generation) under a regime and perturbations: the logits, what the
    text model and every decoder layer received at the prefill, and the sample's layout."""
    text = model.model.language_model
    seen = {"layers": {}}

    def at_text_model(module, args, kwargs):
        if "inputs_embeds" not in seen:
            seen["inputs_embeds"], seen["position_ids"] = kwargs["inputs_embeds"].clone(), kwargs["position_ids"].clone()

    def at_layer(i, kwargs):
        seen["layers"].setdefault(i, tuple(t.clone() for t in kwargs["position_embeddings"]))

    with apply_regime(model, processor.tokenizer, build_regime(regime, DEPTH)) as session, \
            Perturbed(text, text.layers, parse_perturbations(perturb, DEPTH) if perturb else ()):
        # Registered after the perturbations' hooks, so they see what those hand on.
        handles = [text.register_forward_pre_hook(at_text_model, with_kwargs=True)]
        handles += [layer.register_forward_pre_hook(lambda m, a, kwargs, i=i: at_layer(i, kwargs), with_kwargs=True)
                    for i, layer in enumerate(text.layers)]
        try:
            out = model.generate(**inputs, max_new_tokens=3, do_sample=False) if generate else model(**inputs).logits
        finally:
            for handle in handles:
                handle.remove()
    return out, seen, session.take_records()[0]


@pytest.fixture(scope="module")
def plain(model, processor, inputs):
    return run(model, processor, inputs)


def frames_of(layout: TokenLayout) -> list[torch.Tensor]:
    return [torch.arange(s.start, s.stop) for s in layout.segments if s.group == "video"]


def other_positions(layout: TokenLayout, group: str = "video") -> torch.Tensor:
    keep = torch.ones(layout.length, dtype=torch.bool)
    keep[layout.positions(group)] = False
    return keep.nonzero().squeeze(1)


# -- index arithmetic ---------------------------------------------------------------------


def test_frame_reversal_permutes_video_positions_frame_by_frame():
    layout = TokenLayout.synthetic(prefix=3, frames=4, tokens_per_frame=2, question=3, template=1)
    order = frame_reversal(layout)
    assert order.tolist() == [0, 1, 2, 9, 10, 7, 8, 5, 6, 3, 4, 11, 12, 13, 14, 15]
    assert torch.equal(order[order], torch.arange(layout.length))  # reversing twice is the identity


def test_group_shuffle_permutes_the_group_among_itself():
    layout = TokenLayout.synthetic(prefix=2, frames=3, tokens_per_frame=4, question=6, template=1)
    order = group_shuffle(layout, "question", torch.Generator().manual_seed(0))
    question = layout.positions("question")
    assert sorted(order[question].tolist()) == question.tolist() and not torch.equal(order[question], question)
    outside = other_positions(layout, "question")
    assert torch.equal(order[outside], outside)


def test_reversing_3d_position_ids_twice_is_the_identity(plain):
    _, seen, plan = plain
    ids = seen["position_ids"]  # [3, 1, N]: t, h, w
    with_text_row = torch.cat([torch.arange(ids.shape[-1]).view(1, 1, -1), ids])  # as generate passes them
    order = frame_reversal(plan.layout)[None]
    for position_ids in (ids, with_text_row, ids[0]):
        once = permute_position_ids(position_ids, order)
        assert not torch.equal(once, position_ids)
        assert torch.equal(permute_position_ids(once, order), position_ids)
    assert torch.equal(permute_position_ids(with_text_row, order)[0], with_text_row[0])  # the text row stays


# -- on the model -------------------------------------------------------------------------


def test_reverse_frames_moves_frame_content_and_keeps_position_ids(model, processor, inputs, plain):
    logits, seen, plan = run(model, processor, inputs, "reverse_frames")
    base = plain[1]
    frames = frames_of(plan.layout)
    assert len(frames) == 4
    for frame, mirror in zip(frames, reversed(frames)):
        assert torch.equal(seen["inputs_embeds"][0, frame], base["inputs_embeds"][0, mirror])
    outside = other_positions(plan.layout)
    assert torch.equal(seen["inputs_embeds"][0, outside], base["inputs_embeds"][0, outside])
    assert torch.equal(seen["position_ids"], base["position_ids"])
    assert not torch.allclose(logits[0, -1], plain[0][0, -1])


def test_reverse_positions_moves_whole_3d_ids_and_keeps_content(model, processor, inputs, plain):
    logits, seen, plan = run(model, processor, inputs, "reverse_positions")
    base = plain[1]
    assert torch.equal(seen["inputs_embeds"], base["inputs_embeds"])
    frames = frames_of(plan.layout)
    for frame, mirror in zip(frames, reversed(frames)):
        assert torch.equal(seen["position_ids"][:, 0, frame], base["position_ids"][:, 0, mirror])
    outside = other_positions(plan.layout)
    assert torch.equal(seen["position_ids"][:, 0, outside], base["position_ids"][:, 0, outside])
    times = [int(seen["position_ids"][0, 0, frame[0]]) for frame in frames]
    assert times == sorted(times, reverse=True) and len(set(times)) == 4  # time now runs backwards
    assert not torch.allclose(logits[0, -1], plain[0][0, -1])


def test_reverse_frames_in_a_left_padded_batch_moves_each_rows_own_frames(model, processor):
    batch = make_inputs(processor, [QUESTION, "Which way?"])
    _, base, _ = run(model, processor, batch)
    _, seen, _ = run(model, processor, batch, "reverse_frames")
    pads = (batch["attention_mask"] == 0).sum(1).tolist()
    assert pads[0] == 0 < pads[1]
    video = batch["input_ids"] == model.config.video_token_id
    for row in range(len(pads)):
        frames = video[row].nonzero().squeeze(1).view(4, -1)  # 4 frames of equal size, in order
        for frame, mirror in zip(frames, frames.flip(0)):
            assert torch.equal(seen["inputs_embeds"][row, frame], base["inputs_embeds"][row, mirror])
        assert torch.equal(seen["inputs_embeds"][row, ~video[row]], base["inputs_embeds"][row, ~video[row]])


def test_no_rope_turns_off_rotation_in_its_layer_only(model, processor, inputs, plain):
    logits, seen, _ = run(model, processor, inputs, "no_rope@5")
    cos, sin = seen["layers"][4]
    assert bool((cos == 1).all()) and bool((sin == 0).all())
    for layer in (0, 3, 5, 27):
        assert all(torch.equal(a, b) for a, b in zip(seen["layers"][layer], plain[1]["layers"][layer]))
    assert not torch.allclose(logits[0, -1], plain[0][0, -1])


@pytest.mark.parametrize("kind, group", [("shuffle_video_positions", "video"), ("shuffle_question_positions", "question")])
def test_shuffle_permutes_one_groups_rotary_positions_in_one_layer(model, processor, inputs, plain, kind, group):
    logits, seen, plan = run(model, processor, inputs, f"{kind}@3")
    cos, base_cos = seen["layers"][2][0][0], plain[1]["layers"][2][0][0]
    positions, outside = plan.layout.positions(group), other_positions(plan.layout, group)
    assert torch.equal(cos[outside], base_cos[outside])
    moved = [next(q for q in positions.tolist() if torch.equal(cos[p], base_cos[q])) for p in positions.tolist()]
    assert sorted(moved) == positions.tolist() and moved != positions.tolist()
    assert all(torch.equal(a, b) for a, b in zip(seen["layers"][3], plain[1]["layers"][3]))
    assert not torch.allclose(logits[0, -1], plain[0][0, -1])


def test_perturbations_combine_with_a_regime_and_leave_its_edges(model, processor, inputs, plain):
    effective_logits, _, effective_plan = run(model, processor, inputs, regime="effective")
    logits, seen, plan = run(model, processor, inputs, "reverse_frames+no_rope@10", regime="effective")
    assert plan.edges == effective_plan.edges < plan.full_edges
    frames = frames_of(plan.layout)
    assert torch.equal(seen["inputs_embeds"][0, frames[0]], plain[1]["inputs_embeds"][0, frames[-1]])
    assert bool((seen["layers"][9][0] == 1).all())
    assert not torch.allclose(logits[0, -1], effective_logits[0, -1])


def test_generation_perturbs_the_prompt_only(model, processor, inputs):
    tokens, seen, plan = run(model, processor, inputs, "reverse_positions+shuffle_video_positions@2", generate=True)
    assert seen["position_ids"].shape[0] == 4  # generate's text row first, then t, h, w
    assert torch.equal(seen["position_ids"][0, 0], torch.arange(plan.layout.length))
    assert tokens.shape[1] == inputs["input_ids"].shape[1] + 3


# -- arguments ----------------------------------------------------------------------------


@pytest.mark.parametrize("text, message", [
    ("reverse_frame", r"'reverse_frame' is not a perturbation; valid: reverse_frames, reverse_positions, "
                      r"shuffle_video_positions@LAYER"),
    ("no_rope", r"no_rope acts at a layer; write no_rope@LAYER"),
    ("reverse_frames@3", r"reverse_frames acts on the input, not at a layer"),
    ("no_rope@29", r"no_rope layer='29' is outside the model: its language model has 28 layers"),
    ("no_rope@3+no_rope@4", r"names no_rope more than once"),
])
def test_bad_perturbations_are_named(text, message):
    with pytest.raises(ValueError, match=message):
        parse_perturbations(text, DEPTH)


def test_shuffling_video_that_temporal_exit_dropped_is_refused():
    dropped = build_regime("temporal_exit", DEPTH, exit_layer=20)
    with pytest.raises(ValueError, match=r"shuffle_video_positions@22 reaches layer 20 or later.*exit_by=mask"):
        parse_perturbations("shuffle_video_positions@22", DEPTH, dropped)
    assert parse_perturbations("shuffle_video_positions@12+no_rope@25", DEPTH, dropped)[0].layers == range(11, 12)
    masked = build_regime("temporal_exit", DEPTH, exit_layer=20, exit_by="mask")
    assert parse_perturbations("shuffle_video_positions@22", DEPTH, masked)[0].layers == range(21, 22)


@pytest.mark.parametrize("model_args, message", [
    ({"perturb": "mirror"}, r"'mirror' is not a perturbation"),
    ({"perturb": "no_rope@3", "perturb_seed": -1}, r"perturb_seed=-1 must be a non-negative integer"),
    ({"regime": "temporal_exit", "perturb": "shuffle_question_positions@25"}, r"has dropped the video"),
])
def test_wrapper_checks_perturbations_before_the_model_loads(tiny_model_dir, monkeypatch, model_args, message):
    def refuse(*args, **kwargs):
        raise AssertionError("the model started loading before the arguments were checked")

    monkeypatch.setattr(transformers.Qwen2_5_VLForConditionalGeneration, "from_pretrained", refuse)
    with pytest.raises(ValueError, match=message):
        Qwen2_5_VLFlow(pretrained=str(tiny_model_dir), device="cpu", device_map="cpu", **model_args)


def test_layout_finds_the_option_spans_of_the_prompt(processor, inputs, plain):
    layout = plain[2].layout
    ids = inputs["input_ids"][0]
    options = [processor.tokenizer.decode(ids[s.start:s.stop]) for s in layout.segments if s.option >= 0]
    assert options == ["A. left", "B. right", "C. up", "D. down"]
    assert processor.tokenizer.decode(ids[layout.positions("question")]) == QUESTION
