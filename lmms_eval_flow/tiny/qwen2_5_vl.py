"""The tiny Qwen2.5-VL checkpoint: Qwen2.5-VL-7B's layout (28 decoder layers, GQA, mrope,
windowed ViT) at toy width, with the shared tiny tokenizer (``tokenizers``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    GenerationConfig,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2Tokenizer,
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
)

from lmms_eval_flow.tiny.tokenizers import QWEN2_VL_CHAT_TEMPLATE, train_qwen2_tokenizer

@dataclass(frozen=True)
class TinySizes:
    """The widths of a tiny Qwen2.5-VL (the default: a few MB, for smoke tests).

    The LM keeps the 7B's 28 layers unless ``layers`` says otherwise; the trained toy
    (``lmms_eval_flow.toy``) is wider.
    """

    hidden: int = 64
    intermediate: int = 128
    heads: int = 4
    kv_heads: int = 2  # grouped-query attention, as in the 7B (28 q / 4 kv heads)
    layers: int = 28
    vision_hidden: int = 32
    vision_intermediate: int = 64
    vision_heads: int = 2
    vision_depth: int = 2
    # Qwen's 0.02 suits widths in the thousands; a model this narrow that is to be trained
    # needs about 1/sqrt(width), or attention starts uniform and video barely reaches the answer.
    initializer_range: float = 0.02


def _qwen2_5_vl_config(tokenizer: Qwen2Tokenizer, sizes: TinySizes = TinySizes()) -> Qwen2_5_VLConfig:
    """Qwen2.5-VL-7B's layout (28 decoder layers, GQA, mrope, windowed ViT) at toy width.

    Only the depth of the language model is real, so layer ranges such as 6-20 mean the same
    layers as on the 7B model; widths are shrunk so the checkpoint is a few MB.
    """
    ids = tokenizer.convert_tokens_to_ids
    # The 7B splits its 64 rotary frequencies [16, 24, 24] over (time, height, width); same shares here.
    frequencies = sizes.hidden // sizes.heads // 2
    time_frequencies = frequencies // 4
    space_frequencies = (frequencies - time_frequencies) // 2
    mrope_section = [frequencies - 2 * space_frequencies, space_frequencies, space_frequencies]
    text_config = {
        "vocab_size": len(tokenizer),
        "hidden_size": sizes.hidden,
        "intermediate_size": sizes.intermediate,
        "num_hidden_layers": sizes.layers,
        "num_attention_heads": sizes.heads,
        "num_key_value_heads": sizes.kv_heads,
        "max_position_embeddings": 128000,
        "max_window_layers": sizes.layers,
        "rms_norm_eps": 1e-6,
        "initializer_range": sizes.initializer_range,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": mrope_section},
        "bos_token_id": ids("<|endoftext|>"),
        "eos_token_id": ids("<|im_end|>"),
        "pad_token_id": ids("<|endoftext|>"),
    }
    vision_config = {
        "depth": sizes.vision_depth,
        "hidden_size": sizes.vision_hidden,
        "intermediate_size": sizes.vision_intermediate,
        "num_heads": sizes.vision_heads,
        "initializer_range": sizes.initializer_range,
        "out_hidden_size": text_config["hidden_size"],  # the merger projects into the LM's width
        "patch_size": 14,
        "temporal_patch_size": 2,
        "spatial_merge_size": 2,
        "window_size": 112,  # as the 7B: 8x8-patch attention windows...
        "fullatt_block_indexes": [sizes.vision_depth - 1],  # ...except the last block, which attends globally
        "tokens_per_second": 2,
    }
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=False,  # as the 7B
    )


def build_qwen2_5_vl(out_dir: Path, seed: int, sizes: TinySizes = TinySizes(), extra_corpus: Iterable[str] = ()) -> None:
    """Write a tiny Qwen2.5-VL checkpoint: config, weights, tokenizer and processor."""
    tokenizer = train_qwen2_tokenizer(extra_corpus)
    config = _qwen2_5_vl_config(tokenizer, sizes)
    with torch.random.fork_rng(devices=[]):  # seed the weights without touching the caller's RNG
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config)
    # As the 7B: generation stops at <|im_end|> or <|endoftext|>.
    model.generation_config = GenerationConfig(
        bos_token_id=config.text_config.bos_token_id,
        eos_token_id=[tokenizer.eos_token_id, tokenizer.pad_token_id],
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(out_dir)
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(),
        video_processor=Qwen2VLVideoProcessor(),
        tokenizer=tokenizer,
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
    )
    processor.save_pretrained(out_dir)
