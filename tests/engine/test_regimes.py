"""Regime rules, layer ranges and edge counts on synthetic layouts (no model needed)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmms_eval_flow.engine.blocks import Run, runs_of
from lmms_eval_flow.engine.layers import format_layer_range, parse_layer, parse_layer_range
from lmms_eval_flow.engine.layout import TokenLayout, causal_edges
from lmms_eval_flow.engine.mask_draw import kth_smallest_uniform
from lmms_eval_flow.engine.plan import SamplePlan
from lmms_eval_flow.engine.regimes import REGIMES, build_regime, published_ranges

LAYOUTS = [
    TokenLayout.synthetic(prefix=5, frames=4, tokens_per_frame=6, question=7, template=4),
    TokenLayout.synthetic(prefix=0, frames=1, tokens_per_frame=9, question=0, template=2),
    TokenLayout.synthetic(prefix=3, frames=8, tokens_per_frame=2, question=11, template=0),
    TokenLayout.synthetic(prefix=6, frames=0, tokens_per_frame=4, question=3, template=3),
]
REGIME_CASES = [
    ("full", {}),
    ("effective", {}),
    ("effective", {"cross_frame": "6-15", "video_question": "6-20", "question_last": "16-25"}),
    ("random", {}),
    ("random", {"seed": 3}),
    ("random", {"keep": 0.8}),
    ("staged", {}),
    ("staged", {"query_last_frame": "none"}),
    ("staged", {"no_inter_frame": "none"}),
    ("temporal_exit", {}),
    ("temporal_exit", {"exit_layer": 5, "exit_by": "mask"}),
]


def dense_edges(plan: SamplePlan) -> list[int]:
    return [int(plan.allowed(layer).sum()) for layer in range(plan.regime.depth)]


def group_ids(layout: TokenLayout):
    group = [""] * layout.length
    frame = [-1] * layout.length
    for segment in layout.segments:
        for p in range(segment.start, segment.stop):
            group[p], frame[p] = segment.group, segment.frame
    return group, frame


# -- layer ranges -------------------------------------------------------------------------


def test_layer_ranges_are_one_based_and_inclusive():
    assert parse_layer_range("6-15", 28, "cross_frame") == range(5, 15)
    assert parse_layer_range("20-", 28, "x") == range(19, 28)
    assert parse_layer_range(12, 28, "x") == range(11, 12)
    assert parse_layer_range("1-28", 28, "x") == range(0, 28)
    assert format_layer_range(range(5, 15)) == "6-15"
    assert parse_layer(20, 28, "exit_layer") == 19


@pytest.mark.parametrize("text", ["6-45", "0-3", "15-6", "29", "29-"])
def test_out_of_depth_range_names_argument_and_depth(text):
    with pytest.raises(ValueError, match=rf"cross_frame='{text}'.*28 layers.*1-28"):
        parse_layer_range(text, 28, "cross_frame")


@pytest.mark.parametrize("text", ["six-15", "6..15", "", "6-15-20", "-5"])
def test_malformed_range_says_how_to_write_one(text):
    with pytest.raises(ValueError, match=r"not a layer range.*'6-15'"):
        parse_layer_range(text, 28, "video_question")


# -- building regimes ---------------------------------------------------------------------


def test_qwen_depth_takes_the_28_layer_row():
    regime = build_regime("effective", 28)
    assert regime.settings["cross_frame"] == "1-15"
    assert regime.settings["video_question"] == "6-20"
    assert regime.settings["question_last"] == "21-28"
    assert "VideoLLaMA3" in regime.settings["ranges_from"]


@pytest.mark.parametrize("depth, model_type, checkpoint, source, question_last", [
    (32, "llava_next_video", "llava-hf/LLaVA-NeXT-Video-7B-hf", "published for LLaVA-NeXT-7B video", "16-25"),
    (40, "llava_next_video", "llava-hf/LLaVA-NeXT-Video-13B-hf", "published for LLaVA-NeXT-13B video", "16-30"),
    (32, "internvl_chat", "OpenGVLab/Mini-InternVL-Chat-4B-V1-5", "published for Mini-InternVL-4B video", "11-30"),
    (28, "video_llama_3", "DAMO-NLP-SG/VideoLLaMA3-7B", "published for VideoLLaMA3-7B (Qwen2.5-7B LM)", "21-28"),
    # Depth matches only: the row is a guess, and says which row it came from.
    (28, "qwen2_5_vl", "Qwen/Qwen2.5-VL-7B-Instruct", "a guess: none published for this model; the row of the "
     "closest published depth, VideoLLaMA3-7B (Qwen2.5-7B LM) (28 layers)", "21-28"),
    (32, "llava_onevision", "some/32-layer-model", "a guess: none published for this model; the row of the closest "
     "published depth, LLaVA-NeXT-7B video (32 layers)", "16-25"),
    (36, "qwen3_vl", None, "a guess: none published for this model; the row of the closest published depth, "
     "LLaVA-NeXT-7B video (32 layers)", "16-25"),
])
def test_default_ranges_are_the_models_published_row_or_say_they_are_a_guess(depth, model_type, checkpoint, source,
                                                                             question_last):
    regime = build_regime("effective", depth, model_type=model_type, checkpoint=checkpoint)
    assert regime.settings["ranges_from"] == source
    assert regime.settings["question_last"] == question_last


def test_unpublished_depth_takes_closest_row_clipped():
    assert published_ranges(36)[1] == {"cross_frame": "6-15", "video_question": "6-20", "question_last": "16-25"}
    assert published_ranges(39)[1]["question_last"] == "16-30"
    assert published_ranges(24)[1] == {"cross_frame": "1-15", "video_question": "6-20", "question_last": "21-24"}
    with pytest.raises(ValueError, match="question_last=21-28 starts beyond this model's 12 layers"):
        published_ranges(12)


def test_bad_regime_lists_valid_ones():
    with pytest.raises(ValueError, match="regime='sparse' is not a regime; valid regimes: " + ", ".join(REGIMES)):
        build_regime("sparse", 28)


def test_parameter_of_another_regime_is_refused():
    with pytest.raises(ValueError, match="exit_layer=20 does not apply to regime=effective.*temporal_exit"):
        build_regime("effective", 28, exit_layer=20)
    with pytest.raises(ValueError, match="takes: no parameters"):
        build_regime("full", 28, cross_frame="6-15")


@pytest.mark.parametrize("kwargs, message", [
    ({"keep": 1.5}, r"keep=1.5 must be a number in \(0, 1\]"),
    ({"keep": 0}, r"keep=0 must be"),
    ({"seed": -1}, r"seed=-1 must be a non-negative integer"),
    ({"seed": "abc"}, r"seed='abc' must be"),
])
def test_random_parameters_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_regime("random", 28, **kwargs)


def test_temporal_exit_and_staged_parameters_are_validated():
    with pytest.raises(ValueError, match=r"exit_layer=40 is not a layer of this model: give a number within 1-28"):
        build_regime("temporal_exit", 28, exit_layer=40)
    with pytest.raises(ValueError, match=r"exit_by='skip' is not valid; valid: drop .* mask"):
        build_regime("temporal_exit", 28, exit_by="skip")
    with pytest.raises(ValueError, match="blocks nothing"):
        build_regime("staged", 28, query_last_frame="none", no_inter_frame="none")


# -- edge counts --------------------------------------------------------------------------


@pytest.mark.parametrize("name, kwargs", REGIME_CASES)
@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: layout.describe())
def test_analytic_edges_equal_dense_count(name, kwargs, layout):
    plan = SamplePlan(build_regime(name, 28, **kwargs), layout)
    assert plan.edges_per_layer == dense_edges(plan)
    assert plan.full_edges == 28 * causal_edges(layout.length)
    assert 0 < plan.edges <= plan.full_edges


def test_full_keeps_every_edge():
    plan = SamplePlan(build_regime("full", 28), LAYOUTS[0])
    assert plan.edges == plan.full_edges
    assert not any(plan.masked(layer) for layer in range(28))


def test_effective_rules_by_group_and_layer():
    layout = LAYOUTS[0]
    plan = SamplePlan(build_regime("effective", 32, cross_frame="6-15", video_question="6-20", question_last="16-25"), layout)
    group, frame = group_ids(layout)

    def reads(layer_1based, reader, source, relation=lambda fq, fk: True):
        mask = plan.allowed(layer_1based - 1)
        pairs = [(q, k) for q in range(layout.length) for k in range(q + 1)
                 if group[q] == reader and group[k] == source and relation(frame[q], frame[k])]
        return {bool(mask[q, k]) for q, k in pairs}

    earlier = lambda fq, fk: fk < fq  # noqa: E731
    same = lambda fq, fk: fk == fq  # noqa: E731
    assert reads(5, "video", "video", earlier) == {False}
    assert reads(6, "video", "video", earlier) == {True}
    assert reads(15, "video", "video", earlier) == {True}
    assert reads(16, "video", "video", earlier) == {False}
    assert reads(16, "video", "video", same) == {True}
    assert reads(21, "video", "video", same) == {False}  # after video_question ends
    assert reads(5, "question", "video") == {False}
    assert reads(20, "question", "video") == {True}
    assert reads(21, "question", "video") == {False}
    assert reads(15, "last", "question") == {False}
    assert reads(16, "last", "question") == {True}
    assert reads(25, "question", "question") == {True}
    assert reads(26, "question", "question") == {False}
    for layer in range(1, 33):
        assert reads(layer, "last", "video") == {False}
        assert reads(layer, "last", "last") == {False}
        assert reads(layer, "last", "template") == {True}
        assert reads(layer, "question", "prefix") == {True}


def test_staged_stage_one_reads_only_last_frame():
    layout = LAYOUTS[0]
    plan = SamplePlan(build_regime("staged", 28, no_inter_frame="none"), layout)
    group, frame = group_ids(layout)
    last_q = layout.length - 1
    mask = plan.allowed(12 - 1)
    video = [k for k in range(layout.length) if group[k] == "video"]
    assert [bool(mask[last_q, k]) for k in video] == [frame[k] == 3 for k in video]
    assert plan.allowed(9 - 1)[last_q, video].all()


def test_temporal_exit_counts_no_video_rows_or_keys_late():
    layout = LAYOUTS[0]
    plan = SamplePlan(build_regime("temporal_exit", 28, exit_layer=20), layout)
    kept = layout.length - layout.size("video")
    assert plan.edges_per_layer[18] == causal_edges(layout.length)
    assert plan.edges_per_layer[19:] == [causal_edges(kept)] * 9
    assert not plan.masked(19) and not plan.masked(0)  # dropping, not masking
    masked_reference = SamplePlan(build_regime("temporal_exit", 28, exit_layer=20, exit_by="mask"), layout)
    assert masked_reference.masked(19)
    assert masked_reference.edges_per_layer == plan.edges_per_layer


# -- random -------------------------------------------------------------------------------


def test_random_matches_effective_per_layer_and_is_seeded():
    layout = LAYOUTS[0]
    effective = SamplePlan(build_regime("effective", 28), layout)
    seeded = [SamplePlan(build_regime("random", 28, seed=s), layout) for s in (0, 0, 1)]
    assert seeded[0].edges_per_layer == effective.edges_per_layer == dense_edges(seeded[0])
    for layer in (0, 10, 27):
        assert torch.equal(seeded[0].allowed(layer), seeded[1].allowed(layer))
        assert not torch.equal(seeded[0].allowed(layer), seeded[2].allowed(layer))
    assert not torch.equal(seeded[0].allowed(3), seeded[0].allowed(4))  # drawn again per layer


@pytest.mark.parametrize("m, k", [(1, 1), (10, 1), (10, 10), (1000, 1), (1000, 500), (1000, 1000), (200_000, 73_111)])
def test_kth_smallest_of_uniform_scores_is_exact(m, k):
    scores = torch.rand(m, generator=torch.Generator().manual_seed(m + k))
    assert kth_smallest_uniform(scores, k) == scores.kthvalue(k).values


def test_kth_smallest_falls_back_when_scores_are_not_uniform():
    scores = torch.rand(1000, generator=torch.Generator().manual_seed(0)) ** 4  # crowded near 0
    assert kth_smallest_uniform(scores, 500) == scores.kthvalue(500).values


def test_random_blocks_only_at_or_after_first_video_position():
    layout = LAYOUTS[0]
    plan = SamplePlan(build_regime("random", 28, keep=0.5), layout)
    start = layout.video_start
    for layer in range(28):
        mask = plan.allowed(layer)
        assert mask[:start].equal(torch.ones(start, layout.length, dtype=torch.bool).tril())
        assert mask[:, :start].all(dim=1)[start:].all()


def test_random_keep_beyond_reach_explains_lowest_keep():
    layout = TokenLayout.synthetic(prefix=40, frames=1, tokens_per_frame=2, question=1, template=1)
    plan = SamplePlan(build_regime("random", 28, keep=0.1), layout)
    with pytest.raises(ValueError, match=r"keep=0.1 needs .* the lowest keep reachable here is 0\.9"):
        plan.edges_per_layer


# -- properties over random layouts and ranges ---------------------------------------------


@st.composite
def layouts_and_regimes(draw):
    depth = draw(st.integers(8, 40))
    layout = TokenLayout.synthetic(
        prefix=draw(st.integers(0, 6)), frames=draw(st.integers(0, 5)), tokens_per_frame=draw(st.integers(1, 4)),
        question=draw(st.integers(0, 6)), template=draw(st.integers(0, 3)),
    )
    name = draw(st.sampled_from(["effective", "random", "staged", "temporal_exit"]))

    def a_range(name):
        first = draw(st.integers(1, depth))
        return f"{first}-{draw(st.integers(first, depth))}"

    params = {
        "effective": lambda: {k: a_range(k) for k in ("cross_frame", "video_question", "question_last")},
        "random": lambda: {"cross_frame": a_range("c"), "video_question": a_range("v"), "question_last": a_range("q"),
                           "seed": draw(st.integers(0, 5))},
        "staged": lambda: {"query_last_frame": a_range("s1"), "no_inter_frame": a_range("s2")},
        "temporal_exit": lambda: {"exit_layer": draw(st.integers(1, depth)), "exit_by": draw(st.sampled_from(["drop", "mask"]))},
    }[name]()
    return layout, build_regime(name, depth, **params)


@settings(max_examples=60, deadline=None)
@given(layouts_and_regimes())
def test_property_analytic_equals_dense_and_kept_is_a_share(case):
    layout, regime = case
    plan = SamplePlan(regime, layout)
    assert plan.edges_per_layer == dense_edges(plan)
    assert 0 <= plan.edges / plan.full_edges <= 1


# -- group-decomposed runs ----------------------------------------------------------------


def runs_as_mask(runs, length: int) -> torch.Tensor:
    mask = torch.zeros(length, length, dtype=torch.bool)
    for run in runs:
        for start, stop in run.keys:
            mask[run.start:run.stop, start:stop] = True
        if run.causal:
            size = run.stop - run.start
            mask[run.start:run.stop, run.start:run.stop] = torch.ones(size, size, dtype=torch.bool).tril()
    return mask


@pytest.mark.parametrize("name, kwargs", [case for case in REGIME_CASES if case[0] != "random"])
@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: layout.describe())
def test_runs_cover_exactly_the_allowed_pairs(name, kwargs, layout):
    plan = SamplePlan(build_regime(name, 28, **kwargs), layout)
    for layer in range(28):
        assert torch.equal(runs_as_mask(runs_of(plan, layer), layout.length), plan.allowed(layer))


def test_full_causal_is_one_run():
    plan = SamplePlan(build_regime("full", 28), LAYOUTS[0])
    assert runs_of(plan, 0) == (Run(0, LAYOUTS[0].length, (), True),)


def test_option_spans_inside_the_question_add_no_runs():
    plain = TokenLayout.from_spans(60, 5, [8, 8, 8], (30, 55))
    with_options = TokenLayout.from_spans(60, 5, [8, 8, 8], (30, 55), options=[(36, 40), (41, 45), (46, 50)])
    for name in ("effective", "staged", "temporal_exit"):
        regime = build_regime(name, 32)
        a, b = SamplePlan(regime, plain), SamplePlan(regime, with_options)
        assert sum(len(runs_of(b, layer)) for layer in range(32)) == sum(len(runs_of(a, layer)) for layer in range(32))
        assert a.edges_per_layer == b.edges_per_layer
