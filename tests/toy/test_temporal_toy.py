"""flow_temporal_toy and its trained model: the benchmark's answers follow from the pixels, the
splits are reproducible, training lowers the loss, and the shipped checkpoint is what its
record says."""

import dataclasses
import json
from collections import Counter
from string import ascii_uppercase

import numpy as np
import pytest
import torch
from transformers import AutoConfig, Qwen2_5_VLForConditionalGeneration

from lmms_eval_flow.toy.clips import COLORS, render_frames, spec_hash
from lmms_eval_flow.tiny.qwen2_5_vl import TinySizes
from lmms_eval_flow.toy import (CHECKPOINTS, KNOWN_ANSWER_DIR, planted_ranges, planting, regime_arguments,
                                video_arguments)
from lmms_eval_flow.toy.benchmark import QUESTION_TYPES, TEST_PER_TYPE, generate_docs, committed_split_path
from lmms_eval_flow.toy.train import KNOWN_ANSWER_VIDEO_ARGS, ChatEncoder, train

TEST_DOCS = [json.loads(line) for line in committed_split_path().read_text().splitlines()]


def test_the_committed_test_split_is_the_generated_one():
    assert TEST_DOCS == generate_docs("test", TEST_PER_TYPE)
    assert Counter(doc["category"] for doc in TEST_DOCS) == {kind: TEST_PER_TYPE for kind in QUESTION_TYPES}


def test_every_letter_is_right_equally_often_within_a_type():
    for kind in QUESTION_TYPES:
        docs = [doc for doc in generate_docs("train", 120) if doc["category"] == kind]
        letters = Counter(doc["answer"] for doc in docs)
        assert set(letters) == set(ascii_uppercase[:len(docs[0]["options"])])
        assert max(letters.values()) - min(letters.values()) == 0, (kind, letters)


def test_training_and_test_clips_differ():
    train_clips = {spec_hash(doc["clip"]) for doc in generate_docs("train", 400)}
    assert not train_clips & {spec_hash(doc["clip"]) for doc in TEST_DOCS}


def _pixels_of(frame: np.ndarray, color: str) -> np.ndarray:
    """(y, x) of the pixels of one named colour."""
    return np.argwhere((frame == COLORS[color]).all(axis=-1))


def _answer_from_pixels(doc: dict) -> str:
    """The doc's answer read off its rendered frames, independently of the generator's logic."""
    frames = render_frames(doc["clip"])
    objects = doc["clip"]["objects"]
    if doc["category"] == "direction":
        mover = next(obj for obj in objects if obj.get("velocity"))
        (y0, x0), (y1, x1) = (_pixels_of(frames[t], mover["color"]).mean(axis=0) for t in (0, -1))
        return ("right" if x1 > x0 else "left") if abs(x1 - x0) > abs(y1 - y0) else ("down" if y1 > y0 else "up")
    if doc["category"] == "order":
        first_seen = {obj["color"]: next(t for t, frame in enumerate(frames) if len(_pixels_of(frame, obj["color"])))
                      for obj in objects}
        pick = min if "first" in doc["question"] else max
        return pick(first_seen, key=first_seen.get)
    if doc["category"] == "size":
        (obj,) = objects
        first, last = (len(_pixels_of(frames[t], obj["color"])) for t in (0, -1))
        return "it grows" if last > first else "it shrinks" if last < first else "it stays the same"
    if doc["category"] == "count":
        colours = [Counter(map(tuple, frame[(frame != 0).any(axis=-1)])).most_common(1)[0][0] for frame in frames]
        changes = sum(a != b for a, b in zip(colours, colours[1:]))
        return ["never", "once", "twice", "three times"][changes]
    shape = doc["question"].removesuffix("?").split()[-1]
    (obj,) = [obj for obj in objects if obj["shape"] == shape]
    return obj["color"] if all(len(_pixels_of(frame, obj["color"])) for frame in frames) else "not visible"


@pytest.mark.parametrize("kind", QUESTION_TYPES)
def test_answers_follow_from_the_pixels(kind):
    for doc in [doc for doc in TEST_DOCS if doc["category"] == kind]:
        assert _answer_from_pixels(doc) == doc["options"][ascii_uppercase.index(doc["answer"])], doc["id"]


SMALL_SIZES = TinySizes(hidden=32, intermediate=64, heads=2, kv_heads=1, layers=7, vision_hidden=32,
                        vision_intermediate=64, vision_heads=2, vision_depth=1, initializer_range=0.15)


def _train_small(folder, steps: int = 24, **options) -> dict:
    return train(folder, steps=steps, batch_size=8, lr=3e-3, warmup=4, train_per_type=8, val_per_type=2,
                 **{"sizes": SMALL_SIZES, **options}, eval_every=0, log_every=4, threads=1, log=lambda line: None)


def test_training_reproduces_its_weights(tmp_path):
    first, again = _train_small(tmp_path / "first", steps=6), _train_small(tmp_path / "again", steps=6)
    assert first["loss_curve"] == again["loss_curve"]
    assert (tmp_path / "first" / "model.safetensors").read_bytes() == (tmp_path / "again" / "model.safetensors").read_bytes()


def test_a_few_training_steps_lower_the_loss(tmp_path):
    record = _train_small(tmp_path / "toy")
    losses = record["loss_curve"]
    assert np.mean(losses[-2:]) < 0.8 * np.mean(losses[:2]), losses
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tmp_path / "toy")
    assert model.dtype == torch.bfloat16 and model.config.text_config.num_hidden_layers == 7
    assert json.loads((tmp_path / "toy" / "training.json").read_text())["steps"] == 24
    # A 7-layer LM carries the papers' 28-layer settings scaled to its depth.
    assert regime_arguments(tmp_path / "toy", "effective") == {"cross_frame": "1-4", "video_question": "2-5",
                                                                 "question_last": "6-7"}
    assert regime_arguments(tmp_path / "toy", "temporal_exit") == {"exit_layer": "5"}
    assert regime_arguments(tmp_path / "toy", "full") == {}


def test_a_few_planted_training_steps_lower_the_loss_and_record_the_plant(tmp_path):
    record = _train_small(tmp_path / "known", sizes=dataclasses.replace(SMALL_SIZES, layers=planting.DEPTH),
                          video_args=KNOWN_ANSWER_VIDEO_ARGS, planted=True)
    losses = record["loss_curve"]
    assert np.mean(losses[-2:]) < 0.8 * np.mean(losses[:2]), losses
    assert record["planted"] == planting.PLANTED == planted_ranges(tmp_path / "known")
    assert set(record["validation_accuracy"]["trained_float32"]) == set(planting.checks())
    assert regime_arguments(tmp_path / "known", "effective") == planting.PLANTED
    assert regime_arguments(tmp_path / "known", "temporal_exit") == {"exit_layer": "9"}
    assert video_arguments(tmp_path / "known") == KNOWN_ANSWER_VIDEO_ARGS


@pytest.mark.parametrize("checkpoint", CHECKPOINTS, ids=lambda path: path.name)
def test_the_shipped_checkpoints_are_small_real_and_recorded(checkpoint):
    weights = sum(path.stat().st_size for path in checkpoint.glob("*.safetensors"))
    assert 0 < weights <= 20 * 2**20
    config = AutoConfig.from_pretrained(checkpoint)
    assert config.model_type == "qwen2_5_vl"
    depth = config.text_config.num_hidden_layers
    assert depth == 28 or regime_arguments(checkpoint, "staged")  # else its own layer settings
    record = json.loads((checkpoint / "training.json").read_text())
    assert record["command"].startswith("python -m lmms_eval_flow.toy.train")
    assert set(record["validation_accuracy"]["shipped_float32"]) == {*QUESTION_TYPES, "all"}
    assert video_arguments(checkpoint) == record["video_args"]


def test_the_known_answer_toy_is_deep_and_video_dominant():
    """At least 12 layers and 4 frame groups, video at least 60% of every test prompt."""
    config = AutoConfig.from_pretrained(KNOWN_ANSWER_DIR)
    assert config.text_config.num_hidden_layers >= 12
    encoder = ChatEncoder(KNOWN_ANSWER_DIR, **video_arguments(KNOWN_ANSWER_DIR))
    for doc in generate_docs("test", 2):
        inputs = encoder.prompt(doc)
        video = int((inputs["input_ids"] == config.video_token_id).sum())
        assert video / inputs["input_ids"].shape[1] >= 0.6 and inputs["video_grid_thw"][0, 0] >= 4
