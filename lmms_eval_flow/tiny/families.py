"""Tiny random checkpoints of LLaVA-OneVision, LLaVA-NeXT-Video, VideoLLaMA3 and Qwen3-VL.

Each keeps the real config, model, processor and tokenizer classes and the real language-model
depth of the checkpoint the family's flow wrapper was designed for, so layer ranges mean the
same layers as on the real model; widths and image sizes are shrunk so a checkpoint is a few MB
and one 8-frame 56x56 clip costs a few tokens per frame. ``lmms_eval_flow.tiny.FAMILIES``
finds each by its name, ``build_<family>``.

The tokenizers come from ``tokenizers`` (training corpus, tokenizer trainer, chat template),
shared with the Qwen2.5-VL builder.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import torch
from tokenizers import pre_tokenizers, trainers
from transformers import (
    GenerationConfig,
    LlamaTokenizer,
    LlavaNextImageProcessor,
    LlavaNextVideoConfig,
    LlavaNextVideoForConditionalGeneration,
    LlavaNextVideoProcessor,
    LlavaNextVideoVideoProcessor,
    LlavaOnevisionConfig,
    LlavaOnevisionForConditionalGeneration,
    LlavaOnevisionImageProcessor,
    LlavaOnevisionProcessor,
    LlavaOnevisionVideoProcessor,
    PreTrainedModel,
    Qwen2Tokenizer,
    Qwen2VLImageProcessor,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
    Qwen3VLProcessor,
    Qwen3VLVideoProcessor,
    VideoLlama3Config,
    VideoLlama3ForConditionalGeneration,
    VideoLlama3ImageProcessor,
    VideoLlama3Processor,
    VideoLlama3VideoProcessor,
)

from lmms_eval_flow.tiny.tokenizers import QWEN2_VL_CHAT_TEMPLATE, train_qwen2_tokenizer, training_corpus

FRAME = 56  # the side of a tiny frame (flow_synthetic's clips are 56x56)

# The chat templates of the real checkpoints, as they render one user turn (from transformers'
# processor tests of llava-hf/llava-onevision-qwen2-7b-ov-hf, llava-hf/LLaVA-NeXT-Video-7B-hf and
# lkhl/VideoLLaMA3-2B-Image-HF):
#   LLaVA-OneVision:  <|im_start|>user <video>\nQUESTION<|im_end|><|im_start|>assistant\n
#   LLaVA-NeXT-Video: USER: <video>\nQUESTION ASSISTANT:
#   VideoLLaMA3:      <|im_start|>user\n<|video_pad|>\nQUESTION<|im_end|>\n<|im_start|>assistant\n
LLAVA_ONEVISION_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + ' ' }}"
    "{% if message['content'] is string %}{{ '\\n' + message['content'] }}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ '\\n' + content['text'] }}{% endfor %}"
    "{% endif %}"
    "{{ '<|im_end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
LLAVA_NEXT_VIDEO_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] + ' ' }}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>\\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' ' }}{% endfor %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
VIDEOLLAMA3_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}{{ '<|image_pad|>\\n' }}"
    "{% elif content['type'] == 'video' %}{{ '<|video_pad|>\\n' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "{{ '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _qwen_tokenizer(added: tuple[str, ...] = (), chat_template: str | None = None) -> Qwen2Tokenizer:
    """The tiny Qwen2-style tokenizer of ``tiny_models``, with ``added`` special tokens after its
    vocabulary (where the real LLaVA-OneVision tokenizer has ``<image>`` and ``<video>``)."""
    tokenizer = train_qwen2_tokenizer()
    if added:
        tokenizer.add_tokens(list(added), special_tokens=True)
    tokenizer.chat_template = chat_template or QWEN2_VL_CHAT_TEMPLATE
    return tokenizer


def _llama_tokenizer() -> LlamaTokenizer:
    """A SentencePiece-style BPE (``▁`` word marks, byte fallback) trained on the tiny corpus and
    wrapped as the LlamaTokenizer of Vicuna-based LLaVA-NeXT-Video, ``<video>`` and ``<image>``
    added after the vocabulary as in the real checkpoint (ids 32000 and 32001 there)."""
    backend = LlamaTokenizer().backend_tokenizer
    # Learn merges within words only, as SentencePiece does; the final tokenizer splits nothing.
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    byte_tokens = [f"<0x{i:02X}>" for i in range(256)]  # what byte fallback spells unknown characters with
    trainer = trainers.BpeTrainer(vocab_size=1024, special_tokens=["<unk>", "<s>", "</s>", *byte_tokens],
                                  show_progress=False)
    backend.train_from_iterator(itertools.chain(training_corpus(), ["USER: ASSISTANT:"]), trainer)
    trained = json.loads(backend.to_str())["model"]
    tokenizer = LlamaTokenizer(vocab=trained["vocab"], merges=[tuple(pair) for pair in trained["merges"]],
                               add_bos_token=True, pad_token="<unk>", chat_template=LLAVA_NEXT_VIDEO_CHAT_TEMPLATE,
                               model_max_length=4096)  # as the 7B's: <s> opens every prompt, <unk> pads
    tokenizer.add_tokens(["<video>", "<image>"], special_tokens=True)
    return tokenizer


def _text_config(model_type: str, tokenizer, layers: int, **extra) -> dict:
    """A toy-width decoder of the real depth, with the tokenizer's special ids."""
    return {
        "model_type": model_type,
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 32768,
        "bos_token_id": tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        **extra,
    }


def _save(out_dir: Path, seed: int, model_class: type[PreTrainedModel], config, processor, eos_ids: list[int]) -> None:
    """Seeded random weights (the caller's RNG untouched), generation stops and the processor."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(config)
    model.generation_config = GenerationConfig(
        bos_token_id=config.text_config.bos_token_id, eos_token_id=eos_ids, pad_token_id=config.text_config.pad_token_id
    )
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)


def build_llava_onevision(out_dir: Path, seed: int) -> None:
    """LLaVA-OneVision-7B's layout (Qwen2-7B LM: 28 layers; SigLIP tower; each frame pooled 2x2 to
    a quarter of its patches; one newline embedding after the video) at toy width: 56-px frames
    of 4x4 patches give 2x2 = 4 tokens each."""
    tokenizer = _qwen_tokenizer(("<image>", "<video>"), LLAVA_ONEVISION_CHAT_TEMPLATE)
    ids = tokenizer.convert_tokens_to_ids
    pinpoints = [[FRAME, FRAME], [FRAME, 2 * FRAME], [2 * FRAME, FRAME], [2 * FRAME, 2 * FRAME]]
    config = LlavaOnevisionConfig(
        text_config=_text_config("qwen2", tokenizer, 28, rope_parameters={"rope_type": "default", "rope_theta": 1e6}),
        vision_config={"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64,
                       "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": FRAME, "patch_size": 14},
        image_token_index=ids("<image>"),
        video_token_index=ids("<video>"),
        vision_feature_select_strategy="full",  # as the 7B
        vision_feature_layer=-1,
        image_grid_pinpoints=pinpoints,
    )
    size = {"height": FRAME, "width": FRAME}
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size=size, image_grid_pinpoints=pinpoints),
        video_processor=LlavaOnevisionVideoProcessor(size=size),
        tokenizer=tokenizer,
        num_image_tokens=(FRAME // 14) ** 2,
        vision_feature_select_strategy="full",
        chat_template=LLAVA_ONEVISION_CHAT_TEMPLATE,
    )
    _save(out_dir, seed, LlavaOnevisionForConditionalGeneration, config, processor,
          [tokenizer.eos_token_id, tokenizer.pad_token_id])


def build_llava_next_video(out_dir: Path, seed: int) -> None:
    """LLaVA-NeXT-Video-7B's layout (Vicuna-7B, a Llama LM: 32 layers; CLIP tower, CLS dropped,
    each frame average-pooled with stride 2) at toy width: 56-px frames of 4x4 patches give 2x2 =
    4 tokens each."""
    tokenizer = _llama_tokenizer()
    ids = tokenizer.convert_tokens_to_ids
    pinpoints = [[FRAME, 2 * FRAME], [2 * FRAME, FRAME], [2 * FRAME, 2 * FRAME]]
    config = LlavaNextVideoConfig(
        text_config=_text_config("llama", tokenizer, 32, pad_token_id=tokenizer.unk_token_id),
        vision_config={"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64,
                       "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": FRAME, "patch_size": 14,
                       "projection_dim": 32},
        image_token_index=ids("<image>"),
        video_token_index=ids("<video>"),
        vision_feature_select_strategy="default",  # as the 7B: CLS dropped, second-to-last layer
        vision_feature_layer=-2,
        spatial_pool_stride=2,
        image_grid_pinpoints=pinpoints,
        image_seq_length=(FRAME // 14) ** 2,
        video_seq_length=(FRAME // 14 // 2) ** 2,
    )
    processor = LlavaNextVideoProcessor(
        image_processor=LlavaNextImageProcessor(size={"shortest_edge": FRAME}, crop_size=FRAME,
                                                image_grid_pinpoints=pinpoints),
        video_processor=LlavaNextVideoVideoProcessor(size={"shortest_edge": FRAME},
                                                     crop_size={"height": FRAME, "width": FRAME}),
        tokenizer=tokenizer,
        patch_size=14,
        vision_feature_select_strategy="default",
        chat_template=LLAVA_NEXT_VIDEO_CHAT_TEMPLATE,
    )
    _save(out_dir, seed, LlavaNextVideoForConditionalGeneration, config, processor, [tokenizer.eos_token_id])


def build_videollama3(out_dir: Path, seed: int) -> None:
    """VideoLLaMA3-7B's layout (Qwen2.5-7B LM: 28 layers; 14-px patches merged 2x2; frames pruned
    by difference from the previous one; each frame preceded by "Time t s:") at toy width: 56-px
    frames give at most 2x2 = 4 tokens each."""
    tokenizer = _qwen_tokenizer(chat_template=VIDEOLLAMA3_CHAT_TEMPLATE)
    ids = tokenizer.convert_tokens_to_ids
    config = VideoLlama3Config(
        text_config=_text_config("qwen2", tokenizer, 28, rope_parameters={"rope_type": "default", "rope_theta": 1e6}),
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                       "num_attention_heads": 2, "patch_size": 14},
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
    )
    pixels = {"min_pixels": FRAME * FRAME, "max_pixels": FRAME * FRAME * 16}  # 16 frames of 56x56 at most
    processor = VideoLlama3Processor(
        image_processor=VideoLlama3ImageProcessor(**pixels),
        video_processor=VideoLlama3VideoProcessor(**pixels),
        tokenizer=tokenizer,
        chat_template=VIDEOLLAMA3_CHAT_TEMPLATE,
    )
    _save(out_dir, seed, VideoLlama3ForConditionalGeneration, config, processor,
          [tokenizer.eos_token_id, tokenizer.pad_token_id])


def build_qwen3_vl(out_dir: Path, seed: int) -> None:
    """Qwen3-VL-8B's layout (Qwen3-8B LM: 36 layers; 16-px patches, 2 frames per temporal patch,
    2x2 merge; ViT features added into the first 3 LM layers, "deepstack") at toy width: 64-px
    frames give 2x2 = 4 tokens per temporal patch."""
    tokenizer = _qwen_tokenizer()
    ids = tokenizer.convert_tokens_to_ids
    # The 8B gives [24, 20, 20] of its 64 rotary frequencies to (time, height, width), interleaved.
    rope = {"rope_type": "default", "rope_theta": 5e6, "mrope_section": [4, 2, 2], "mrope_interleaved": True}
    config = Qwen3VLConfig(
        text_config=_text_config("qwen3_vl_text", tokenizer, 36, head_dim=16, rope_parameters=rope),
        vision_config={"depth": 4, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
                       "out_hidden_size": 64, "patch_size": 16, "temporal_patch_size": 2, "spatial_merge_size": 2,
                       "num_position_embeddings": 16, "deepstack_visual_indexes": [1, 2, 3]},
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )
    processor = Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(patch_size=16, merge_size=2),
        video_processor=Qwen3VLVideoProcessor(patch_size=16, merge_size=2, temporal_patch_size=2),
        tokenizer=tokenizer,
        chat_template=tokenizer.chat_template,
    )
    _save(out_dir, seed, Qwen3VLForConditionalGeneration, config, processor,
          [tokenizer.eos_token_id, tokenizer.pad_token_id])
