"""The measured cost a flow model's replies carry (``PrefillCost``), in process on the tiny
Qwen2.5-VL: the KV cache bytes are those of the cache a stock forward of the same prompt holds,
temporal exit's saving is the one its shorter cache measures, and the attention FLOPs follow
from the exact edge counts."""

import pickle
from fractions import Fraction

import pytest
import torch
from bad_videos import write_video
from lmms_eval.api.instance import Instance
from lmms_eval_flow.model_wrappers.qwen2_5_vl_flow import Qwen2_5_VLFlow
from transformers import AutoConfig, AutoTokenizer, Qwen2_5_VLForConditionalGeneration

from lmms_eval_flow.engine.families import apply_regime
from lmms_eval_flow.harness.reply import FlowReply, PrefillCost, attention_metrics
from lmms_eval_flow.scoring.task_utils import video_messages

SMALL = "device=cpu,device_map=cpu,max_pixels=3136,min_pixels=3136,max_num_frames=8"
PROMPT_INPUTS = ("input_ids", "attention_mask", "pixel_values_videos", "video_grid_thw", "second_per_grid_ts")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    return [write_video("good", doc_id, folder) for doc_id in range(2)]


def ask(model, clips: list[str], questions: list[str]) -> tuple[list[FlowReply], list[dict]]:
    """The model's replies to one question per clip, asked as lmms-eval asks a chat model, and the
    processor inputs of each batch it generated from (as lmms-eval's wrapper passed them)."""
    docs = [{"video": clip, "question": question} for clip, question in zip(clips, questions)]
    model.task_dict = {"flow_x": {"test": docs}}
    batches, generate = [], model.model.generate

    def noting_inputs(**kwargs):
        batches.append({key: kwargs[key] for key in PROMPT_INPUTS if kwargs.get(key) is not None})
        return generate(**kwargs)

    model.model.generate = noting_inputs
    try:
        results = model.generate_until([
            Instance(request_type="generate_until", idx=0,
                     arguments=(doc["question"], lambda doc: video_messages(doc["video"], doc["question"]),
                                {"max_new_tokens": 2}, i, "flow_x", "test"),
                     metadata={"task": "flow_x", "doc_id": i, "repeats": 1})
            for i, doc in enumerate(docs)])
    finally:
        del model.model.generate
    return [result.text for result in results], batches


def cache_bytes(cache) -> int:
    return sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))


@pytest.fixture(scope="module")
def runs(tiny_model_dir, clips):
    """regime -> (its reply to the first clip, the processor inputs it generated from, the model's dtype)."""
    found = {}
    for regime in ("full", "temporal_exit"):
        model = Qwen2_5_VLFlow.create_from_arg_string(f"pretrained={tiny_model_dir},regime={regime},{SMALL}")
        [reply], [prefill] = ask(model, clips[:1], ["Which way does it move?"])
        found[regime] = reply, prefill, model.model.dtype
    return found


@torch.no_grad()
def test_kv_cache_bytes_are_those_of_the_stock_models_cache(runs, tiny_model_dir):
    reply, prefill, dtype = runs["full"]
    stock = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model_dir, dtype=dtype).eval()
    measured = cache_bytes(stock(**prefill, use_cache=True).past_key_values)
    assert reply.failure is None and reply.cost.kv_cache_bytes == measured > 0


@torch.no_grad()
def test_temporal_exits_saving_is_the_one_its_cache_measures(runs, tiny_model_dir):
    (full, prefill, dtype), (exit_reply, exit_prefill, _) = runs["full"], runs["temporal_exit"]
    assert torch.equal(prefill["input_ids"], exit_prefill["input_ids"])
    stock = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model_dir, dtype=dtype).eval()
    full_cache = stock(**prefill, use_cache=True).past_key_values
    with apply_regime(stock, AutoTokenizer.from_pretrained(tiny_model_dir), "temporal_exit") as session:
        dropped = stock(**prefill, use_cache=True).past_key_values
        [plan] = session.take_records()
    ratio = Fraction(exit_reply.cost.kv_cache_bytes, full.cost.kv_cache_bytes)
    assert exit_reply.cost.kv_cache_bytes == cache_bytes(dropped)
    assert ratio == Fraction(cache_bytes(dropped), cache_bytes(full_cache))
    length, video, depth = plan.layout.length, plan.layout.size("video"), len(dropped.layers)
    kept_layers = plan.regime.video.exit_layer  # 0-based: the layers from it on keep no video
    assert ratio == Fraction(depth * length - (depth - kept_layers) * video, depth * length) < 1


def test_attention_flops_follow_from_the_edges_and_the_time_is_measured(runs, tiny_model_dir):
    text = AutoConfig.from_pretrained(tiny_model_dir).text_config
    for reply, _, _ in runs.values():
        assert reply.cost.attention_flops == 4 * reply.edges * (text.hidden_size // text.num_attention_heads) \
            * text.num_attention_heads
        assert reply.cost.prefill_seconds > 0
    assert runs["temporal_exit"][0].cost.attention_flops < runs["full"][0].cost.attention_flops


def test_a_batched_row_counts_its_own_positions_and_shares_the_batchs_time(tiny_model_dir, clips):
    """Two prompts of different lengths in one batch: the shorter is left-padded, and each row's
    KV bytes are those it holds when run alone; the batch's prefill time is split between them."""
    questions = ["Which way?", "In which direction does the red square move, and how fast does it go?"]
    batched = Qwen2_5_VLFlow.create_from_arg_string(f"pretrained={tiny_model_dir},regime=effective,{SMALL}",
                                                    {"batch_size": 2})
    alone = Qwen2_5_VLFlow.create_from_arg_string(f"pretrained={tiny_model_dir},regime=effective,{SMALL}")
    together, [prefill] = ask(batched, clips, questions)
    assert (~prefill["attention_mask"].bool()).sum() > 0  # a row is padded
    one_by_one = [ask(alone, [clip], [question])[0][0] for clip, question in zip(clips, questions)]
    assert [r.cost.kv_cache_bytes for r in together] == [r.cost.kv_cache_bytes for r in one_by_one]
    assert together[0].cost.prefill_seconds == together[1].cost.prefill_seconds > 0


def test_replies_carry_their_costs_to_the_scorer():
    cost = PrefillCost(prefill_seconds=0.25, kv_cache_bytes=4096, attention_flops=7680)
    reply = FlowReply(" B ", 30, 120, cost=cost)
    expected = {"attention_edges": 30, "attention_kept": 0.25, "prefill_seconds": 0.25, "kv_cache_bytes": 4096,
                "attention_flops": 7680}
    assert attention_metrics(reply.strip()) == attention_metrics(pickle.loads(pickle.dumps(reply))) == expected
    assert attention_metrics(FlowReply.failed("flow_x doc 3 (/v/3.mp4): no such file")) == dict.fromkeys(expected)
    assert attention_metrics(FlowReply("B", 30, 120)) == {"attention_edges": 30, "attention_kept": 0.25}  # unmeasured
