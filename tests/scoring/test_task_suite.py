"""The benchmark tasks end to end: fixtures through the real lmms-eval CLI.

Every benchmark's fixture (tests/fixtures, loaded through LMMS_EVAL_FLOW_DATA_DIR) runs in one
CLI call per set-up, all benchmarks together, to keep the suite fast:

- ``flow_replay`` answering from the fixture's key: all right (100%), all wrong (0%) and a
  mixed set whose figures are worked out here, per task, per category and per group, with the
  replies cut off inside a reasoning block counted as truncated;
- ``qwen2_5_vl_flow`` on the tiny model under the effective regime, one doc per task: the
  prompts, real videos (cut to TVBench's windows) and edge counts go through the real model.
"""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from conftest import SMALL_VIDEO_ARGS, TASKS_DIR, run_lmms_eval
from task_fixtures import build_data_dir, fixture_docs

from lmms_eval_flow.scoring.answers import normalize_answer

TASKS = "flow_tempcompass,flow_tvbench,flow_tomato,flow_nextqa_mc,flow_activitynetqa,flow_longvideobench_val"
TEMPCOMPASS = {"multi-choice": "multi_choice", "yes_no": "yes_no", "caption_matching": "caption_matching", "captioning": "captioning"}
TVBENCH = ("action_antonym", "action_count", "action_localization", "action_sequence", "egocentric_sequence",
           "moving_direction", "object_count", "object_shuffle", "scene_transition", "unexpected_action")
UNPARSEABLE = "A person is walking."  # "A" the article, not option A
CUT_OFF = "<think>let me see ... "  # the token budget ran out while thinking


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """The fixtures as LMMS_EVAL_FLOW_DATA_DIR, for this module's CLI runs."""
    root = build_data_dir(tmp_path_factory.mktemp("flow_data"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LMMS_EVAL_FLOW_DATA_DIR", str(root))
        yield root


# Right and wrong replies from each fixture's key, phrased the ways models phrase them.

def _letter_replies(key: str, keys: list[str], text: str, index: int) -> tuple[str, str]:
    right = [key, f"Answer: {key}", f"({key}) {text}", f"The answer is {key}.", f"<think>Let me look.</think>\n{key}"][index % 5]
    return right, next(k for k in keys if k != key)


def _tempcompass_replies(config: str, doc: dict, index: int) -> tuple[str, str]:
    if config == "yes_no":
        right = "Yes." if doc["answer"] == "yes" else "No, it does not."
        return right, "No." if doc["answer"] == "yes" else "Yes, it does."
    lines = [line.strip() for line in doc["question"].split("\n")[1:]]
    if config == "captioning":
        lines = [line.removeprefix("Information ") for line in lines if line.startswith("Information ")]
    label, _, text = doc["answer"].partition(": ") if config == "caption_matching" else doc["answer"].partition(". ")
    if config == "caption_matching":  # "Caption B", "Sentence A", "Option 2"
        labels = [line.split(": ")[0] for line in lines]
        right = [label, f"{label}: {text}", text, label.split()[-1], f"The best match is {label}."][index % 5]
        return right, next(other for other in labels if other != label)
    return _letter_replies(label, [line[0] for line in lines], text, index)


def _replies(kind: str) -> dict[str, list[str]]:
    """task -> one reply per fixture doc: "right", "wrong", or "mixed": right on even doc ids,
    cut off while thinking on doc ids 3, 11, ..., unparseable on 7, 15, ..., wrong on the others."""
    def pick(index, right, wrong):
        if kind == "right" or (kind == "mixed" and index % 2 == 0):
            return right
        if kind == "wrong" or index % 4 == 1:
            return wrong
        return CUT_OFF if index % 8 == 3 else UNPARSEABLE

    replies = {}
    for config, task in TEMPCOMPASS.items():
        docs = fixture_docs("tempcompass", config)
        replies[f"flow_tempcompass_{task}"] = [pick(i, *_tempcompass_replies(config, d, i)) for i, d in enumerate(docs)]
    for task in TVBENCH:
        replies[f"flow_tvbench_{task}"] = [
            pick(i, *_letter_replies("ABCDE"[d["candidates"].index(d["answer"])], list("ABCDE"[: len(d["candidates"])]), d["answer"], i))
            for i, d in enumerate(fixture_docs("tvbench", task))
        ]
    replies["flow_tomato"] = [pick(i, *_letter_replies("ABCDE"[d["answer"]], list("ABCDE"[: len(d["options"])]), d["options"][d["answer"]], i))
                              for i, d in enumerate(fixture_docs("tomato"))]
    replies["flow_nextqa_mc"] = [pick(i, *_letter_replies("ABCDE"[d["answer"]], list("ABCDE"), d[f"a{d['answer']}"], i))
                                 for i, d in enumerate(fixture_docs("nextqa", "MC"))]
    replies["flow_longvideobench_val"] = [
        pick(i, *_letter_replies("ABCDE"[d["correct_choice"]], list("ABCD"), d[f"option{d['correct_choice']}"], i))
        for i, d in enumerate(fixture_docs("longvideobench"))
    ]
    assert [d["answer"] for d in fixture_docs("activitynetqa")] == ["dancing", "yes", "2", "red", "table", "sit down"]
    replies["flow_activitynetqa"] = {
        "right": ["dancing", "yes", "2", "red", "table", "sit down"],
        "wrong": ["Cooking.", "No.", "Three people.", "Blue.", "A chair.", "Stand up."],
        # Raw right, wrong, normalised right, raw right, word overlap 0.4 only, normalised right.
        "mixed": ["dancing", "No.", "Two.", "red", "The ball is on the table.", "Sit down."],
    }[kind]
    return replies


def _write_replies(path, replies: dict[str, list[str]]) -> str:
    path.write_text("".join(json.dumps({"task": task, "doc_id": i, "reply": r}) + "\n" for task, rs in replies.items() for i, r in enumerate(rs)))
    return str(path)


def _accuracy(results: dict, task: str, metric: str = "accuracy") -> float:
    return results["results"][task][f"{metric},none"]


def _every_task(results: dict) -> list[str]:
    return [task for task in results["results"] if task.startswith("flow_") and task not in ("flow_tempcompass", "flow_tvbench")]


@pytest.mark.parametrize("kind, expected", [("right", 1.0), ("wrong", 0.0)])
def test_replayed_right_and_wrong_replies_score_all_or_nothing(data_dir, tmp_path, kind, expected):
    replies = _write_replies(tmp_path / "replies.jsonl", _replies(kind))
    results, samples = run_lmms_eval(tmp_path / "out", "flow_replay", f"replies={replies}", TASKS)
    tasks = _every_task(results)
    assert len(tasks) == 4 + 10 + 4
    for task in tasks:
        prefix = "exact_match" if task == "flow_activitynetqa" else "accuracy"
        metrics = [m.split(",")[0] for m in results["results"][task] if m.startswith(prefix) and "stderr" not in m]
        assert metrics
        for metric in metrics:
            if not math.isnan(_accuracy(results, task, metric)):  # a category with no fixture doc
                assert _accuracy(results, task, metric) == expected, (task, metric, [s["resps"] for s in samples[task]])
        assert _accuracy(results, task, "truncated") == {"count": 0, "docs": []}  # a closed block is no cut-off
    for group in ("flow_tempcompass", "flow_tvbench"):
        assert _accuracy(results, group) == expected
    assert _accuracy(results, "flow_activitynetqa", "token_f1") == expected
    # A replayed reply carries no edge counts, and none are made up.
    assert not any("attention_edges,none" in results["results"][task] for task in tasks)


class _FakeJudge(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that calls an answer correct when it holds every reference word."""

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        lines = dict(line.split(": ", 1) for line in request["messages"][-1]["content"].split("\n"))
        same = set(normalize_answer(lines["Correct answer"]).split()) <= set(normalize_answer(lines["Predicted answer"]).split())
        verdict = {"correct": "yes" if same else "no", "score": 5 if same else 1}
        body = json.dumps({"model": request["model"], "choices": [{"message": {"content": json.dumps(verdict)}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def judge_endpoint(monkeypatch):
    server = HTTPServer(("127.0.0.1", 0), _FakeJudge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("LMMS_EVAL_FLOW_JUDGE_URL", f"http://127.0.0.1:{server.server_port}/v1")
    monkeypatch.setenv("LMMS_EVAL_FLOW_JUDGE_MODEL", "fake-judge-1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    yield
    server.shutdown()


def test_a_mixed_set_scores_the_figures_worked_out_by_hand(data_dir, tmp_path, judge_endpoint):
    replies = _write_replies(tmp_path / "replies.jsonl", _replies("mixed"))
    results, samples = run_lmms_eval(tmp_path / "out", "flow_replay", f"replies={replies}", TASKS)

    # Right on even doc ids, cut off while thinking on doc 3 (truncated, and wrong).
    # TempCompass: five docs per format, one per aspect in the same order.
    for task in TEMPCOMPASS.values():
        assert _accuracy(results, f"flow_tempcompass_{task}") == pytest.approx(3 / 5)
        assert _accuracy(results, f"flow_tempcompass_{task}", "truncated") == {"count": 1, "docs": [3]}
    aspects = {"action": 1.0, "speed": 0.0, "direction": 1.0, "order": 0.0, "attribute_change": 1.0}
    for aspect, value in aspects.items():
        assert _accuracy(results, "flow_tempcompass_captioning", f"accuracy_{aspect}") == value
        assert _accuracy(results, "flow_tempcompass", f"accuracy_{aspect}") == value
    assert _accuracy(results, "flow_tempcompass") == pytest.approx(3 / 5)
    # TVBench: two docs per task, three in action_sequence; the group pools all 21 questions.
    for task in TVBENCH:
        assert _accuracy(results, f"flow_tvbench_{task}") == pytest.approx(2 / 3 if task == "action_sequence" else 1 / 2)
    assert _accuracy(results, "flow_tvbench") == pytest.approx(11 / 21)
    assert all(_accuracy(results, f"flow_tvbench_{task}", "truncated")["count"] == 0 for task in TVBENCH)  # no doc 3
    # TOMATO: one doc per reasoning type; demonstrations human (docs 0, 2, 3), simulated (1), object (4, 5).
    assert _accuracy(results, "flow_tomato") == pytest.approx(1 / 2)
    for reason, value in {"count": 1.0, "direction": 0.0, "rotation": 1.0, "shape_trend": 0.0, "velocity_frequency": 1.0,
                          "visual_cues": 0.0, "human": 2 / 3, "simulated": 0.0, "object": 1 / 2}.items():
        assert _accuracy(results, "flow_tomato", f"accuracy_{reason}") == pytest.approx(value)
    assert _accuracy(results, "flow_tomato", "truncated") == {"count": 1, "docs": [3]}
    # LongVideoBench: one doc per duration group, each of another question category.
    assert _accuracy(results, "flow_longvideobench_val") == pytest.approx(1 / 2)
    for group, value in {"15s": 1.0, "60s": 0.0, "600s": 1.0, "3600s": 0.0, "s2e": 1.0, "e2o": 0.0, "sss": 1.0, "o2e": 0.0}.items():
        assert _accuracy(results, "flow_longvideobench_val", f"accuracy_{group}") == value
    assert math.isnan(_accuracy(results, "flow_longvideobench_val", "accuracy_taa"))  # no such doc in the fixture
    # NExT-QA, docs 0-7 of types CW, TN, DC, TC, TP, CH, DL, DO; TN and TP are both before/after.
    assert _accuracy(results, "flow_nextqa_mc") == pytest.approx(1 / 2)
    for category, value in {"causal": 1 / 2, "causal_why": 1.0, "causal_how": 0.0, "temporal": 1 / 3,
                            "temporal_before_after": 1 / 2, "temporal_when": 0.0, "descriptive": 2 / 3,
                            "descriptive_count": 1.0, "descriptive_location": 1.0, "descriptive_other": 0.0}.items():
        assert _accuracy(results, "flow_nextqa_mc", f"accuracy_{category}") == pytest.approx(value), category
    assert _accuracy(results, "flow_nextqa_mc", "truncated") == {"count": 1, "docs": [3]}
    # ActivityNet-QA, docs of types motion, yes/no, number, colour, spatial, temporal: raw right,
    # wrong, normalised right only ("Two." for "2"), raw right, word overlap only, normalised right only.
    assert _accuracy(results, "flow_activitynetqa", "exact_match_raw") == pytest.approx(2 / 6)
    for category, value in {"motion": 1.0, "spatial_relation": 0.0, "temporal_relation": 0.0, "free": 1 / 3,
                            "free_yes_no": 0.0, "free_color": 1.0, "free_number": 0.0}.items():
        assert _accuracy(results, "flow_activitynetqa", f"exact_match_raw_{category}") == pytest.approx(value), category
    assert math.isnan(_accuracy(results, "flow_activitynetqa", "exact_match_raw_free_object"))
    assert _accuracy(results, "flow_activitynetqa", "exact_match_normalized") == pytest.approx(4 / 6)
    assert _accuracy(results, "flow_activitynetqa", "token_f1") == pytest.approx((1 + 0 + 1 + 1 + 0.4 + 1) / 6)
    # The configured judge scored every answer, and the results name it.
    assert _accuracy(results, "flow_activitynetqa", "judge_accuracy") == pytest.approx(5 / 6)
    assert results["configs"]["flow_activitynetqa"]["metadata"]["judge_model"] == "fake-judge-1"
    assert [s["judge_accuracy"] for s in samples["flow_activitynetqa"]] == [1.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    # Per-sample logs carry every category key, None outside the doc's own category.
    first = samples["flow_tomato"][0]
    assert first["accuracy_count"] == 1.0 and first["accuracy_rotation"] is None


def test_the_tiny_flow_model_runs_every_benchmark_with_edge_counts(data_dir, tmp_path, tiny_model_dir):
    """One doc per task (two TVBench tasks: one cut to a window, one whole) and short replies, for speed."""
    tasks = TASKS.replace("flow_tvbench", "flow_tvbench_action_sequence,flow_tvbench_action_antonym")
    results, samples = run_lmms_eval(tmp_path / "out", "qwen2_5_vl_flow", f"pretrained={tiny_model_dir},regime=effective,{SMALL_VIDEO_ARGS}",
                                     tasks, "--limit", "1", "--gen_kwargs", "max_new_tokens=2")
    tasks = _every_task(results)
    assert len(tasks) == 4 + 2 + 4
    for task in tasks:
        metrics = results["results"][task]
        score = metrics["exact_match_raw,none" if task == "flow_activitynetqa" else "accuracy,none"]
        assert 0.0 <= score <= 1.0
        assert metrics["attention_edges,none"] > 0
        assert 0.0 < metrics["attention_kept,none"] < 1.0  # the effective regime blocks some edges
        [sample] = samples[task]
        assert sample["attention_edges"] == metrics["attention_edges,none"]
    assert math.isnan(_accuracy(results, "flow_tomato", "accuracy_rotation"))  # no rotation doc within --limit 1


def test_the_tasks_are_listed_from_the_include_path():
    from lmms_eval.tasks import TaskManager

    names = set(TaskManager(include_path=str(TASKS_DIR)).all_tasks)
    expected = {"flow_tempcompass", *(f"flow_tempcompass_{t}" for t in TEMPCOMPASS.values()), "flow_tvbench",
                *(f"flow_tvbench_{t}" for t in TVBENCH), "flow_tomato", "flow_nextqa_mc", "flow_activitynetqa",
                "flow_longvideobench_val", "flow_activitynetqa_videollama3_style",
                *(f"flow_tempcompass_{t}_videollama3_style" for t in TEMPCOMPASS.values())}
    assert expected <= names
