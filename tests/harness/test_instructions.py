"""A task's instruction, named on its messages (``video_messages(..., instructions=)``), reaches the
flow model's layout: drawn as template, so ``effective`` lets the last position read it in every
layer, where as question it was blocked outside ``question_last``."""

from bad_videos import write_video
from conftest import SMALL_VIDEO_ARGS
from lmms_eval.api.instance import Instance

from lmms_eval_flow.harness.flow_model import instructions_in
from lmms_eval_flow.model_wrappers.qwen2_5_vl_flow import Qwen2_5_VLFlow
from lmms_eval_flow.scoring.task_utils import video_messages

QUESTION, INSTRUCTION = "Which way does it move?\nA. left\nB. right", "\nAnswer with the option's letter."


def edges(model, video: str, instructions: tuple[str, ...]) -> int:
    doc = {"video": video}
    model.task_dict = {"flow_x": {"test": [doc]}}

    def messages(doc):
        return video_messages(doc["video"], QUESTION + INSTRUCTION, instructions=instructions)

    [result] = model.generate_until([Instance(
        request_type="generate_until", idx=0, arguments=(QUESTION, messages, {"max_new_tokens": 2}, 0, "flow_x", "test"),
        metadata={"task": "flow_x", "doc_id": 0, "repeats": 1})])
    assert result.text.failure is None
    return result.text.edges


def test_instructions_ride_on_the_text_and_are_read_back():
    named = video_messages("v.mp4", QUESTION + INSTRUCTION, instructions=(INSTRUCTION,))
    assert named[0]["content"][1] == {"type": "text", "text": QUESTION + INSTRUCTION, "instructions": [INSTRUCTION]}
    assert instructions_in(named) == {INSTRUCTION}
    assert instructions_in(video_messages("v.mp4", QUESTION)) == set() and "instructions" not in \
        video_messages("v.mp4", QUESTION)[0]["content"][1]


def test_a_named_instruction_is_template_in_the_flow_models_layout(tiny_model_dir, tmp_path):
    video = write_video("good", 0, tmp_path)
    unnamed = Qwen2_5_VLFlow.create_from_arg_string(f"pretrained={tiny_model_dir},regime=effective,{SMALL_VIDEO_ARGS}")
    as_question = edges(unnamed, video, ())
    assert unnamed.instructions == set()
    named = Qwen2_5_VLFlow.create_from_arg_string(f"pretrained={tiny_model_dir},regime=effective,{SMALL_VIDEO_ARGS}")
    as_template = edges(named, video, (INSTRUCTION,))
    assert named.instructions == {INSTRUCTION}
    # the last position reads the instruction's tokens in the layers outside question_last (1-20 of 28)
    assert as_template > as_question
    assert edges(named, video, ()) == as_template  # an instruction met once stays known to the model
