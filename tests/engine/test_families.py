"""Regimes on every family's tiny model (tests/family_cases.py): the layout each
family's prompt gets, ``full`` changing nothing, the masks applied being the ones counted, and
temporal exit really leaving video out of the KV cache."""

import pytest
import torch
from family_cases import CLIP, FAMILIES, QUESTION
from transformers import AutoConfig

from lmms_eval_flow.toy.clips import clip_path
from lmms_eval_flow.engine.families import apply_regime
from lmms_eval_flow.engine.layout import causal_edges
from lmms_eval_flow.engine.regimes import build_regime

REGIME_CASES = [("full", {}), ("effective", {}), ("random", {}), ("staged", {}), ("temporal_exit", {}),
                ("temporal_exit", {"exit_by": "mask"})]


class Case:
    """One family's tiny model, processor and the inputs of one question about ``CLIP``."""

    def __init__(self, family, model_dir):
        self.family = family
        self.depth = family.depth
        self.processor = family.processor(model_dir)
        self.tokenizer = self.processor.tokenizer
        self.model = family.model_class.from_pretrained(model_dir, dtype=torch.float32).eval()
        self.inputs = family.inputs(self.processor, str(clip_path(CLIP)), [QUESTION])
        with torch.no_grad():
            self.full_logits = self.model(**self.inputs).logits

    def session(self, regime, backend="auto"):
        return apply_regime(self.model, self.tokenizer, regime, backend)

    def forward(self, regime, backend="auto"):
        """Logits and the sample's plan under ``regime``."""
        with self.session(regime, backend) as session:
            logits = self.model(**self.inputs).logits
        [plan] = session.take_records()
        return logits, plan

    def text(self, positions) -> str:
        return self.tokenizer.decode(self.inputs["input_ids"][0, positions])


@pytest.fixture(scope="module", params=FAMILIES, ids=[family.name for family in FAMILIES])
def case(request, family_model_dir):
    return Case(request.param, family_model_dir(request.param.name))


TOKENIZERS = {"llava_next_video": "LlamaTokenizer"}  # the others are Qwen2Tokenizer, as their checkpoints'


def test_tiny_checkpoint_has_the_real_classes_and_depth(case, family_model_dir):
    config = AutoConfig.from_pretrained(family_model_dir(case.family.name))
    assert type(case.model) is case.family.model_class and type(config) is type(case.model.config)
    assert config.text_config.num_hidden_layers == len(case.model.model.language_model.layers) == case.depth
    assert type(case.tokenizer).__name__ == TOKENIZERS.get(case.family.name, "Qwen2Tokenizer")
    assert sum(p.numel() for p in case.model.parameters()) < 3_000_000


@torch.no_grad()
def test_layout_splits_the_video_into_the_frames_the_model_sees(case):
    _, plan = case.forward(build_regime("full", case.depth))
    layout, ids = plan.layout, case.inputs["input_ids"][0]
    video_id = getattr(case.model.config, "video_token_id", None) or case.model.config.video_token_index
    frames = [s for s in layout.segments if s.group == "video"]
    assert layout.num_frames == len(frames) == case.family.frames and layout.length == len(ids)
    texts = [case.text(slice(s.start, s.stop)) for s in frames]
    name = case.family.name
    if name == "qwen2_5_vl":  # one temporal patch (two sampled frames) of 2x2 merged tokens, between vision start and end
        assert [s.size for s in frames] == [4] * 4 and bool((ids[layout.positions("video")] == video_id).all())
        assert case.text(slice(layout.video_start - 1, layout.video_start)) == "<|vision_start|>"
        assert case.text(layout.positions("template")[:1]) == "<|vision_end|>"
    if name in ("llava_onevision", "llava_next_video"):  # one sampled frame: a fixed count of pooled tokens
        assert all(s.size == frames[0].size for s in frames) and bool((ids[layout.positions("video")] == video_id).all())
    if name == "llava_onevision":  # the newline embedding after the frames is template
        assert ids[layout.positions("template")[0]] == video_id
    if name == "videollama3":  # header and pruned visual tokens: frames differ in size
        assert texts[0].startswith("Time 0.0s:") and all(t.startswith(",Time ") for t in texts[1:])
        assert len({s.size for s in frames}) > 1
    if name == "qwen3_vl":  # a timestamp and its own vision start/end per temporal patch
        assert all(t.startswith("<") and "seconds><|vision_start|>" in t and t.endswith("<|vision_end|>") for t in texts)
        assert case.text(slice(layout.video_start - 1, layout.video_start)) == "<|vision_start|>"
    outside = int((ids == video_id).sum()) - int((ids[layout.positions("video")] == video_id).sum())
    assert outside == (name == "llava_onevision")  # only the newline embedding
    assert case.text(layout.positions("question")).strip() == QUESTION
    assert case.text(layout.positions("options")).split() == "A. left B. right C. up D. down".split()


INSTRUCTION = "Only give the best option."


@torch.no_grad()
def test_the_tasks_instruction_is_template_on_every_family(case):
    """Given the instruction's text, the user text's closing instruction is template (analysis may
    name it ``instruction``) and the question is the question and its options only; unnamed, it
    stays question, as every other text of the user turn."""
    inputs = case.family.inputs(case.processor, str(clip_path(CLIP)), [f"{QUESTION}\n{INSTRUCTION}"])
    regime = build_regime("effective", case.depth)
    layouts = {}
    for given in ((), {INSTRUCTION}):
        with apply_regime(case.model, case.tokenizer, regime, instructions=given) as session:
            case.model(**inputs)
        [plan] = session.take_records()
        layouts[bool(given)] = plan.layout
    named, unnamed = layouts[True], layouts[False]
    text = lambda layout, group: case.tokenizer.decode(inputs["input_ids"][0, layout.positions(group)])  # noqa: E731
    assert text(named, "question").strip() == QUESTION and text(named, "instruction").strip() == INSTRUCTION
    assert set(named.positions("instruction").tolist()) <= set(named.positions("template").tolist())
    assert text(unnamed, "question").strip() == f"{QUESTION}\n{INSTRUCTION}" and unnamed.size("instruction") == 0
    between = set(unnamed.positions("question").tolist()) - set(named.positions("question").tolist()) \
        - set(named.positions("instruction").tolist())  # the blank between question and instruction: template
    assert between and case.tokenizer.decode(inputs["input_ids"][0, sorted(between)]).strip() == ""
    assert text(named, "options").split() == text(unnamed, "options").split() == "A. left B. right C. up D. down".split()
    assert named.size("video") == unnamed.size("video") and named.length == unnamed.length


@torch.no_grad()
def test_full_is_bit_identical_and_passes_no_mask(case, applied_masks):
    logits, plan = case.forward(build_regime("full", case.depth))
    assert torch.equal(logits, case.full_logits)
    assert len(applied_masks) == case.depth and all(call.mask is None for call in applied_masks)
    assert plan.edges == plan.full_edges == case.depth * causal_edges(case.inputs["input_ids"].shape[1])
    with case.session(build_regime("full", case.depth)):
        regime_tokens = case.model.generate(**case.inputs, max_new_tokens=4, do_sample=False)
    assert torch.equal(regime_tokens, case.model.generate(**case.inputs, max_new_tokens=4, do_sample=False))


@pytest.mark.parametrize("name, params", REGIME_CASES)
@torch.no_grad()
def test_applied_masks_count_what_the_plan_counts(case, applied_masks, name, params):
    logits, plan = case.forward(build_regime(name, case.depth, **params), backend="dense")
    assert [call.allowed_pairs for call in applied_masks] == plan.edges_per_layer
    assert [call.layer for call in applied_masks] == list(range(case.depth))
    assert torch.isfinite(logits).all()
    if name != "full":  # the answer moves, what precedes the video does not
        assert plan.edges < plan.full_edges
        assert not torch.allclose(logits[0, -1], case.full_logits[0, -1], atol=1e-4)
        start = plan.layout.video_start
        torch.testing.assert_close(logits[0, :start], case.full_logits[0, :start], rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["effective", "staged"])
@torch.no_grad()
def test_group_decomposed_attention_equals_the_dense_mask(case, applied_masks, decomposed_layers, name):
    regime = build_regime(name, case.depth)
    dense, _ = case.forward(regime, backend="dense")
    masked_layers = [call.layer for call in applied_masks if call.mask is not None]
    assert masked_layers and not decomposed_layers
    blocks, _ = case.forward(regime, backend="blocks")
    assert decomposed_layers == masked_layers  # every layer the dense run masked ran decomposed
    torch.testing.assert_close(blocks, dense, rtol=0, atol=2e-5)


def cache_bytes(cache) -> int:
    return sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))


@torch.no_grad()
def test_temporal_exit_drops_video_from_the_cache_with_the_masked_answers(case):
    depth, exit_layer = case.depth, 20
    with case.session(build_regime("temporal_exit", depth, exit_layer=exit_layer)) as session:
        dropped = case.model(**case.inputs, use_cache=True)
        dropped_tokens = case.model.generate(**case.inputs, max_new_tokens=6, do_sample=False)
        [plan, _] = session.take_records()
    with case.session(build_regime("temporal_exit", depth, exit_layer=exit_layer, exit_by="mask")):
        masked = case.model(**case.inputs, use_cache=True)
        masked_tokens = case.model.generate(**case.inputs, max_new_tokens=6, do_sample=False)
    length, video = plan.layout.length, plan.layout.size("video")
    late = depth - exit_layer + 1  # layers exit_layer..depth keep no video
    cached = [layer.keys.shape[2] for layer in dropped.past_key_values.layers]
    assert cached == [length] * (depth - late) + [length - video] * late
    expected = (depth * length - late * video) / (depth * length)
    assert cache_bytes(dropped.past_key_values) / cache_bytes(masked.past_key_values) == pytest.approx(expected, abs=1e-12)
    kept = torch.ones(length, dtype=torch.bool)
    kept[plan.layout.positions("video")] = False
    torch.testing.assert_close(dropped.logits[0], masked.logits[0, kept], rtol=0, atol=1e-5)
    assert torch.equal(dropped_tokens, masked_tokens)


@pytest.fixture(scope="module")
def qwen3_vl(family_model_dir):
    [family] = [f for f in FAMILIES if f.name == "qwen3_vl"]
    return Case(family, family_model_dir("qwen3_vl"))


def test_qwen3_vl_refuses_to_drop_video_where_deepstack_still_adds_to_it(qwen3_vl):
    assert len(qwen3_vl.model.config.vision_config.deepstack_visual_indexes) == 3  # as Qwen3-VL-8B
    with pytest.raises(ValueError, match=r"exit_layer=3 is too early for Qwen3-VL with exit_by=drop: its layers 1-3 "
                                         r"add vision features .* give exit_layer>=4, or exit_by=mask"):
        qwen3_vl.session(build_regime("temporal_exit", 36, exit_layer=3))


@torch.no_grad()
def test_qwen3_vl_drops_video_right_after_deepstack_with_the_masked_answer(qwen3_vl):
    dropped, plan = qwen3_vl.forward(build_regime("temporal_exit", 36, exit_layer=4))
    masked, _ = qwen3_vl.forward(build_regime("temporal_exit", 36, exit_layer=4, exit_by="mask"))
    kept = torch.ones(plan.layout.length, dtype=torch.bool)
    kept[plan.layout.positions("video")] = False
    torch.testing.assert_close(dropped[0], masked[0, kept], rtol=0, atol=1e-5)
