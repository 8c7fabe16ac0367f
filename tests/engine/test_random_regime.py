"""The `random` control: a stateless hash per (seed, layer, query, key), exact blocked counts in
each of its three forms (the rules' count, ``keep``, ``block_ratio``), and the same mask whatever
the batch, its order or the device."""

import pytest
import torch

from lmms_eval_flow.engine.attention import BatchPlan
from lmms_eval_flow.engine.layout import TokenLayout, causal_edges
from lmms_eval_flow.engine.pair_hash import pair_hash
from lmms_eval_flow.engine.plan import SamplePlan
from lmms_eval_flow.engine.regimes import build_regime

LAYOUT = TokenLayout.synthetic(prefix=5, frames=4, tokens_per_frame=6, question=7, template=4)
OTHER = TokenLayout.synthetic(prefix=3, frames=2, tokens_per_frame=5, question=4, template=2)


def reference_hash(seed: int, layer: int, query: int, key: int) -> int:
    """pair_hash written with Python's unbounded integers, reduced mod 2^31 after each product."""
    def mix(value):
        value ^= value >> 16
        value = value * 0x85EBCA6B % 2**31
        value ^= value >> 13
        value = value * 0xC2B2AE35 % 2**31
        return value ^ (value >> 16)

    def stream(number):
        value = mix(number * 0x9E3779B9 % 2**31)
        words = [seed % 2**31] + [(seed >> shift) % 2**31 for shift in range(31, seed.bit_length(), 31)]
        for word in [*words, layer]:
            value = mix(value ^ word)
        return value

    rows, columns, second = mix(stream(1) ^ query), mix(stream(2) ^ key), mix(stream(3) ^ query)
    return mix(mix(rows ^ columns) ^ second)


def blocked_count(plan: SamplePlan, layer: int) -> int:
    return causal_edges(plan.layout.length) - int(plan.allowed(layer).sum())


# -- the hash ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 7, 2**31 - 1, 2**40 + 3])
def test_pair_hash_equals_an_unbounded_integer_reference(seed):
    queries = torch.tensor([0, 1, 17, 4095, 2**31 - 1])
    keys = torch.tensor([0, 3, 17, 2**20, 2**31 - 1])
    hashes = pair_hash(seed, 5, queries[:, None], keys[None, :])
    expected = [[reference_hash(seed, 5, int(q), int(k)) for k in keys] for q in queries]
    assert hashes.tolist() == expected
    assert hashes.min() >= 0 and hashes.max() < 2**31


def test_pair_hash_is_pure_and_ignores_the_positions_dtype():
    queries, keys = torch.arange(300)[:, None], torch.arange(300)[None, :]
    first = pair_hash(3, 9, queries, keys)
    assert torch.equal(first, pair_hash(3, 9, queries, keys))
    assert torch.equal(first, pair_hash(3, 9, queries.int(), keys.int()))
    assert first.dtype == torch.int64


def test_pair_hash_separates_seeds_layers_queries_and_keys():
    queries, keys = torch.arange(64)[:, None], torch.arange(64)[None, :]
    base = pair_hash(0, 0, queries, keys)
    for other in (pair_hash(1, 0, queries, keys), pair_hash(0, 1, queries, keys)):
        assert (base != other).float().mean() > 0.99
    assert len(base.unique()) > 0.99 * base.numel()  # 4096 pairs, 31-bit values


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_pair_hash_and_mask_are_the_same_on_cpu_and_cuda():
    queries, keys = torch.arange(2000)[:, None], torch.arange(2000)[None, :]
    on_cuda = pair_hash(11, 4, queries.cuda(), keys.cuda())
    assert on_cuda.is_cuda
    assert torch.equal(pair_hash(11, 4, queries, keys), on_cuda.cpu())
    for regime in (build_regime("random", 28, seed=5), build_regime("random", 28, block_ratio=0.42)):
        plan = SamplePlan(regime, LAYOUT)
        for layer in (0, 13, 27):
            mask = plan.allowed(layer, torch.device("cuda"))
            assert mask.is_cuda and torch.equal(mask.cpu(), plan.allowed(layer))


# -- the mask ------------------------------------------------------------------------------


def test_the_mask_depends_only_on_layout_seed_and_layer():
    """Built alone, in two batches, in either order and after other samples: the same mask."""
    regime = build_regime("random", 28, seed=4)
    alone = [SamplePlan(regime, LAYOUT).allowed(layer) for layer in range(28)]
    length = max(LAYOUT.length, OTHER.length) + 2
    for order in ([LAYOUT, OTHER], [OTHER, OTHER, LAYOUT]):
        plans = [SamplePlan(regime, layout) for layout in order]
        pads = [length - layout.length for layout in order]
        batch = BatchPlan(plans, pads, length, "dense")
        row, pad = order.index(LAYOUT), pads[order.index(LAYOUT)]
        for layer in (27, 3, 12):  # out of order
            mask, _ = batch.attention_mask(layer, length, length, None)
            assert torch.equal(mask[row, 0, pad:, pad:], alone[layer])


def test_seeds_and_layers_give_different_masks():
    plans = [SamplePlan(build_regime("random", 28, seed=seed), LAYOUT) for seed in (0, 1)]
    for layer in (0, 10, 27):
        assert not torch.equal(plans[0].allowed(layer), plans[1].allowed(layer))
    assert not torch.equal(plans[0].allowed(3), plans[0].allowed(4))


def test_blocked_pairs_lie_at_or_after_the_first_video_position():
    plan = SamplePlan(build_regime("random", 28, block_ratio=0.5), LAYOUT)
    start, causal = LAYOUT.video_start, torch.ones(LAYOUT.length, LAYOUT.length, dtype=torch.bool).tril()
    for layer in range(28):
        mask = plan.allowed(layer)
        assert torch.equal(mask[:start], causal[:start]) and mask[start:, :start].all()
        assert not (mask & ~causal).any()


# -- the counts ----------------------------------------------------------------------------


def test_the_rules_count_is_blocked_exactly():
    effective = SamplePlan(build_regime("effective", 28), LAYOUT)
    plan = SamplePlan(build_regime("random", 28, seed=2), LAYOUT)
    full = causal_edges(LAYOUT.length)
    assert [blocked_count(plan, layer) for layer in range(28)] == [full - e for e in effective.edges_per_layer]


def test_keep_and_block_ratio_counts_are_exact_on_a_hand_worked_sample():
    """N = 10 positions, 55 causal pairs, 36 of them from the first video position (2) on.

    keep=0.5 keeps round(27.5) = 28 (banker's rounding), so blocks 27; block_ratio=0.5 blocks
    int(27.5) = 27; block_ratio=0.42 blocks int(23.1) = 23 and keep=0.58 keeps round(31.9) = 32,
    blocking 23 too; block_ratio=0.65 blocks int(35.75) = 35 of the 36 candidates.
    """
    layout = TokenLayout.synthetic(prefix=2, frames=2, tokens_per_frame=3, question=1, template=0)
    assert (layout.length, layout.video_start) == (10, 2)
    for arguments, blocked in [({"keep": 0.5}, 27), ({"block_ratio": 0.5}, 27), ({"block_ratio": 0.42}, 23),
                               ({"keep": 0.58}, 23), ({"block_ratio": 0.65}, 35)]:
        plan = SamplePlan(build_regime("random", 28, seed=1, **arguments), layout)
        assert [blocked_count(plan, layer) for layer in range(28)] == [blocked] * 28, arguments
        assert plan.edges_per_layer == [55 - blocked] * 28


def test_keep_and_block_ratio_differ_in_rounding():
    """For a share s of N(N+1)/2 = 55 pairs: keep=1-s rounds what is kept, block_ratio=s truncates what is blocked."""
    layout = TokenLayout.synthetic(prefix=2, frames=2, tokens_per_frame=3, question=1, template=0)
    keep = SamplePlan(build_regime("random", 28, keep=0.35), layout)  # keeps round(19.25) = 19, blocks 36
    ratio = SamplePlan(build_regime("random", 28, block_ratio=0.65), layout)  # blocks int(35.75) = 35
    assert (keep.regime.draw.blocked(keep, 0), ratio.regime.draw.blocked(ratio, 0)) == (36, 35)


def test_block_ratio_beyond_the_candidates_names_the_highest_reachable():
    layout = TokenLayout.synthetic(prefix=40, frames=1, tokens_per_frame=2, question=1, template=1)
    plan = SamplePlan(build_regime("random", 28, block_ratio=0.9), layout)
    with pytest.raises(ValueError, match=r"block_ratio=0.9 needs .* highest block_ratio reachable here is 0\.0"):
        plan.regime.draw.blocked(plan, 0)


# -- the arguments -------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    ({"block_ratio": 0}, r"block_ratio=0 must be a number in \(0, 1\)"),
    ({"block_ratio": 1}, r"block_ratio=1 must be a number in \(0, 1\)"),
    ({"block_ratio": -0.2}, r"block_ratio=-0.2 must be"),
    ({"block_ratio": "0.4"}, r"block_ratio='0.4' must be"),
    ({"block_ratio": float("nan")}, r"block_ratio=nan must be"),
    ({"keep": 0.42, "block_ratio": 0.58}, r"keep=0.42 and block_ratio=0.58 .* give one"),
])
def test_block_ratio_is_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_regime("random", 28, **kwargs)


def test_block_ratio_is_a_setting_of_random_only():
    regime = build_regime("random", 28, block_ratio=0.42, seed=3)
    assert regime.settings == {"block_ratio": "0.42", "seed": "3"}
    with pytest.raises(ValueError, match="block_ratio=0.42 does not apply to regime=effective"):
        build_regime("effective", 28, block_ratio=0.42)


def test_blocked_pairs_spread_evenly_and_independently_across_layers():
    """The hash's choice behaves as a uniform draw: each part of the candidates loses its share,
    and two layers (or seeds) overlap as two independent draws would."""
    layout = TokenLayout.synthetic(prefix=10, frames=6, tokens_per_frame=30, question=20, template=5)
    start, length = layout.video_start, layout.length
    candidates = torch.ones(length, length, dtype=torch.bool).tril()
    candidates[:start] = candidates[:, :start] = False
    blocked = {(seed, layer): candidates & ~SamplePlan(build_regime("random", 28, seed=seed, block_ratio=0.3),
                                                       layout).allowed(layer)
               for seed, layer in [(0, 0), (0, 1), (1, 0)]}
    share = blocked[0, 0].sum() / candidates.sum()
    middle = (start + length) // 2
    rows, keys = torch.arange(length)[:, None].expand(length, length), torch.arange(length)[None, :]
    parts = {"early queries": rows < middle, "late queries": rows >= middle,
             "near the diagonal": rows - keys < 20, "far from it": rows - keys >= 20}
    for name, part in parts.items():
        assert abs(blocked[0, 0][part].sum() / (candidates & part).sum() - share) < 0.03, name
    for other in (blocked[0, 1], blocked[1, 0]):
        overlap = (blocked[0, 0] & other).sum() / candidates.sum()
        assert abs(overlap - share**2) < 0.02
