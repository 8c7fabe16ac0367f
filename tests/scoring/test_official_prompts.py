"""Each benchmark task's default prompt and token budget are its official evaluation's, and the
papers' prompt style is a named variant (issue 15, "Prompts and generation budgets").

Every expected prompt below is written out by hand from the official source named beside it, on a
fixture doc, trailing spaces included; the test compares it with what the task's YAML hooks build.
Each prompt also comes in its parts (``video_task.Prompt``): the question with its options, and the
template around it (the instruction after it, the benchmark's preamble before it, the answer primer),
which the token layout is to tell apart.
"""

from __future__ import annotations

import inspect

import pytest
from conftest import TASKS_DIR
from lmms_eval.protocol import ChatMessages
from lmms_eval.utils import load_yaml_config
from task_fixtures import fixture_docs

from lmms_eval_flow.scoring.answers import parse_choice
from lmms_eval_flow.scoring.task_utils import DATA_DIR_VARIABLE
from lmms_eval_flow.scoring.video_task import Prompt

# TVBench's infer.ipynb (daniel-cores/tvbench): the system text of its conversation, which it also puts before the
# question (system_llm=True); Map the Flow's SYSTEM_MVBENCH (tasks/eval/eval_utils.py) is the same text.
VIDEOCHAT2_SYSTEM = ("Carefully watch the video and pay attention to the cause and sequence of events, the detail and "
                     "movement of objects, and the action and pose of persons. Based on your observations, select the "
                     "best option that accurately addresses the question.\n")
MVBENCH_STYLE_TASKS = {  # variant -> (default task, YAML folder)
    "flow_tvbench_mvbench_style_action_antonym": ("flow_tvbench_action_antonym", "flow_tvbench"),
    "flow_tomato_mvbench_style": ("flow_tomato", "flow_tomato"),
    "flow_nextqa_mc_mvbench_style": ("flow_nextqa_mc", "flow_nextqa"),
    "flow_longvideobench_val_mvbench_style": ("flow_longvideobench_val", "flow_longvideobench"),
}
TVBENCH = ("action_antonym", "action_count", "action_localization", "action_sequence", "egocentric_sequence",
           "moving_direction", "object_count", "object_shuffle", "scene_transition", "unexpected_action")


def task(folder: str, name: str) -> dict:
    return load_yaml_config(str(TASKS_DIR / folder / f"{name}.yaml"))


def first_doc(benchmark: str, config: str | None = None) -> dict:
    return {**fixture_docs(benchmark, config)[0], "flow_config": config or "default"}


def prompt_of(config: dict, doc: dict) -> Prompt:
    """The doc's prompt as lmms-eval asks for it (the YAML's default kwargs), checked to be the text
    lmms-eval is given."""
    kwargs = config["lmms_eval_specific_kwargs"]["default"]
    parts = config["doc_to_text"].__self__.doc_to_prompt(doc, kwargs)
    assert config["doc_to_text"](doc, kwargs) == parts.text == parts.preamble + parts.question + parts.instruction
    return parts


def same_settings(config: dict, leave_out: set) -> dict:
    """A task config less ``leave_out``, its hooks named by their utils.py file and method (each YAML load
    imports utils.py afresh, so the same hook of two loads is another bound method)."""
    def named(value):
        return (inspect.getfile(value), value.__qualname__) if callable(value) else value
    return {key: named(value) for key, value in config.items() if key not in leave_out}


def budget(config: dict) -> int:
    return config["generation_kwargs"]["max_new_tokens"]


def test_tomato_is_its_official_construct_prompt_with_its_1024_tokens():
    # yale-nlp/TOMATO src/generate_lib/construct_prompt.py, construct_prompt(question, options, num_frames=16)
    # (16: evaluate.py's default --total_frames); MAX_TOKENS = 1024 in src/generate_lib/constant.py.
    config = task("flow_tomato", "flow_tomato")
    parts = prompt_of(config, first_doc("tomato"))
    assert parts.text == (
        "You will be provided with 16 separate frames uniformly sampled from a video, the frames are provided in "
        "chronological order of the video. Analyze these frames and provide the answer to the question about the video "
        "content. Answer the multiple-choice question about the video content. \n"
        "\n"
        "You must use these frames to answer the multiple-choice question; do not rely on any externel knowledge or "
        "commonsense. \n"
        "\n"
        "<question> \n"
        "How many times does the person clap? \n"
        "</question>\n"
        "\n"
        "<options> \n"
        "{'A': '1', 'B': '2', 'C': '3', 'D': '4', 'E': '5'} \n"
        "</options>\n"
        "\n"
        "Even if the information in these separate frames is not enough to answer the question, PLEASE TRY YOUR BEST TO "
        "GUESS AN ANSWER WHICH YOU THINK WOULD BE THE MOST POSSIBLE ONE BASED ON THE QUESTION. \n"
        "\n"
        "DO NOT GENERATE ANSWER SUCH AS 'NOT POSSIBLE TO DETERMINE.' \n"
    )
    assert parts.question == "How many times does the person clap? \n</question>\n\n<options> \n{'A': '1', 'B': '2', 'C': '3', 'D': '4', 'E': '5'}"
    assert parts.preamble.endswith("<question> \n") and parts.instruction.startswith(" \n</options>\n\nEven if")
    assert parts.primer == "" and budget(config) == 1024
    # The options are the dict as Python prints it: an option with an apostrophe is double-quoted.
    seven = {**first_doc("tomato"), "options": ["It's red.", "Blue.", "3", "4", "5", "6", "7"], "answer": 6}
    assert "{'A': \"It's red.\", 'B': 'Blue.', 'C': '3', 'D': '4', 'E': '5', 'F': '6', 'G': '7'} \n</options>" in prompt_of(config, seven).text


@pytest.mark.parametrize("name", TVBENCH)
def test_tvbench_is_its_official_mvbench_format_prompt_with_100_tokens_and_its_primer(name):
    # daniel-cores/tvbench: vqa_dataset.py qa_template ("Question: ...\nOptions:\n(A) ..." stripped at the
    # end), infer.ipynb: prompt = system + question + "\nOnly give the best option.", answer_prompt
    # "Best option:(", max_new_tokens=100.
    config = task("flow_tvbench", f"flow_tvbench_{name}")
    doc = first_doc("tvbench", name)
    parts = prompt_of(config, doc)
    options = "\n".join(f"({'ABCDE'[i]}) {text}" for i, text in enumerate(doc["candidates"]))
    assert parts == Prompt(VIDEOCHAT2_SYSTEM, f"Question: {doc['question']}\nOptions:\n{options}", "\nOnly give the best option.",
                           "Best option:(", system=VIDEOCHAT2_SYSTEM)  # get_prompt2 starts with the system text
    assert budget(config) == 100


def test_tvbench_action_antonym_written_out():
    parts = prompt_of(task("flow_tvbench", "flow_tvbench_action_antonym"), first_doc("tvbench", "action_antonym"))
    assert parts.text == (VIDEOCHAT2_SYSTEM + "Question: What is the action performed by the person in the video?\n"
                          "Options:\n(A) sitting down\n(B) standing up\n(C) not sure\nOnly give the best option.")


@pytest.mark.parametrize("fmt, name, expected", [
    ("multi-choice", "multi_choice", ("What is the man doing in the video?\nA. dribbling a basketball\nB. dunking a basketball\n"
                                      "C. passing a basketball\nPlease directly give the best option:")),
    ("yes_no", "yes_no", "Is the man dunking a basketball?\nPlease answer yes or no:"),
    ("caption_matching", "caption_matching", ("Which caption matches the video better?\nCaption A: The man is dribbling a basketball.\n"
                                              "Caption B: A man is dunking a basketball.\nPlease directly give the best option:")),
    ("captioning", "captioning", ("You will be presented with a video and several pieces of information. One piece of information "
                                 "is consistent with the video while the others are not. Please identify the information that "
                                 "consistent with the video and generate a video caption accordingly.\n"
                                 "Information A: {'subject': 'man', 'action': 'dribbling a basketball'}\n"
                                 "Information B: {'subject': 'man', 'action': 'passing a basketball'}\n"
                                 "Information C: {'subject': 'man', 'action': 'dunking a basketball'}\nGenerated Caption:")),
])
def test_tempcompass_formats_are_its_answer_prompts_with_128_tokens(fmt, name, expected):
    # llyx97/TempCompass run_video_llava/inference_dataset.py, run_qwen2_vl.py, run_gpt_4o.py: inp =
    # question + answer_prompt[task_type] (captioning: "", its question ends "Generated Caption:"),
    # max_new_tokens=128 (GPT-4o: max_tokens = 128) for every format.
    config = task("flow_tempcompass", f"flow_tempcompass_{name}")
    doc = first_doc("tempcompass", fmt)
    parts = prompt_of(config, doc)
    assert parts.text == expected
    assert parts.question == doc["question"] and parts.preamble == "" and parts.primer == ""
    assert budget(config) == 128


def test_tempcompass_captioning_as_a_choice_is_a_variant_scored_the_same_way():
    default, choice = task("flow_tempcompass", "flow_tempcompass_captioning"), task("flow_tempcompass", "flow_tempcompass_captioning_as_choice")
    doc = first_doc("tempcompass", "captioning")
    parts = prompt_of(choice, doc)
    assert parts.text == ("Which of these descriptions is consistent with the video?\nA. subject: man; action: dribbling a basketball\n"
                          "B. subject: man; action: passing a basketball\nC. subject: man; action: dunking a basketball\n"
                          "Answer with the option's letter from the given choices directly.")
    assert parts.instruction == "\nAnswer with the option's letter from the given choices directly."
    assert budget(choice) == 128 and choice["dataset_name"] == "captioning"
    for reply, right in [("C", 1.0), ("A man is dunking a basketball.", 1.0), ("A", 0.0)]:
        assert choice["process_results"](doc, [reply])["accuracy"] == default["process_results"](doc, [reply])["accuracy"] == right


def test_nextqa_keeps_the_lettered_prompt_its_official_code_has_none_for():
    # doc-doc/NExT-QA scores option classifiers (eval_mc.py) and has no prompt: lmms-eval's nextqa_mc_test
    # layout (question, "A. ..." lines) with the lettered-choice instruction, 32 tokens.
    config = task("flow_nextqa", "flow_nextqa_mc")
    parts = prompt_of(config, first_doc("nextqa", "MC"))
    assert parts.text == ("why did the boy pick up one present from the pile\nA. to give to the girl\nB. to open it\n"
                          "C. to put it away\nD. to throw it\nE. to look at the card\n"
                          "Answer with the option's letter from the given choices directly.")
    assert budget(config) == 32


def test_activitynetqa_keeps_lmms_evals_prompt_its_official_code_has_none():
    # MILVLG/activitynet-qa evaluation/eval.py only scores; lmms-eval's activitynetqa: the question
    # capitalised with "?", " Answer the question using a single word or phrase.", max_new_tokens 64.
    config = task("flow_activitynetqa", "flow_activitynetqa")
    parts = prompt_of(config, first_doc("activitynetqa"))
    assert parts == Prompt("", "What is the person in the video doing?", " Answer the question using a single word or phrase.")
    assert budget(config) == 64


def test_longvideobench_is_its_official_dataloaders_prompt():
    # longvideobench/LongVideoBench longvideobench/longvideobench_dataset.py __getitem__: "Question: " +
    # question, ". ".join([letter, candidate]) per candidate, "Answer with the option's letter from the
    # given choices directly." (its text items joined by new lines); lmms-eval's 32 tokens.
    config = task("flow_longvideobench", "flow_longvideobench_val")
    parts = prompt_of(config, first_doc("longvideobench"))
    assert parts.text == ("Question: In the video, what colour is the umbrella the woman holds?\nA. Red\nB. Blue\nC. Green\n"
                          "D. Yellow\nAnswer with the option's letter from the given choices directly.")
    assert parts.question == "Question: In the video, what colour is the umbrella the woman holds?\nA. Red\nB. Blue\nC. Green\nD. Yellow"
    assert budget(config) == 32


@pytest.mark.parametrize("variant", MVBENCH_STYLE_TASKS)
def test_the_mvbench_style_variant_is_map_the_flows_prompt(variant):
    # byminji/map-the-flow: qa_template (tasks/eval/mvbench/__init__.py, tomato/, longvideobench/),
    # post_query_prompt "\nOnly give the best option." and answer_prompt "Best option:(" (analysis/*.py,
    # tasks/eval/mvbench/pllava_eval_mvbench.py), Conversation.user_query (tasks/eval/eval_utils.py):
    # f"{query} {post_query_prompt}"; infer_mvbench's max_new_tokens=100.
    default_name, folder = MVBENCH_STYLE_TASKS[variant]
    config = task(folder, variant)
    benchmark, config_name = {"flow_tvbench": ("tvbench", "action_antonym"), "flow_tomato": ("tomato", None),
                              "flow_nextqa": ("nextqa", "MC"), "flow_longvideobench": ("longvideobench", None)}[folder]
    doc = first_doc(benchmark, config_name)
    parts = prompt_of(config, doc)
    expected = {
        "flow_tvbench": "Question: What is the action performed by the person in the video?\nOptions:\n(A) sitting down\n"
                        "(B) standing up\n(C) not sure",
        "flow_tomato": "Question: How many times does the person clap?\nOptions:\n(A) 1\n(B) 2\n(C) 3\n(D) 4\n(E) 5",
        "flow_nextqa": "Question: why did the boy pick up one present from the pile\nOptions:\n(A) to give to the girl\n"
                       "(B) to open it\n(C) to put it away\n(D) to throw it\n(E) to look at the card",
        "flow_longvideobench": "Question: In the video, what colour is the umbrella the woman holds?\nOptions:\n(A) Red\n(B) Blue\n"
                               "(C) Green\n(D) Yellow",
    }[folder]
    assert parts == Prompt("", expected, " \nOnly give the best option.", "Best option:(", system=VIDEOCHAT2_SYSTEM)  # SYSTEM_MVBENCH
    assert parts.text == expected + " \nOnly give the best option."
    assert budget(config) == 100
    # Everything but the prompt and its budget is the default task's: same data, hooks and metrics.
    default = task(folder, default_name)
    differs = {"task", "lmms_eval_specific_kwargs", "generation_kwargs"}
    assert same_settings(config, differs) == same_settings(default, differs)
    assert config["generation_kwargs"] == {**default["generation_kwargs"], "max_new_tokens": 100}


def test_the_variants_are_tasks_and_a_group_lmms_eval_lists():
    from lmms_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(TASKS_DIR))
    assert {*MVBENCH_STYLE_TASKS, "flow_tvbench_mvbench_style", "flow_tempcompass_captioning_as_choice",
            *(f"flow_tvbench_mvbench_style_{name}" for name in TVBENCH)} <= set(manager.all_tasks)
    group = task("flow_tvbench", "flow_tvbench_mvbench_style")
    assert group["task"] == [f"flow_tvbench_mvbench_style_{name}" for name in TVBENCH]
    assert group["aggregate_metric_list"] == task("flow_tvbench", "flow_tvbench")["aggregate_metric_list"]
    assert "flow_tempcompass_captioning_as_choice" not in task("flow_tempcompass", "flow_tempcompass")["task"]


def test_a_model_specific_entry_keeps_the_official_layout_of_the_question():
    """lmms-eval uses a model's own kwargs entry alone, without the default's: the question's layout is
    the task's declaration, so an entry that only changes the instruction keeps the official layout."""
    config = task("flow_tvbench", "flow_tvbench_action_antonym")
    doc = first_doc("tvbench", "action_antonym")
    parts = config["doc_to_text"].__self__.doc_to_prompt(doc, {"post_prompt": "\nAnswer with the option letter only."})
    assert parts == Prompt("", "Question: What is the action performed by the person in the video?\nOptions:\n(A) sitting down\n"
                               "(B) standing up\n(C) not sure", "\nAnswer with the option letter only.")


def test_the_primer_rides_on_the_users_text_because_lmms_evals_chat_wrappers_would_close_an_assistant_turn(
        monkeypatch, tmp_path):
    """lmms-eval 0.7.3's chat wrappers render doc_to_messages with add_generation_prompt=True, which
    closes a final assistant message and opens a new turn: a primer there would not start the answer.
    So the user turn goes alone, the primer named on its text (for flow models, which continue it:
    tests/harness/test_primer.py), where lmms-eval's protocol leaves it out."""
    from lmms_eval.models.chat.qwen2_5_vl import Qwen2_5_VL
    from transformers import AutoProcessor

    from lmms_eval_flow.toy import train

    assert "add_generation_prompt=True" in inspect.getsource(Qwen2_5_VL.generate_until)
    processor = AutoProcessor.from_pretrained(train.__file__.rsplit("/", 1)[0] + "/qwen2_5_vl_temporal_toy")
    primed = [{"role": "user", "content": [{"type": "text", "text": "Q"}]},
              {"role": "assistant", "content": [{"type": "text", "text": "Best option:("}]}]
    rendered = processor.apply_chat_template(primed, tokenize=False, add_generation_prompt=True)
    assert rendered.endswith("<|im_start|>assistant\nBest option:(<|im_end|>\n<|im_start|>assistant\n")
    config = task("flow_tvbench", "flow_tvbench_mvbench_style_action_antonym")
    doc = first_doc("tvbench", "action_antonym")
    kwargs = config["lmms_eval_specific_kwargs"]["default"]
    video = tmp_path / "tvbench" / "video" / "action_antonym" / doc["video"]  # never decoded here
    video.parent.mkdir(parents=True)
    video.write_bytes(b"")
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(tmp_path))
    *_, turn = config["doc_to_messages"](doc, kwargs)  # after the system turn
    assert turn["role"] == "user" and turn["content"][-1]["text"] == config["doc_to_text"](doc, kwargs)
    assert turn["content"][-1]["primer"] == config["doc_to_text"].__self__.doc_to_prompt(doc, kwargs).primer == "Best option:("
    [rendered] = ChatMessages(messages=[turn]).to_hf_messages()
    assert "Best option" not in str(rendered)


def test_a_benchmarks_system_text_is_a_system_turn_before_the_video(monkeypatch, tmp_path):
    config = task("flow_tvbench", "flow_tvbench_mvbench_style_action_antonym")
    doc = first_doc("tvbench", "action_antonym")
    video = tmp_path / "tvbench" / "video" / "action_antonym" / doc["video"]  # never decoded here
    video.parent.mkdir(parents=True)
    video.write_bytes(b"")
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(tmp_path))
    system, user = config["doc_to_messages"](doc, config["lmms_eval_specific_kwargs"]["default"])
    assert system == {"role": "system", "content": [{"type": "text", "text": VIDEOCHAT2_SYSTEM}]}
    assert user["role"] == "user" and user["content"][0]["type"] == "video"
    assert [m["role"] for m in ChatMessages(messages=[system, user]).to_hf_messages()] == ["system", "user"]


@pytest.mark.parametrize("reply", ["B) standing up", "B)", "B", "(B) standing up", "B) standing up\nThe person rises from the chair.",
                                   "B) standing up. A is wrong."])
def test_replies_that_follow_the_primer_are_read(reply):
    """A reply continuing "Best option:(" reads "B) ..."; Map the Flow's and TVBench's scripts prepend the
    "(" (return_prompt); either way it is option B, and the task scores it right."""
    config = task("flow_tvbench", "flow_tvbench_mvbench_style_action_antonym")
    doc = first_doc("tvbench", "action_antonym")  # answer: standing up, option B
    options = {"A": "sitting down", "B": "standing up", "C": "not sure"}
    assert parse_choice(reply, options) == parse_choice("(" + reply, options) == "B"
    assert config["process_results"](doc, [reply])["accuracy"] == 1.0
    assert config["process_results"](doc, ["A) sitting down"])["accuracy"] == 0.0


def test_an_invalid_docs_prompt_is_its_problem_all_template():
    config = task("flow_tomato", "flow_tomato")
    doc = {**first_doc("tomato"), "flow_problem": "tomato default/test doc 0: field 'answer' = -1 is not an option index"}
    parts = prompt_of(config, doc)
    assert parts == Prompt("", "", "(invalid doc: tomato default/test doc 0: field 'answer' = -1 is not an option index)")


def test_every_file_a_variant_includes_is_packaged():
    """An included YAML ships only if setup.cfg's package data names it (the TVBench variants' template)."""
    import configparser
    from fnmatch import fnmatch

    setup = configparser.ConfigParser()
    setup.read(TASKS_DIR.parent / "setup.cfg")
    patterns = [pattern.strip().removeprefix("**/") for pattern in setup["options.package_data"]["lmms_eval_flow.tasks"].split(",")]
    included = {line.removeprefix("include: ").strip() for path in TASKS_DIR.glob("flow_*/*.yaml")
                for line in path.read_text().splitlines() if line.startswith("include: ")}
    assert "_mvbench_style_template.yaml" in included
    assert all(any(fnmatch(name, pattern) for pattern in patterns) for name in included)


# VideoLLaMA3's own evaluation, as Map the Flow's code ships it for VideoLLaMA3 (byminji/map-the-flow
# videollama3/evaluation/benchmarks/tempcompass.py and activitynet_qa.py, generate_instruction; mm_infer's
# default max_new_tokens=2048 in videollama3/evaluation/register.py).
@pytest.mark.parametrize("name, config_name, question, instruction", [
    ("multi_choice", "multi-choice",
     "Question: What is the man doing in the video?\nA. dribbling a basketball\nB. dunking a basketball\nC. passing a basketball",
     "\nPlease answer with the option's letter from the given choices directly and only give the best option."),
    ("yes_no", "yes_no", "Question: Is the man dunking a basketball?", "\nPlease answer with 'yes' or 'no' directly."),
    ("caption_matching", "caption_matching",
     "Question: Which caption matches the video better?\nCaption A: The man is dribbling a basketball.\n"
     "Caption B: A man is dunking a basketball.", "\nPlease directly give the best option:"),
    ("captioning", "captioning",
     "Question: You will be presented with a video and several pieces of information. One piece of information is "
     "consistent with the video while the others are not. Please identify the information that consistent with the "
     "video and generate a video caption accordingly.\nInformation A: {'subject': 'man', 'action': 'dribbling a "
     "basketball'}\nInformation B: {'subject': 'man', 'action': 'passing a basketball'}\nInformation C: {'subject': "
     "'man', 'action': 'dunking a basketball'}", "\nPlease answer with the caption directly."),
])
def test_tempcompass_videollama3_style_is_videollama3s_instruction_with_its_2048_tokens(name, config_name, question,
                                                                                       instruction):
    config = task("flow_tempcompass", f"flow_tempcompass_{name}_videollama3_style")
    default = task("flow_tempcompass", f"flow_tempcompass_{name}")
    doc = first_doc("tempcompass", config_name)
    assert prompt_of(config, doc) == Prompt("", question, instruction)
    assert budget(config) == 2048 and config["dataset_name"] == default["dataset_name"] == config_name
    assert same_settings(config, {"task", "generation_kwargs", "lmms_eval_specific_kwargs"}) == \
        same_settings(default, {"task", "generation_kwargs", "lmms_eval_specific_kwargs"})
    assert config["process_results"](doc, [config["doc_to_target"](doc)])["accuracy"] == 1.0  # scored as the default


def test_activitynetqa_videollama3_style_asks_the_question_as_worded_with_its_instruction_and_2048_tokens():
    config = task("flow_activitynetqa", "flow_activitynetqa_videollama3_style")
    default = task("flow_activitynetqa", "flow_activitynetqa")
    doc = first_doc("activitynetqa")
    assert prompt_of(config, doc) == Prompt("", "Question: what is the person in the video doing",
                                            "\nPlease watch the video and answer the question clearly and concisely.\n")
    assert prompt_of(default, doc).question == "What is the person in the video doing?"  # upstream lmms-eval's, unchanged
    assert budget(config) == 2048
    assert same_settings(config, {"task", "generation_kwargs", "lmms_eval_specific_kwargs"}) == \
        same_settings(default, {"task", "generation_kwargs", "lmms_eval_specific_kwargs"})
