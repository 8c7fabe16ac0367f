"""Knockout and calibration semantics without a model: windows, pathways, the relative-change
formula, correct-only averaging, option spans, planted-range recovery and the ranges file."""

import json

import pandas as pd
import pytest

from lmms_eval_flow.analysis.calibrate import derive_ranges, intervals, kept_edges, write_ranges_file
from lmms_eval_flow.analysis.knockout import (knockout_regime, parse_pathways, pathway_rule, relative_change, selected_docs,
                                     summarize, window)
from lmms_eval_flow.engine.layout import TokenLayout, option_spans
from lmms_eval_flow.engine.plan import SamplePlan
from lmms_eval_flow.engine.regimes import REGIMES, Rule, build_regime

DEPTH = 28


# -- windows ------------------------------------------------------------------------------


@pytest.mark.parametrize("centre, size, expected", [
    (0, 9, range(0, 5)),  # layer 1: nothing before it, so 1-5
    (3, 9, range(0, 8)),  # layer 4: 1-8
    (13, 9, range(9, 18)),  # layer 14: 10-18, full width
    (27, 9, range(23, 28)),  # layer 28: 24-28
    (0, 5, range(0, 3)),
    (27, 5, range(25, 28)),
    (10, 1, range(10, 11)),
    (10, 4, range(9, 13)),  # even: one layer more after the centre
    (0, 60, range(0, 28)),  # wider than the model: every layer
])
def test_windows_are_centred_and_cut_at_the_depth(centre, size, expected):
    assert window(centre, size, DEPTH) == expected


def test_full_width_windows_cover_size_layers_around_the_centre():
    for size in (5, 9):
        for centre in range(size // 2, DEPTH - size // 2):
            layers = window(centre, size, DEPTH)
            assert len(layers) == size and centre in layers


@pytest.mark.parametrize("centre, size, message", [(28, 9, "window centre 29 is not a layer"), (3, 0, "--window 0")])
def test_bad_windows_are_refused(centre, size, message):
    with pytest.raises(ValueError, match=message):
        window(centre, size, DEPTH)


# -- pathways and knockout regimes --------------------------------------------------------


@pytest.mark.parametrize("pathway, reader, source, frames", [
    ("cross_frame", ("video",), ("video",), "earlier"),
    ("video_question", ("question",), ("video",), "any"),
    ("question_last", ("last",), ("question",), "any"),
    ("video_last", ("last",), ("video",), "any"),
    ("video_options", ("options",), ("video",), "any"),
    ("non_options_options", ("options",), ("non_options",), "any"),
    ("options_last", ("last",), ("options",), "any"),
    ("frame3_query", ("question", "template", "last"), ("video",), 3),
])
def test_pathways_name_reader_and_source(pathway, reader, source, frames):
    rule = pathway_rule(pathway, range(4, 9))
    assert (rule.reader, rule.source, rule.frames, rule.layers) == (reader, source, frames, frozenset(range(4, 9)))


@pytest.mark.parametrize("text", ["video->question", "last_question", "frame_last", "video_prefix", ""])
def test_unknown_pathways_say_how_to_write_one(text):
    with pytest.raises(ValueError, match="SOURCE_TARGET|at least one"):
        parse_pathways(text)


def test_knockout_adds_one_rule_to_the_models_regime():
    effective = build_regime("effective", DEPTH)
    knocked = knockout_regime(effective, "question_last", range(9, 18))
    assert knocked.rules[:-1] == effective.rules
    assert knocked.rules[-1] == pathway_rule("question_last", range(9, 18))
    assert knocked.settings["knockout_layers"] == "10-18"
    full = knockout_regime(build_regime("full", DEPTH), "video_last", range(0, 5))
    assert [rule.name for rule in full.rules] == ["video_last"]


@pytest.mark.parametrize("regime, args", [("random", {}), ("temporal_exit", {})])
def test_knockout_refuses_regimes_that_do_not_apply_rules_as_such(regime, args):
    with pytest.raises(ValueError, match=f"regime={regime}.*use regime=full"):
        knockout_regime(build_regime(regime, DEPTH, **args), "question_last", range(3))


def test_knockout_blocks_exactly_the_pathway_in_the_window():
    layout = TokenLayout.synthetic(prefix=3, frames=4, tokens_per_frame=5, question=6, template=2)
    plan = SamplePlan(knockout_regime(build_regime("full", DEPTH), "question_last", window(13, 9, DEPTH)), layout)
    last = layout.length - 1
    for layer in range(DEPTH):
        read = plan.allowed(layer)[last]
        blocked = 9 <= layer < 18
        assert bool(read[layout.positions("question")].any()) is not blocked
        assert bool(read[layout.positions("video")].all())
    assert plan.edges == plan.full_edges - 9 * layout.size("question")


def test_single_frame_pathway_blocks_only_that_frame():
    layout = TokenLayout.synthetic(prefix=2, frames=4, tokens_per_frame=3, question=4, template=1)
    plan = SamplePlan(knockout_regime(build_regime("full", DEPTH), "frame1_last", range(5)), layout)
    read = plan.allowed(0)[-1]
    frames = [s for s in layout.segments if s.group == "video"]
    assert [bool(read[s.start:s.stop].any()) for s in frames] == [True, False, True, True]


# -- option spans -------------------------------------------------------------------------


@pytest.mark.parametrize("pieces, expected", [
    (["Where", "?", "\n", "A", ".", " left", "\n", "B", ".", " right", "\n", "Answer", " A", "."], [(3, 6), (7, 10)]),
    (["Q", "?", " A", ".", " up", " B", ".", " down"], [(2, 5), (5, 8)]),
    (["(A)", " yes", " (B)", " no"], [(0, 2), (2, 4)]),
    (["Which", " B", ".", " C", "."], []),  # markers must start at A
    (["How", " many", "?"], []),
])
def test_option_spans_follow_the_lettered_options(pieces, expected):
    assert option_spans(pieces) == expected


def test_options_are_parts_of_the_question_and_change_no_regime():
    plain = TokenLayout.synthetic(prefix=4, frames=3, tokens_per_frame=4, question=12, template=3)
    q = plain.positions("question")[0].item()
    with_options = TokenLayout.from_spans(plain.length, 4, [4, 4, 4], (q, q + 12), [(q + 3, q + 6), (q + 7, q + 10)])
    assert with_options.positions("question").tolist() == plain.positions("question").tolist()
    assert with_options.positions("options").tolist() == [q + 3, q + 4, q + 5, q + 7, q + 8, q + 9]
    assert with_options.positions("non_options").tolist() == [q, q + 1, q + 2, q + 6, q + 10, q + 11]
    for name in REGIMES:
        regime = build_regime(name, DEPTH)
        assert SamplePlan(regime, with_options).edges_per_layer == SamplePlan(regime, plain).edges_per_layer
        assert all(bool((SamplePlan(regime, with_options).allowed(layer) == SamplePlan(regime, plain).allowed(layer)).all())
                   for layer in (0, 12, 27))


def test_option_rules_block_option_positions_only():
    layout = TokenLayout.from_spans(20, 2, [3, 3], (9, 18), [(11, 13), (14, 16)])
    plan = SamplePlan(knockout_regime(build_regime("full", DEPTH), "options_last", range(1)), layout)
    read = plan.allowed(0)[-1]
    assert (~read).nonzero().squeeze(1).tolist() == [11, 12, 14, 15]
    rule = Rule("video_non_options", ("non_options",), ("video",), frozenset({0}))
    rows = SamplePlan(build_regime("full", DEPTH), layout).blocks((rule,))
    readers = [s for s in layout.segments if s.group == "question"]
    assert [bool(rows[layout.segments.index(s), 1]) for s in readers] == [s.option >= 0 for s in readers]


# -- the measure and the averaging --------------------------------------------------------


def test_relative_change_is_percent_of_the_base_probability():
    assert relative_change(0.3, 0.6) == pytest.approx(-50.0)
    assert relative_change(0.9, 0.6) == pytest.approx(50.0)
    assert relative_change(0.25, 0.25) == 0


def sweep_tables():
    base = pd.DataFrame({"doc_id": [0, 1, 2], "correct": [True, False, True],
                         "p_pred": [0.5, 0.8, 0.4], "p_true": [0.5, 0.1, 0.4]})
    knocked = pd.DataFrame({"pathway": ["question_last"] * 6, "layer": [1, 1, 1, 2, 2, 2],
                            "first_layer": [1] * 6, "last_layer": [5, 5, 5, 6, 6, 6], "doc_id": [0, 1, 2] * 2,
                            "p_pred": [0.25, 0.8, 0.2, 0.5, 0.4, 0.6], "p_true": [0.25, 0.0, 0.2, 0.5, 0.3, 0.6]})
    return base, knocked


def test_summary_averages_correct_docs_only_by_default():
    base, knocked = sweep_tables()
    summary = summarize(base, knocked).set_index("layer")
    # docs 0 and 2 (doc 1 was answered wrongly): layer 1 halves both; layer 2 keeps 0, raises 2 by half.
    assert summary.loc[1, "relative_change"] == pytest.approx(-50.0)
    assert summary.loc[2, "relative_change"] == pytest.approx(25.0)
    assert summary.loc[1, "true_change"] == pytest.approx(((0.25 - 0.5) + (0.2 - 0.4)) / 2)
    assert summary["docs"].tolist() == [2, 2]


def test_summary_over_all_docs_includes_wrong_answers():
    base, knocked = sweep_tables()
    summary = summarize(base, knocked, "all").set_index("layer")
    assert summary.loc[2, "relative_change"] == pytest.approx((0 - 50 + 50) / 3)
    assert summary["docs"].tolist() == [3, 3]
    assert selected_docs(base, "correct")["doc_id"].tolist() == [0, 2]
    with pytest.raises(ValueError, match="--samples 'some'.*correct, all"):
        selected_docs(base, "some")


# -- calibration --------------------------------------------------------------------------


def planted_summary(planted: dict[str, list[int]], depth: int = DEPTH) -> pd.DataFrame:
    """A sweep whose pathways drop by 20% in the planted layers and wobble by at most 3% elsewhere."""
    rows = []
    for pathway, layers in planted.items():
        for layer in range(1, depth + 1):
            change = -20.0 if layer in layers else 3.0 * (-1) ** layer
            rows.append(dict(pathway=pathway, layer=layer, relative_change=change))
    return pd.DataFrame(rows)


def test_intervals_run_in_fives_with_a_shorter_last():
    assert [(i.start + 1, i.stop) for i in intervals(28)] == [(1, 5), (6, 10), (11, 15), (16, 20), (21, 25), (26, 28)]
    assert [(i.start + 1, i.stop) for i in intervals(10)] == [(1, 5), (6, 10)]


def test_calibration_recovers_planted_ranges():
    planted = {"cross_frame": list(range(6, 16)), "video_question": list(range(6, 21)),
               "question_last": list(range(16, 26))}
    ranges, evidence = derive_ranges(planted_summary(planted), DEPTH)
    assert ranges == {"cross_frame": "6-15", "video_question": "6-20", "question_last": "16-25"}
    assert evidence["cross_frame"]["kept"] == ["6-10", "11-15"]
    assert evidence["question_last"]["interval_means"]["16-20"] == pytest.approx(-20.0)


def test_calibration_keeps_an_interval_by_its_mean_and_reports_gaps():
    # Means: 21-25 (three dropping layers of five) -12; 1-5 (two) -8.6; 6-10 (one) -4, not kept;
    # 26-28 (one of three) -6.7, kept.
    planted = {"cross_frame": [1, 2, 8], "video_question": [21, 22, 23], "question_last": [28]}
    ranges, evidence = derive_ranges(planted_summary(planted), DEPTH)
    assert ranges["video_question"] == "21-25"
    assert ranges["question_last"] == "26-28"
    assert ranges["cross_frame"] == "1-5" and evidence["cross_frame"]["not_kept_inside"] == []
    ranges, evidence = derive_ranges(planted_summary({**planted, "cross_frame": [1, 2, 13, 14]}), DEPTH)
    assert ranges["cross_frame"] == "1-15" and evidence["cross_frame"]["not_kept_inside"] == ["6-10"]


def test_calibration_needs_every_layer_and_some_drop():
    planted = {"cross_frame": [3], "video_question": [7, 8, 9], "question_last": [20, 21, 22]}
    summary = planted_summary(planted)
    with pytest.raises(ValueError, match=r"no 5-layer interval of cross_frame .* lowest is -4\.00% at layers 1-5"):
        derive_ranges(summary, DEPTH)
    with pytest.raises(ValueError, match=r"lacks the question_last knockout at layer\(s\) 3-5, 9"):
        derive_ranges(summary[~((summary.pathway == "question_last") & summary.layer.isin([3, 4, 5, 9]))], DEPTH,
                      threshold=0)


def test_ranges_file_round_trips_through_the_regimes(tmp_path):
    ranges = {"cross_frame": "3-12", "video_question": "5-18", "question_last": "14-28"}
    path = write_ranges_file(tmp_path / "ranges.json", ranges, DEPTH, {"tool": "test"})
    for name in ("effective", "random"):
        regime = build_regime(name, DEPTH, ranges=str(path))
        assert {key: regime.settings[key] for key in ranges} == ranges
        assert regime.settings["ranges_from"] == f"file {path}"
    explicit = build_regime("effective", DEPTH, **ranges)
    assert build_regime("effective", DEPTH, ranges=str(path)).rules == explicit.rules
    overridden = build_regime("effective", DEPTH, ranges=str(path), question_last="20-28")
    assert overridden.settings["question_last"] == "20-28" and overridden.settings["cross_frame"] == "3-12"
    layout = TokenLayout.synthetic(prefix=3, frames=4, tokens_per_frame=4, question=5, template=2)
    edges, full = kept_edges(path, DEPTH, [layout, layout])
    assert edges == 2 * SamplePlan(explicit, layout).edges and full == 2 * SamplePlan(explicit, layout).full_edges


@pytest.mark.parametrize("content, message", [
    (None, "cannot be read"),
    ("{not json", "is not JSON"),
    (json.dumps({"cross_frame": "6-15", "question_last": "16-25"}), "lacks video_question"),
    (json.dumps({"cross_frame": "6-15", "video_question": "6-20", "question_last": "16-25", "depth": 32}),
     "calibrated for a 32-layer language model; this model has 28"),
    (json.dumps({"cross_frame": "6-45", "video_question": "6-20", "question_last": "16-25"}),
     "cross_frame='6-45' is outside the model"),
])
def test_bad_ranges_files_are_named(tmp_path, content, message):
    path = tmp_path / "ranges.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=message):
        build_regime("effective", DEPTH, ranges=str(path))


def test_ranges_is_a_parameter_of_pathway_regimes_only(tmp_path):
    with pytest.raises(ValueError, match="ranges='x.json' does not apply to regime=staged.*effective, random"):
        build_regime("staged", DEPTH, ranges="x.json")
