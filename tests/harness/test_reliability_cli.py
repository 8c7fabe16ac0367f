"""Bad videos and interrupted runs through the real lmms-eval CLI.

One task (``flow_bad_videos``, tests/bad_videos.py) holds three good clips and one bad video of
every kind. By default the run finishes, every bad sample is scored as wrong and reported with
its reason in ``failed_samples``; with ``strict=true`` the run stops at the first one. A run with
``--use_cache`` killed by SIGTERM mid-way and started again with the same command ends with the
results of an uninterrupted run, without answering any sample twice.
"""

import signal
import subprocess

import pytest
from bad_videos import BUDGET, DOCS, FAILED, TASK, build_task, failure_message
from conftest import SMALL_VIDEO_ARGS
from ledger_runs import ledger_records, start_until_answered

from lmms_eval_flow.harness import runner

GOOD = [doc_id for doc_id in DOCS if doc_id not in FAILED]
COMPARED = ("accuracy", "attention_edges", "attention_kept", "failed_samples")
COSTS = ("prefill_seconds", "kv_cache_bytes", "attention_flops")


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tasks")
    return folder, build_task(folder)


def model_args(tiny_model_dir, **extra) -> str:
    options = "".join(f",{key}={value}" for key, value in extra.items())
    return f"pretrained={tiny_model_dir},regime=effective,{SMALL_VIDEO_ARGS},video_token_budget={BUDGET}{options}"


def run(task, out, arguments, *extra):
    return runner.run_lmms_eval("qwen2_5_vl_flow", arguments, TASK, task[0], out, *extra)


@pytest.fixture(scope="module")
def uninterrupted(tiny_model_dir, task, tmp_path_factory):
    return run(task, tmp_path_factory.mktemp("uninterrupted"), model_args(tiny_model_dir))


def per_doc(samples) -> dict[int, dict]:
    lines = samples[TASK]
    assert sorted(s["doc_id"] for s in lines) == list(DOCS)  # every doc scored once, none dropped
    return {s["doc_id"]: {"reply": s["filtered_resps"], **{name: s[name] for name in COMPARED}} for s in lines}


def test_bad_videos_fail_one_by_one_and_are_reported_with_their_reasons(uninterrupted, task):
    results, samples = uninterrupted
    videos = task[1]
    metrics = results["results"][TASK]
    reported = metrics["failed_samples,none"]
    assert reported["count"] == len(FAILED) and len(reported["reasons"]) == len(FAILED)
    for doc_id, reason in zip(FAILED, reported["reasons"]):
        assert reason.startswith(failure_message(doc_id, videos))
    docs = per_doc(samples)
    for doc_id, doc in docs.items():
        if doc_id in FAILED:
            assert doc["failed_samples"].startswith(failure_message(doc_id, videos))
            assert doc | {"failed_samples": None} == {"reply": "", "accuracy": 0.0, "attention_edges": None,
                                                      "attention_kept": None, "failed_samples": None}
        else:
            assert doc["failed_samples"] is None and doc["attention_edges"] > 0 and 0 < doc["attention_kept"] < 1
    # failed samples count in the accuracy as wrong answers; the edge means are over samples that ran
    assert results["n-samples"][TASK]["effective"] == len(DOCS)
    assert metrics["accuracy,none"] == pytest.approx(sum(d["accuracy"] for d in docs.values()) / len(DOCS))
    assert metrics["attention_edges,none"] == pytest.approx(sum(docs[i]["attention_edges"] for i in GOOD) / len(GOOD))
    assert len({docs[i]["attention_edges"] for i in GOOD}) == len(GOOD)


def test_strict_stops_at_the_first_bad_video_with_its_message(tiny_model_dir, task, tmp_path):
    command, env = runner.lmms_eval_command("qwen2_5_vl_flow", model_args(tiny_model_dir, strict="true"), TASK,
                                            task[0], tmp_path)
    stopped = subprocess.run(command, env=env, capture_output=True, text=True)
    first = min(FAILED)  # lmms-eval runs the docs in prompt order: "Doc 0: ...", "Doc 1: ..."
    said = f"lmms-eval-flow stopped the run: FailedSampleError: {failure_message(first, task[1])}\n"
    assert stopped.returncode == 1 and said in stopped.stderr, stopped.stderr[-3000:]
    assert not list(tmp_path.rglob("*_results.json"))


def test_a_run_killed_mid_way_resumes_from_the_cache_without_answering_twice(tiny_model_dir, task, uninterrupted, tmp_path):
    ledger, cache = tmp_path / "ledger", tmp_path / "cache"
    arguments = model_args(tiny_model_dir, edge_ledger=ledger)
    command, env = runner.lmms_eval_command("qwen2_5_vl_flow", arguments, TASK, task[0], tmp_path / "killed",
                                            "--use_cache", str(cache))
    process = start_until_answered(command, env, ledger)
    try:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == -signal.SIGTERM
    finally:
        process.kill()
    answered_before = ledger_records(ledger)
    assert 1 <= len(answered_before) < len(GOOD), "the run was not killed mid-way"
    assert not list((tmp_path / "killed").rglob("*_results.json"))

    expected = per_doc(uninterrupted[1])
    for attempt in ("resumed", "cached"):
        # "resumed": lmms-eval's cache has nothing of the killed run; the model answers from the
        # edge ledger what it answered before. "cached": lmms-eval serves the good replies as
        # plain text and the scorer finds their edges in the ledger.
        results, samples = run(task, tmp_path / attempt, arguments, "--use_cache", str(cache))
        assert per_doc(samples) == expected
        for name in COMPARED:
            assert results["results"][TASK][f"{name},none"] == uninterrupted[0]["results"][TASK][f"{name},none"]
        records = ledger_records(ledger)
        assert sorted(r["doc_id"] for r in records) == GOOD  # each good sample answered exactly once
        assert records[:len(answered_before)] == answered_before
        # every sample keeps the costs measured when it was answered; the cache's size is the same in every run
        lines, first = ({s["doc_id"]: s for s in run_samples[TASK]} for run_samples in (samples, uninterrupted[1]))
        assert {r["doc_id"]: [lines[r["doc_id"]][name] for name in COSTS] for r in records} == \
            {r["doc_id"]: [r[name] for name in COSTS] for r in records}
        assert all(lines[doc]["kv_cache_bytes"] == first[doc]["kv_cache_bytes"] > 0 for doc in GOOD)
