"""Answer primers ("Best option:("): a flow model of every family starts the assistant's turn with
the primer its task names, its layout draws the primer as template with the last position on it,
and lmms-eval's own protocol (what its wrappers render) still leaves it out. A benchmark's system
text is the prompt's one system turn, drawn as prefix."""

from __future__ import annotations

import pytest
import torch
from family_cases import CLIP, FAMILIES, QUESTION
from wrapper_calls import flow_class, generate_inputs
from lmms_eval.protocol import ChatMessages
from transformers import AutoProcessor

from lmms_eval_flow.engine.families import apply_regime
from lmms_eval_flow.engine.regimes import build_regime
from lmms_eval_flow.harness.primer import ContinuingProcessor, primer_in, with_primer
from lmms_eval_flow.scoring.task_utils import video_messages
from lmms_eval_flow.toy.clips import clip_path

PRIMER = "Best option:("
SYSTEM = "Carefully watch the video and answer."
INSTRUCTION = "\nOnly give the best option."


@pytest.fixture(scope="module")
def primed(family_model_dir) -> dict:
    """family -> (the tokenizer, the prompt's input ids with the primer, without it, the layout of the primed one)."""
    video = str(clip_path(CLIP))
    found = {}
    for family in FAMILIES:
        model = flow_class(family.name).create_from_arg_string(
            f"pretrained={family_model_dir(family.name)},regime=full,{family.model_args}")
        with_it = generate_inputs(model, video_messages(video, QUESTION + INSTRUCTION, instructions=(INSTRUCTION,),
                                                        primer=PRIMER))
        without = generate_inputs(model, video_messages(video, QUESTION + INSTRUCTION, instructions=(INSTRUCTION,)))
        system = generate_inputs(model, video_messages(video, QUESTION + INSTRUCTION, instructions=(INSTRUCTION,),
                                                       system=SYSTEM))
        layouts = []
        for inputs in (with_it, system):
            with torch.no_grad(), apply_regime(model.model, model.tokenizer, build_regime("effective", family.depth),
                                               instructions={INSTRUCTION, PRIMER}) as session:
                model.model(**{key: value for key, value in inputs.items() if isinstance(value, torch.Tensor)})
            [plan] = session.take_records()
            layouts.append(plan.layout)
        found[family.name] = (model.tokenizer, with_it["input_ids"][0], without["input_ids"][0], layouts[0],
                              system["input_ids"][0], layouts[1])
    return found


@pytest.mark.parametrize("family", [family.name for family in FAMILIES])
def test_the_prompt_is_the_unprimed_one_with_the_assistant_turn_started_by_the_primer(primed, family):
    """Up to the user turn's end the prompts are the same; then the chat template's own start of an
    assistant turn (LLaVA-OneVision writes it "assistant " where its generation prompt has
    "assistant\\n") and the primer, which ends the prompt."""
    tokenizer, with_it, without, *_ = primed[family]
    same = next((i for i, (a, b) in enumerate(zip(with_it.tolist(), without.tolist())) if a != b), len(without))
    assert INSTRUCTION.strip() in tokenizer.decode(without[:same])
    tail = tokenizer.decode(with_it[same:])
    assert tail.endswith(PRIMER) and INSTRUCTION.strip() not in tail
    assert len(with_it) - same <= len(tokenizer(PRIMER, add_special_tokens=False).input_ids) + 2


@pytest.mark.parametrize("family", [family.name for family in FAMILIES])
def test_the_primer_is_template_and_the_last_position_is_its_end(primed, family):
    tokenizer, with_it, without, layout, *_ = primed[family]
    primer = set(range(len(without), len(with_it)))
    last = layout.positions("last").tolist()
    assert last == [len(with_it) - 1]
    assert primer - set(last) <= set(layout.positions("template").tolist())
    assert tokenizer.decode(with_it[layout.positions("question")]).strip() == QUESTION


@pytest.mark.parametrize("family", [family.name for family in FAMILIES])
def test_a_system_text_is_the_one_system_turn_and_prefix(primed, family):
    """Qwen3-VL's wrapper adds its own system turn ("You are a helpful assistant."): the task's replaces it."""
    tokenizer, *_, with_system, layout = primed[family]
    text = tokenizer.decode(with_system)
    assert text.count(SYSTEM) == 1 and "You are a helpful assistant." not in text
    prefix = tokenizer.decode(with_system[layout.positions("prefix")])
    assert SYSTEM in prefix and QUESTION not in prefix
    assert tokenizer.decode(with_system[layout.positions("question")]).strip() == QUESTION


def test_the_primer_rides_on_the_text_and_lmms_evals_protocol_leaves_it_out():
    messages = video_messages("v.mp4", "Q?", primer=PRIMER)
    assert primer_in(messages) == PRIMER and primer_in(video_messages("v.mp4", "Q?")) == ""
    assert with_primer(video_messages("v.mp4", "Q?")) == video_messages("v.mp4", "Q?")
    assert with_primer(messages)[-1] == {"role": "assistant", "content": [{"type": "text", "text": PRIMER}]}
    rendered = ChatMessages(messages=messages).to_hf_messages()
    assert [m["role"] for m in rendered] == ["user"] and PRIMER not in str(rendered)
    two = [*messages, {"role": "user", "content": [{"type": "text", "text": "more", "primer": "Answer:"}]}]
    with pytest.raises(ValueError, match="more than one answer primer"):
        primer_in(two)


def test_a_batch_continues_the_conversations_that_end_in_an_answer_and_opens_a_turn_for_the_others(tiny_model_dir):
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    user = [{"role": "user", "content": [{"type": "text", "text": "Which one?"}]}]
    answer = [*user, {"role": "assistant", "content": [{"type": "text", "text": PRIMER}]}]
    opened = processor.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    batch = ContinuingProcessor(processor).apply_chat_template([answer, user], tokenize=False, add_generation_prompt=True)
    assert batch == [opened + PRIMER, opened]
    closed = processor.apply_chat_template(answer, tokenize=False, add_generation_prompt=True)
    assert closed != opened + PRIMER  # what lmms-eval's own rendering makes of a final assistant turn
