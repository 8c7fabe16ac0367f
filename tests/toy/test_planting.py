"""The known-answer toy's training masks (toy.planting) and loss (toy.train.answer_loss): what is
planted is what the masks let through, and a cut row is taught not to know."""

import random
from collections import Counter

import pytest
import torch

from lmms_eval_flow.engine.layers import parse_layer_range
from lmms_eval_flow.engine.layout import Segment, TokenLayout
from lmms_eval_flow.engine.plan import SamplePlan
from lmms_eval_flow.engine.regimes import RANGE_KEYS
from lmms_eval_flow.toy import planting
from lmms_eval_flow.toy.train import Example, answer_loss

PLANTED = {key: set(parse_layer_range(text, planting.DEPTH, key)) for key, text in planting.PLANTED.items()}
DRAWS = 3000


def draws(temporal=True, seed=0):
    rng = random.Random(seed)
    return [planting.draw_condition(rng, temporal) for _ in range(DRAWS)]


def blocked_layers(condition, name):
    return set().union(*[rule.layers for rule in condition.regime.rules if rule.name == name])


def test_the_plant_is_twelve_layers_of_disjoint_ranges_in_order():
    assert planting.DEPTH >= 12
    ranges = [PLANTED[key] for key in RANGE_KEYS]
    assert max(ranges[0]) < min(ranges[1]) and max(ranges[1]) < min(ranges[2])


def test_rows_that_must_answer_keep_every_planted_pathway_open_in_its_range():
    answering = [c for c in draws() if c.cut is None]
    assert answering
    for condition in answering:
        for key in RANGE_KEYS:
            assert not blocked_layers(condition, key) & PLANTED[key], (key, condition.regime.rules)


def test_a_cut_row_misses_its_pathway_in_some_planted_layer_and_everywhere_outside():
    cut = [c for c in draws() if c.cut is not None]
    single = 0
    for condition in cut:
        layers = blocked_layers(condition, condition.cut)
        assert layers & PLANTED[condition.cut]
        assert layers >= set(range(planting.DEPTH)) - PLANTED[condition.cut]
        single += len(layers & PLANTED[condition.cut]) == 1
        for key in set(RANGE_KEYS) - {condition.cut}:  # the other planted pathways stay open
            assert not blocked_layers(condition, key) & PLANTED[key]
    assert single > len(cut) / 10  # single planted layers are cut too, so every layer is needed


def test_the_static_control_is_never_cut_across_frames():
    assert "cross_frame" not in {c.cut for c in draws(temporal=False)}
    assert {c.cut for c in draws(temporal=True)} == {None, *RANGE_KEYS}


def test_the_shares_of_conditions_are_as_stated():
    counts = Counter("cut" if c.cut else "full" if not c.regime.rules else "masked" for c in draws())
    assert counts["cut"] / DRAWS == pytest.approx(planting.COUNTERFACTUAL_SHARE, abs=0.03)
    assert counts["full"] / DRAWS == pytest.approx(planting.FULL_SHARE, abs=0.03)


def test_a_mask_draw_is_the_same_for_the_same_seed():
    assert [c.regime.rules for c in draws(seed=3)][:50] == [c.regime.rules for c in draws(seed=3)][:50]


def test_detours_around_the_plant_are_closed_in_some_rows():
    layout = TokenLayout((Segment("prefix", 0, 2), Segment("video", 2, 4, frame=0), Segment("video", 4, 6, frame=1),
                          Segment("question", 6, 8), Segment("template", 8, 9), Segment("last", 9, 10)))
    template_reads_video = [bool(~SamplePlan(c.regime, layout).dense(c.regime.rules_at(0))[8, 2])
                            for c in draws()[:300]]
    assert 0 < sum(template_reads_video) < len(template_reads_video)


def test_the_settings_follow_the_plant():
    settings = planting.planted_settings("5-9")
    assert settings["effective"] == settings["random"] == planting.PLANTED
    after = {key: max(PLANTED[key]) + 2 for key in RANGE_KEYS}  # 1-based layer after each range
    assert settings["temporal_exit"] == {"exit_layer": str(after["video_question"])}
    assert settings["staged"] == {"query_last_frame": "5-9", "no_inter_frame": f"{after['cross_frame']}-{planting.DEPTH}"}


def _example(answer: list[int], options: list[int]) -> Example:
    prompt = [5, 6, 7]
    return Example("order", torch.tensor(prompt + answer), torch.zeros(len(prompt) + len(answer), dtype=torch.long),
                   len(prompt), torch.tensor(options), torch.zeros(1), torch.zeros(1, 3), torch.zeros(1))


def test_the_loss_is_the_answers_cross_entropy_or_for_a_cut_row_the_uniform_over_the_letters():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 10)
    examples = [_example([1, 9], [1, 2, 3]), _example([2, 9], [1, 2, 3])]
    labels = torch.tensor([[-100, -100, -100, 1, 9], [-100, -100, -100, 2, 9]])
    log_probs = logits.log_softmax(-1)
    answered = -(log_probs[0, 2, 1] + log_probs[0, 3, 9]) / 2
    uniform = -log_probs[1, 2, [1, 2, 3]].mean()
    loss = answer_loss(logits, labels, examples, [3, 3], [False, True])
    assert loss.item() == pytest.approx(((answered + uniform) / 2).item(), rel=1e-6)
