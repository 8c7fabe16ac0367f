"""Runs that cannot give valid results, through the real lmms-eval CLI: each exits 1 with one
line on stderr, ``lmms-eval-flow stopped the run: <error>: <message>`` naming the fix, and writes no results
(README, Reliability). lmms-eval's CLI itself exits 0 after any ``Exception``.

Also: a short clip runs on ``qwen3_vl_flow`` with its default ``max_num_frames=32``.
"""

import json
import shutil
import signal
import socket
import subprocess

import pytest
import torch
from bad_videos import BUDGET, DOCS, FAILED, FIXTURE, TASK, build_task
from ledger_runs import ledger_records, start_until_answered

from lmms_eval_flow.harness import runner

PREFIX = "lmms-eval-flow stopped the run: "
GOOD = [doc_id for doc_id in DOCS if doc_id not in FAILED]
SMALL_VIDEO = "max_pixels=3136,min_pixels=3136,max_num_frames=8"  # SMALL_VIDEO_ARGS without the CPU device


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tasks")
    return folder, build_task(folder)


def model_args(model_dir, devices="device=cpu,device_map=cpu", **extra) -> str:
    options = "".join(f",{key}={value}" for key, value in extra.items())
    return f"pretrained={model_dir},regime=effective,{devices},{SMALL_VIDEO},video_token_budget={BUDGET}{options}"


def lmms_eval(include_path, out, arguments, *extra, model="qwen2_5_vl_flow", processes=1) -> subprocess.CompletedProcess:
    command, env = runner.lmms_eval_command(model, arguments, TASK, include_path, out, *extra, processes=processes)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def missing_videos_task(root, docs: int) -> list[dict]:
    """The bad-videos task in ``root`` with every video missing, as when a benchmark's archives
    were not extracted; returns its docs."""
    folder = root / TASK
    shutil.copytree(FIXTURE, folder)
    docs = [{"id": f"doc{i}", "question": "Which way?", "options": ["right", "left"], "answer": "A",
             "video": str(root / f"not_extracted_{i}.mp4")} for i in range(docs)]
    (folder / "test.jsonl").write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    return docs


def stopped(run: subprocess.CompletedProcess, out) -> str:
    """The message of a run that stopped: it exited 1, said why on one line of stderr (lmms-eval's
    progress bars may print after it as Python exits), and wrote no results and no samples."""
    log = f"exit {run.returncode}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    assert run.returncode == 1, log
    said = [line for line in run.stderr.splitlines() if line.startswith(PREFIX)]
    assert len(said) == 1, log
    assert not list(out.rglob("*_results.json")) and not list(out.rglob("*.jsonl"))
    return said[0].removeprefix(PREFIX)


def test_a_bad_model_argument_stops_the_run(tiny_model_dir, task, tmp_path):
    arguments = model_args(tiny_model_dir).replace("regime=effective", "regime=sparse")
    message = stopped(lmms_eval(task[0], tmp_path, arguments), tmp_path)
    assert message.startswith(f"ConfigurationError: qwen2_5_vl_flow cannot be built from --model_args {arguments!r}: "
                              f"ValueError: regime='sparse' is not a regime; valid regimes: full, effective")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_the_same_generation_error_on_three_samples_in_a_row_stops_the_run(tiny_model_dir, task, tmp_path):
    """Without device_map=cpu, lmms-eval's wrapper moves every sample's inputs to a GPU that is not
    there. The bad videos of docs 1-3, 5 and 6 fail on their own data, before generation, and
    neither count nor break the row: the good clip of doc 7 is the third."""
    run = lmms_eval(task[0], tmp_path, model_args(tiny_model_dir, devices="device_map=auto"))
    message = stopped(run, tmp_path)
    assert message == (
        "RepeatedGenerationError: 3 samples in a row (flow_bad_videos doc 0, flow_bad_videos doc 4, flow_bad_videos "
        "doc 7) failed in generation with the same error, so its cause is the run's, not theirs: RuntimeError: Found "
        "no NVIDIA driver on your system. Please check that you have an NVIDIA GPU and installed a driver from "
        "http://www.nvidia.com/Download/index.aspx. Fix: this machine has no CUDA GPU: run on the CPU with "
        "device=cpu,device_map=cpu in --model_args.")
    assert "flow_bad_videos doc 5 (" in run.stdout and "flow_bad_videos doc 8 (" not in run.stdout  # stopped at 7


def test_a_task_whose_every_sample_failed_stops_the_run(tiny_model_dir, tmp_path):
    """Every video missing: no accuracy of 0.0."""
    docs = missing_videos_task(tmp_path / "tasks", 3)
    message = stopped(lmms_eval(tmp_path / "tasks", tmp_path / "out", model_args(tiny_model_dir)), tmp_path / "out")
    reasons = "; ".join(f"{TASK} doc {i} ({doc['video']}): no such file" for i, doc in enumerate(docs))
    assert message == (
        "NothingRan: every one of the 3 samples of a task failed, so it has no accuracy (0.0 would look like a "
        "measured score) and no results are written. None of the videos is there: are the benchmark's video archives "
        f"extracted (under $HF_HOME/<cache_dir>, or in LMMS_EVAL_FLOW_DATA_DIR)? The failures: {reasons}")


def test_a_multi_process_run_stops_too(tiny_model_dir, tmp_path):
    """Each process sees its share of the docs; the task is judged on all of them, gathered on the
    first process, whose exit ends the launch (the launcher stops the others and exits 1)."""
    missing_videos_task(tmp_path / "tasks", 4)
    run = lmms_eval(tmp_path / "tasks", tmp_path / "out", model_args(tiny_model_dir), processes=2)
    assert stopped(run, tmp_path / "out").startswith("NothingRan: every one of the 4 samples of a task failed")


def test_an_unwritable_edge_ledger_stops_the_run(tiny_model_dir, task, tmp_path):
    """As a full disk would: under --use_cache every answer must reach the ledger."""
    blocked = tmp_path / "not_a_folder"
    blocked.write_text("")
    out = tmp_path / "out"
    run = lmms_eval(task[0], out, model_args(tiny_model_dir, edge_ledger=blocked), "--use_cache", str(tmp_path / "cache"))
    message = stopped(run, out)
    assert message.startswith(f"LedgerError: cannot write the edge ledger in {blocked}/")
    assert message.endswith("); give a writable folder with edge_ledger=DIR") and "NotADirectoryError" in message
    assert blocked.read_text() == ""


def test_a_second_run_on_the_same_edge_ledger_is_refused(tiny_model_dir, task, tmp_path):
    """Two runs with the same arguments share a ledger: the second is refused, naming the ledger and
    the first run, which then finishes alone, answering every good doc once."""
    ledger, cache = tmp_path / "ledger", tmp_path / "cache"
    arguments = model_args(tiny_model_dir, edge_ledger=ledger)
    command, env = runner.lmms_eval_command("qwen2_5_vl_flow", arguments, TASK, task[0], tmp_path / "first",
                                            "--use_cache", str(cache))
    first = start_until_answered(command, env, ledger)
    try:
        assert first.poll() is None, "the first run ended before it answered"
        first.send_signal(signal.SIGSTOP)  # it holds the ledger and answers nothing more until SIGCONT
        second = lmms_eval(task[0], tmp_path / "second", arguments, "--use_cache", str(cache))
        first.send_signal(signal.SIGCONT)
        message = stopped(second, tmp_path / "second")
        [ledger_file] = ledger.glob("*/rank_0.jsonl")
        assert message.startswith(f"LedgerInUse: the edge ledger {ledger_file} is in use by another run (pid "
                                  f"{first.pid} on {socket.gethostname()}, since ")
        assert message.endswith("both would answer the same docs into it. Wait for that run to end, or give this one "
                                "its own folder with edge_ledger=DIR")
        assert first.wait(timeout=600) == 0
    finally:
        first.kill()
    results, _ = runner.read_results(tmp_path / "first", TASK, 0, "")
    assert results["results"][TASK]["failed_samples,none"]["count"] == len(FAILED)
    assert sorted(r["doc_id"] for r in ledger_records(ledger)) == GOOD  # each good doc answered once


def test_qwen3_vl_flow_runs_clips_shorter_than_its_default_frames(family_model_dir, task, tmp_path):
    """The good clips have 4 frames; lmms-eval's Qwen3-VL asks for max_num_frames=32 of every video."""
    arguments = (f"pretrained={family_model_dir('qwen3_vl')},regime=effective,device=cpu,device_map=cpu,"
                 f"max_pixels=4096,min_pixels=4096")
    results, samples = runner.run_lmms_eval("qwen3_vl_flow", arguments, TASK, task[0], tmp_path, "--limit", "1")
    [sample] = samples[TASK]
    assert sample["doc_id"] == 0 and sample["failed_samples"] is None and sample["attention_edges"] > 0
    assert results["results"][TASK]["failed_samples,none"]["count"] == 0
