"""The flow_synthetic task's data and functions, loaded the way lmms-eval loads them."""

import json
from collections import Counter
from pathlib import Path

import datasets
import decord
import pytest
from lmms_eval.protocol import ChatMessages
from lmms_eval.utils import load_yaml_config

from lmms_eval_flow.toy.clips import clip_path
from lmms_eval_flow.harness.reply import FlowReply, PrefillCost

TASK_DIR = Path(__file__).resolve().parents[2] / "tasks" / "flow_synthetic"
DOCS = [json.loads(line) for line in (TASK_DIR / "test.jsonl").read_text().splitlines()]
LETTERS = "ABCDEFGH"


@pytest.fixture(autouse=True)
def clip_cache(tmp_path, monkeypatch):
    """Render clips into a fresh cache, never the user's."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))


@pytest.fixture(scope="module")
def config():
    """The task config with its ``!function`` entries imported, as lmms-eval builds it."""
    return load_yaml_config(yaml_path=str(TASK_DIR / "flow_synthetic.yaml"))


def test_docs_are_complete_and_unique():
    assert len(DOCS) == 12
    assert len({doc["id"] for doc in DOCS}) == len(DOCS)
    for doc in DOCS:
        assert doc["question"].strip()
        assert 2 <= len(doc["options"]) <= len(LETTERS)
        assert len(set(doc["options"])) == len(doc["options"])
        assert doc["answer"] in LETTERS[: len(doc["options"])]


def test_no_letter_is_a_free_win():
    """A model that always answers the same letter must not score well."""
    counts = Counter(doc["answer"] for doc in DOCS)
    assert max(counts.values()) <= len(DOCS) / 3


def test_config_is_greedy_and_declares_the_flow_metrics(config):
    assert config["task"] == "flow_synthetic"
    assert config["output_type"] == "generate_until"
    assert config["generation_kwargs"]["do_sample"] is False
    assert config["generation_kwargs"]["temperature"] == 0
    metrics = {m["metric"]: m for m in config["metric_list"]}
    costs = {"attention_edges", "attention_kept", "prefill_seconds", "kv_cache_bytes", "attention_flops"}
    assert set(metrics) == {"accuracy", *costs, "failed_samples"}
    assert metrics["accuracy"]["higher_is_better"] is True
    assert all(metrics[name]["higher_is_better"] is False for name in costs)


def test_data_file_resolves_next_to_the_yaml(config):
    assert Path(config["dataset_kwargs"]["data_files"]["test"]) == TASK_DIR / "test.jsonl"


def test_docs_read_through_datasets_render_the_committed_clips(config, tmp_path):
    """The json builder may reshape nested specs; the clips must not change with it."""
    loaded = datasets.load_dataset("json", data_files=config["dataset_kwargs"]["data_files"], cache_dir=str(tmp_path / "datasets"))
    docs = list(loaded[config["test_split"]])
    assert [doc["id"] for doc in docs] == [doc["id"] for doc in DOCS]
    assert [clip_path(doc["clip"]) for doc in docs] == [clip_path(doc["clip"]) for doc in DOCS]


@pytest.mark.parametrize("doc", DOCS, ids=[doc["id"] for doc in DOCS])
def test_doc_to_messages_puts_a_decodable_video_before_the_question(config, doc):
    messages = config["doc_to_messages"](doc)
    images, videos, audios = ChatMessages(messages=messages).extract_media()
    assert (images, audios) == ([], [])
    assert len(videos) == 1
    assert len(decord.VideoReader(videos[0])) == doc["clip"]["frames"]

    [turn] = messages
    assert turn["role"] == "user"
    assert [part["type"] for part in turn["content"]] == ["video", "text"]
    text = turn["content"][1]["text"]
    assert text.startswith(doc["question"])
    for letter, option in zip(LETTERS, doc["options"]):
        assert f"\n{letter}. {option}\n" in text
    assert text.endswith("Answer with the option's letter from the given choices directly.")


def test_doc_to_text_takes_lmms_eval_prompt_overrides(config):
    text = config["doc_to_text"](DOCS[0], {"pre_prompt": "Watch closely.\n", "post_prompt": "Reply with one letter."})
    assert text.startswith("Watch closely.\n" + DOCS[0]["question"])
    assert text.endswith("Reply with one letter.")


def test_doc_to_visual_and_target(config):
    doc = DOCS[0]
    assert config["doc_to_visual"](doc) == [str(clip_path(doc["clip"]))]
    assert config["doc_to_target"](doc) == doc["answer"]


def _wrong_letter(doc):
    return next(letter for letter in LETTERS[: len(doc["options"])] if letter != doc["answer"])


@pytest.mark.parametrize("doc", DOCS, ids=[doc["id"] for doc in DOCS])
def test_process_results_scores_a_plain_reply(config, doc):
    """Plain text (lmms-eval's own models) gives accuracy alone, no made-up edge counts."""
    score = config["process_results"]
    correct_text = doc["options"][LETTERS.index(doc["answer"])]
    assert score(doc, [doc["answer"]]) == {"accuracy": 1.0}
    assert score(doc, [f"The answer is {doc['answer']}."]) == {"accuracy": 1.0}
    assert score(doc, [correct_text]) == {"accuracy": 1.0}
    assert score(doc, [_wrong_letter(doc)]) == {"accuracy": 0.0}
    assert score(doc, ["I am not sure."]) == {"accuracy": 0.0}
    assert score(doc, [""]) == {"accuracy": 0.0}


def test_process_results_passes_attention_edges_and_costs_through(config):
    doc = DOCS[0]
    cost = PrefillCost(prefill_seconds=0.125, kv_cache_bytes=65536, attention_flops=76800)
    right = config["process_results"](doc, [FlowReply(doc["answer"], edges=300, full_edges=1200, cost=cost)])
    assert right == {"accuracy": 1.0, "attention_edges": 300, "attention_kept": 0.25, "prefill_seconds": 0.125,
                     "kv_cache_bytes": 65536, "attention_flops": 76800, "failed_samples": None}
    wrong = config["process_results"](doc, [FlowReply(_wrong_letter(doc), edges=1200, full_edges=1200)])
    assert wrong == {"accuracy": 0.0, "attention_edges": 1200, "attention_kept": 1.0, "failed_samples": None}
