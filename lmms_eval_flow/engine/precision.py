"""Changing a loaded model's dtype without touching the buffers transformers keeps in float32.

``model.to(torch.bfloat16)`` casts buffers too, among them the rotary ``inv_freq`` (and
``original_inv_freq``) that transformers computes and keeps in float32 on purpose: rounded to
bfloat16, Qwen2.5-7B's rope frequencies drift by more than half a radian on several frequency
pairs within a few thousand positions, scrambling long video prompts. Casting the parameters
alone changes the arithmetic's dtype and leaves every buffer as ``from_pretrained`` gave it.
"""

from __future__ import annotations

import torch


def cast_parameters(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """Cast ``model``'s floating-point parameters (not its buffers) to ``dtype``, in place."""
    for parameter in model.parameters():
        if parameter.is_floating_point():
            parameter.data = parameter.data.to(dtype)
    return model
