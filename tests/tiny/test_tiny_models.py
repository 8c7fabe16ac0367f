"""The tiny Qwen2.5-VL checkpoint must load and run through the same paths as the real one."""

import os

# huggingface_hub reads these once, when first imported: set them before transformers is imported.
os.environ.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})

import av
import numpy as np
import pytest
import torch
from lmms_eval.api.instance import Instance
from lmms_eval.models.chat.qwen2_5_vl import Qwen2_5_VL as LmmsEvalQwen2_5_VL
from qwen_vl_utils import process_vision_info
from safetensors.torch import load_file
from transformers import (
    AutoProcessor,
    AutoTokenizer,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2Tokenizer,
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
)

from lmms_eval_flow.tiny import FAMILIES, make_tiny_model

# With min = max = 56*56 pixels each frame becomes 4x4 patches of 14 px, i.e. 2x2 tokens after
# the 2x2 spatial merge; 8 frames make 4 temporal patches, so a video costs 4*2*2 = 16 tokens.
PIXELS = 56 * 56
NUM_FRAMES = 8
QUESTION = "Which colour is first? A. red B. blue"


@pytest.fixture(scope="module", autouse=True)
def _tmp_hf_home(tmp_path_factory):
    """Keep anything that reads HF_HOME at run time away from the user's cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HOME", str(tmp_path_factory.mktemp("hf_home")))
        yield


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "qwen2_5_vl")


@pytest.fixture(scope="module")
def video_path(tmp_path_factory):
    """An 8-frame 56x56 mp4 whose frames cycle through red, green and blue."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=4)
        stream.width = stream.height = 56
        stream.pix_fmt = "yuv420p"
        for i in range(NUM_FRAMES):
            frame = np.zeros((56, 56, 3), np.uint8)
            frame[..., i % 3] = 255
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())  # flush the encoder
    return path


def _video_messages(video_path):
    video = {"type": "video", "video": str(video_path), "nframes": NUM_FRAMES}
    video |= {"min_pixels": PIXELS, "max_pixels": PIXELS}  # what lmms-eval puts in each video item
    return [{"role": "user", "content": [video, {"type": "text", "text": QUESTION}]}]


def test_checkpoint_is_a_few_megabytes(model_dir):
    files = {p.name: p.stat().st_size for p in model_dir.iterdir()}
    expected = {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja", "processor_config.json"}
    assert expected <= set(files)
    assert sum(files.values()) < 8 * 2**20


def test_model_loads_with_real_config_and_depth(model_dir):
    model, info = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_dir, output_loading_info=True)
    assert info == {"missing_keys": set(), "unexpected_keys": set(), "mismatched_keys": set(), "error_msgs": []}
    config = model.config
    assert type(config) is Qwen2_5_VLConfig
    text = config.text_config
    assert text.num_hidden_layers == 28
    assert len(model.model.language_model.layers) == 28
    assert text.num_key_value_heads < text.num_attention_heads  # grouped-query attention
    head_dim = text.hidden_size // text.num_attention_heads
    assert sum(text.rope_parameters["mrope_section"]) == head_dim // 2
    assert config.vision_config.out_hidden_size == text.hidden_size


def test_tokenizer_and_processor_load_as_stock_classes(model_dir):
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    processor = AutoProcessor.from_pretrained(model_dir)
    assert type(tokenizer) is Qwen2Tokenizer
    assert type(processor) is Qwen2_5_VLProcessor
    assert type(processor.image_processor) is Qwen2VLImageProcessor
    assert type(processor.video_processor) is Qwen2VLVideoProcessor
    assert 500 <= len(tokenizer) <= 2000
    assert (tokenizer.eos_token, tokenizer.pad_token) == ("<|im_end|>", "<|endoftext|>")


def test_special_token_ids_match_config(model_dir):
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_dir)
    config = model.config
    ids = tokenizer.convert_tokens_to_ids
    assert config.image_token_id == ids("<|image_pad|>")
    assert config.video_token_id == ids("<|video_pad|>")
    assert config.vision_start_token_id == ids("<|vision_start|>")
    assert config.vision_end_token_id == ids("<|vision_end|>")
    assert config.text_config.eos_token_id == tokenizer.eos_token_id
    assert config.text_config.pad_token_id == tokenizer.pad_token_id
    assert config.text_config.bos_token_id == ids("<|endoftext|>")
    assert tokenizer.eos_token_id in model.generation_config.eos_token_id
    assert config.text_config.vocab_size == len(tokenizer)
    for token in ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|video_pad|>"]:
        assert tokenizer.encode(token) == [ids(token)]  # never split into bytes


def test_tokenizer_keeps_prompt_words_whole_and_round_trips_any_text(model_dir):
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert tokenizer.tokenize("Which option? Answer with the letter") == [
        "Which", "Ġoption", "?", "ĠAnswer", "Ġwith", "Ġthe", "Ġletter",
    ]  # fmt: skip
    text = "Ünïcode 🎥 text the corpus never saw\n\tand numbers 12345"
    assert tokenizer.decode(tokenizer.encode(text)) == text  # byte-level: nothing is unknown


def test_chat_template_renders_qwen_layout(model_dir, video_path):
    processor = AutoProcessor.from_pretrained(model_dir)
    text = processor.apply_chat_template(_video_messages(video_path), tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        f"<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>{QUESTION}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    with_system = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert processor.apply_chat_template(with_system, tokenize=False) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    )


def test_processor_expands_video_into_one_pad_per_merged_patch(model_dir, video_path):
    processor = AutoProcessor.from_pretrained(model_dir, min_pixels=PIXELS, max_pixels=PIXELS)
    messages = _video_messages(video_path)
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    _, videos = process_vision_info(messages, return_video_metadata=True)
    frames, metadata = zip(*videos)
    inputs = processor(text=[text], videos=list(frames), video_metadata=list(metadata), return_tensors="pt")

    assert inputs["video_grid_thw"].tolist() == [[NUM_FRAMES // 2, 4, 4]]
    ids = processor.tokenizer.convert_tokens_to_ids
    encode = processor.tokenizer.encode
    expected = (
        encode("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n")
        + [ids("<|vision_start|>")]
        + [ids("<|video_pad|>")] * 16
        + [ids("<|vision_end|>")]
        + encode(f"{QUESTION}<|im_end|>\n<|im_start|>assistant\n")
    )
    assert inputs["input_ids"][0].tolist() == expected


def test_same_seed_gives_identical_files_and_other_seed_other_weights(model_dir, tmp_path):
    torch.manual_seed(123)
    expected_next_random = torch.rand(3)
    torch.manual_seed(123)
    same = make_tiny_model(tmp_path / "same", seed=0)
    assert torch.equal(torch.rand(3), expected_next_random)  # the caller's RNG is left alone
    for path in model_dir.iterdir():
        assert (same / path.name).read_bytes() == path.read_bytes(), path.name

    other = make_tiny_model(tmp_path / "other", seed=1)
    assert (other / "tokenizer.json").read_bytes() == (model_dir / "tokenizer.json").read_bytes()
    weights = load_file(model_dir / "model.safetensors")
    other_weights = load_file(other / "model.safetensors")
    assert weights.keys() == other_weights.keys()
    # The file uses the real checkpoints' key names (model.layers.*, not model.language_model.layers.*).
    for name in ["model.embed_tokens.weight", "model.layers.27.mlp.up_proj.weight", "visual.patch_embed.proj.weight"]:
        assert not torch.equal(weights[name], other_weights[name]), name


def test_lmms_eval_chat_wrapper_answers_a_video_question(model_dir, video_path):
    lm = LmmsEvalQwen2_5_VL(
        pretrained=str(model_dir),
        device="cpu",
        device_map="cpu",
        min_pixels=PIXELS,
        max_pixels=PIXELS,
        max_num_frames=NUM_FRAMES,
    )
    doc = {"video": str(video_path), "question": QUESTION}

    def doc_to_messages(doc):
        content = [{"type": "video", "url": doc["video"]}, {"type": "text", "text": doc["question"]}]
        return [{"role": "user", "content": content}]

    lm.task_dict = {"tiny_task": {"test": [doc]}}
    request = Instance(
        request_type="generate_until",
        arguments=("", doc_to_messages, {"max_new_tokens": 3}, 0, "tiny_task", "test"),
        idx=0,
        metadata={"task": "tiny_task", "doc_id": 0, "repeats": 1},
    )
    [result] = lm.generate_until([request])
    assert isinstance(result.text, str)
    assert 1 <= result.token_counts.output_tokens <= 3


def test_unknown_family_names_the_valid_ones(tmp_path):
    assert "qwen2_5_vl" in FAMILIES
    with pytest.raises(ValueError, match=r"'llava'.*qwen2_5_vl"):
        make_tiny_model(tmp_path / "nope", family="llava")
    assert not (tmp_path / "nope").exists()
