"""The tiny Qwen2.5-VL, its processor (as lmms-eval loads it) and one clip's inputs, for the engine's tests."""

import pytest
import torch
from family_cases import QUESTION, make_inputs
from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration


@pytest.fixture(scope="module")
def processor(tiny_model_dir):
    return AutoProcessor.from_pretrained(tiny_model_dir, max_pixels=3136, min_pixels=3136)  # as lmms-eval loads it


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def inputs(processor):
    return make_inputs(processor, [QUESTION])
