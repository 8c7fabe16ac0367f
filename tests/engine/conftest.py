"""Fixtures of the engine tests that watch which attention path a forward took."""

import pytest

from lmms_eval_flow.engine import attention


@pytest.fixture
def decomposed_layers(monkeypatch) -> list[int]:
    """The layer of every call of the group-decomposed path (``blocks.decomposed_attention``, as the
    attention hook calls it) in the test, in order: what shows that a ``blocks`` run decomposed."""
    layers: list[int] = []
    original = attention.decomposed_attention

    def spy(module, *args, **kwargs):
        layers.append(module.layer_idx)
        return original(module, *args, **kwargs)

    monkeypatch.setattr(attention, "decomposed_attention", spy)
    return layers
