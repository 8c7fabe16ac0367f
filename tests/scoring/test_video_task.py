"""The declared task hooks (``scoring.video_task``) as lmms-eval loads them from a task YAML: an
invalid doc is a text-only prompt any model can run and a wrong score, a reply cut off while it
reasons is truncated and wrong, and the hooks' reprs, which lmms-eval writes into the results
JSON, stay short."""

from __future__ import annotations

import json
import shutil

import datasets
import pytest
from conftest import TASKS_DIR
from lmms_eval.protocol import ChatMessages
from lmms_eval.utils import load_yaml_config
from task_fixtures import FIXTURES

from lmms_eval_flow.scoring.task_utils import DATA_DIR_VARIABLE, truncated_replies


@pytest.fixture
def tomato(monkeypatch, tmp_path):
    """The flow_tomato YAML's hooks over a copy of the fixture whose doc 1 has an answer index of -1
    (its videos empty files: nothing here decodes them), and the docs as its ``process_docs`` leaves them."""
    folder = tmp_path / "tomato"
    shutil.copytree(FIXTURES / "tomato", folder)
    for relative in json.loads((folder / "clips.json").read_text()):
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(b"")
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(tmp_path))
    config = load_yaml_config(str(TASKS_DIR / "flow_tomato" / "flow_tomato.yaml"))
    loaded = datasets.load_dataset(str(folder))["test"]
    docs = list(config["process_docs"](loaded.map(lambda doc, index: {"answer": -1} if index == 1 else {}, with_indices=True)))
    return config, docs


def test_an_invalid_doc_is_a_text_only_prompt_scored_wrong_and_counted(tomato):
    config, docs = tomato
    problem = "tomato default/test doc 1 (data/test.jsonl): field 'answer' = -1 is not an option index; valid: 0 to 4 (5 options)"
    assert docs[1]["flow_problem"] == problem
    assert config["doc_to_visual"](docs[1]) == []
    messages = config["doc_to_messages"](docs[1], config["lmms_eval_specific_kwargs"]["default"])
    assert messages == [{"role": "user", "content": [{"type": "text", "text": f"(invalid doc: {problem})"}]}]
    assert ChatMessages(messages=messages).extract_media() == ([], [], [])
    metrics = config["process_results"](docs[1], ["E"])  # the last option, which -1 would name
    assert metrics["accuracy"] == 0.0 and metrics["failed_samples"] == problem
    assert all(metrics[f"accuracy_{name}"] is None for name in ("count", "direction", "visual_cues"))


def test_a_valid_doc_is_its_video_then_its_question(tomato, tmp_path):
    config, docs = tomato
    video = str(tmp_path / "tomato" / docs[0]["video_path"])
    assert config["doc_to_visual"](docs[0]) == [video]
    [turn] = config["doc_to_messages"](docs[0], config["lmms_eval_specific_kwargs"]["default"])
    assert turn["content"][0] == {"type": "video", "url": video}
    # TOMATO's own prompt (tests/scoring/test_official_prompts.py has it whole): the question, then its options.
    assert f"<question> \n{docs[0]['question']} \n</question>\n\n<options> \n{{'A': '1', 'B': '2', 'C': '3'," in turn["content"][1]["text"]
    assert config["process_results"](docs[0], ["C"])["failed_samples"] is None


def test_a_reply_cut_off_inside_its_reasoning_is_truncated_and_wrong(tomato):
    config, docs = tomato
    rotation = docs[2]  # answer 3 (D); reason type rotation, demonstrated by a human
    cut_off = config["process_results"](rotation, ["<think>let me see ... "])
    assert cut_off["truncated"] == 2 and cut_off["failed_samples"] is None
    assert cut_off["accuracy"] == cut_off["accuracy_rotation"] == cut_off["accuracy_human"] == 0.0
    answered = config["process_results"](rotation, ["<think>The hand turns one way all along.</think>\nD"])
    assert answered["truncated"] is None
    assert answered["accuracy"] == answered["accuracy_rotation"] == answered["accuracy_human"] == 1.0
    assert answered["accuracy_count"] is None and answered["accuracy_object"] is None
    # Even the right letter before a block left open is a cut-off reply.
    assert config["process_results"](rotation, ["D <think>or is it"])["accuracy"] == 0.0
    assert truncated_replies([None, 2, None, 0]) == {"count": 2, "docs": [2, 0]}


def test_the_hooks_reprs_name_the_task_only():
    config = load_yaml_config(str(TASKS_DIR / "flow_tomato" / "flow_tomato.yaml"))
    assert repr(config["doc_to_text"]) == "<bound method VideoTask.doc_to_text of MultipleChoiceTask(tomato)>"
    assert repr(config["process_results"]) == "<bound method MultipleChoiceTask.process_results of MultipleChoiceTask(tomato)>"
