"""Per-sample failures, the run options, the edge ledger and how a flow model pairs prompts,
prefills and answers, checked piece by piece (the CLI runs are in test_reliability_cli.py)."""

import json
import os
import pickle
import re
import socket
import subprocess
import sys

import pytest
import torch
import transformers
from bad_videos import BUDGET, write_video
from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from lmms_eval.caching.response_cache import ResponseCache
from lmms_eval.models.model_utils.usage_metrics import set_task_context
from lmms_eval_flow.model_wrappers.qwen2_5_vl_flow import Qwen2_5_VLFlow
from PIL import Image

from lmms_eval_flow.harness import ledger as ledger_module
from lmms_eval_flow.atomic import atomic_write_bytes, atomic_write_text
from lmms_eval_flow.harness.flow_model import FailedSampleError, LedgerError, RunOptions
from lmms_eval_flow.harness.run_errors import ConfigurationError, NothingRan, RepeatedGenerationError, check_some_ran
from lmms_eval_flow.harness.ledger import EdgeLedger, asked_by_response_cache, doc_key, fingerprint, scoring_task
from lmms_eval_flow.harness.reply import FlowReply, PrefillCost, attention_metrics, note_flow_model_loaded
from lmms_eval_flow.harness.sample_checks import check_sample, frames_to_sample, video_problem
from lmms_eval_flow.scoring.task_utils import failed_samples, mean_of_scored, score, video_messages

SMALL = {"device": "cpu", "device_map": "cpu", "max_pixels": 3136, "min_pixels": 3136, "max_num_frames": 8}


# -- what is wrong with a video ------------------------------------------------------------
@pytest.mark.parametrize("kind, problem", [
    ("good", None),
    ("missing", "no such file"),
    ("empty", "the file is empty (0 bytes)"),
    ("truncated", "the file cannot be read as a video (RuntimeError: Error reading"),
    ("one_frame", "the video has 1 frame, fewer than min_frames=2"),
])
def test_each_kind_of_bad_video_is_named(tmp_path, kind, problem):
    found = video_problem(write_video(kind, 0, tmp_path))
    assert found == problem if problem is None else found.startswith(problem)


def test_a_video_cut_to_a_window_needs_its_frames_inside_it(tmp_path):
    """TVBench's start/end: frames ceil(start x fps) .. floor(end x fps), as qwen-vl-utils cuts them."""
    clip = write_video("long", 0, tmp_path)  # 8 frames at 4 fps: 0 s .. 2 s
    assert video_problem(clip, min_frames=5, window=(0.5, 1.5)) is None  # frames 2..6
    assert video_problem(clip, min_frames=6, window=(0.5, 1.5)) == \
        "the video has 5 frames between 0.5 s and 1.5 s, fewer than min_frames=6"
    assert video_problem(clip, min_frames=7, window=(0.5, None)) == \
        "the video has 6 frames between 0.5 s and its end, fewer than min_frames=7"
    assert video_problem(clip, window=(1.9, 1.95)).startswith(
        "the video has no frames between 1.9 s and 1.95 s (ValueError: Invalid time range: Start frame 8")
    windowed = [{"role": "user", "content": [{"type": "video", "url": clip, "start_time": 0.5, "end_time": 1.5},
                                             {"type": "text", "text": "Why?"}]}]
    assert check_sample(windowed, min_frames=5) == ([clip], None)
    assert check_sample(windowed, min_frames=6)[1].startswith("the video has 5 frames between 0.5 s and 1.5 s")


def test_min_frames_and_docs_without_a_usable_video(tmp_path):
    clip = write_video("good", 0, tmp_path)  # 4 frames
    assert video_problem(clip, min_frames=4) is None
    assert video_problem(clip, min_frames=5) == "the video has 4 frames, fewer than min_frames=5"
    assert video_problem(str(tmp_path)) == "not a file"
    assert check_sample([{"role": "user", "content": [{"type": "text", "text": "Why?"}]}]) == ([], "the doc has no video")
    two = [{"role": "user", "content": [{"type": "video", "url": clip}, {"type": "video", "url": str(tmp_path / "x.mp4")}]}]
    assert check_sample(two) == ([clip, str(tmp_path / "x.mp4")], f"{tmp_path / 'x.mp4'}: no such file")


# -- run options ---------------------------------------------------------------------------
@pytest.mark.parametrize("arguments, message", [
    ({"strict": "yes"}, r"strict='yes' is not valid; valid: true, false"),
    ({"video_token_budget": 0}, r"video_token_budget=0 is not valid: give the most video tokens"),
    ({"video_token_budget": 2.5}, r"video_token_budget=2.5 is not valid"),
    ({"min_frames": True}, r"min_frames=True is not valid: give the fewest frames"),
])
def test_run_options_are_checked(arguments, message):
    with pytest.raises(ValueError, match=message):
        RunOptions.take(arguments)


def test_run_options_are_taken_out_of_the_model_arguments():
    arguments = {"pretrained": "x", "strict": True, "video_token_budget": 4096, "min_frames": 8, "edge_ledger": 3}
    assert RunOptions.take(arguments) == RunOptions(True, 4096, 8, "3")
    assert arguments == {"pretrained": "x"}
    assert RunOptions.take({}) == RunOptions(False, None, 2, None)


def test_bad_run_options_fail_before_the_model_loads(tiny_model_dir, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the model started loading before the arguments were checked")

    monkeypatch.setattr(transformers.Qwen2_5_VLForConditionalGeneration, "from_pretrained", refuse)
    # lmms-eval's way in stops the run (its CLI would log a ValueError and exit 0)
    with pytest.raises(ConfigurationError, match=r"^qwen2_5_vl_flow cannot be built from --model_args "
                                                 r"'pretrained=.*,strict=maybe': ValueError: strict='maybe' is not valid"):
        Qwen2_5_VLFlow.create_from_arg_string(f"pretrained={tiny_model_dir},strict=maybe")
    with pytest.raises(ValueError, match=r"strict are options of an lmms-eval run: give them in --model_args"):
        Qwen2_5_VLFlow(pretrained=str(tiny_model_dir), strict=True)


# -- scoring a failed sample ---------------------------------------------------------------
def test_a_failed_sample_scores_as_wrong_without_edges_and_says_why():
    failed = FlowReply.failed("flow_x doc 3 (/v/3.mp4): no such file")
    assert failed.strip().failure == failed.failure and pickle.loads(pickle.dumps(failed)).failure == failed.failure
    metrics = score(True, failed, "speed", ("action", "speed"))
    assert metrics == {"accuracy": 0.0, "accuracy_action": None, "accuracy_speed": 0.0, "attention_edges": None,
                       "attention_kept": None, "prefill_seconds": None, "kv_cache_bytes": None,
                       "attention_flops": None, "failed_samples": "flow_x doc 3 (/v/3.mp4): no such file"}
    ran = score(True, FlowReply("A", 30, 120, cost=PrefillCost(0.5, 2048, 3840)))
    assert ran == {"accuracy": 1.0, "attention_edges": 30, "attention_kept": 0.25, "prefill_seconds": 0.5,
                   "kv_cache_bytes": 2048, "attention_flops": 3840, "failed_samples": None}
    assert failed_samples([None, "a", None, "b"]) == {"count": 2, "reasons": ["a", "b"]}
    assert mean_of_scored([30, None, 90]) == 60


# -- the edge ledger -----------------------------------------------------------------------
def test_the_ledger_survives_a_torn_last_line_and_reads_every_process(tmp_path):
    first = EdgeLedger(tmp_path, rank=0, about={"model": "m"})
    first.append("flow_x", 0, "d0", "r0", FlowReply("A", 10, 20))
    first.close()
    with open(tmp_path / "rank_0.jsonl", "a") as handle:
        handle.write('{"task": "flow_x", "doc_id": 1, "doc": "d1", "req')  # killed mid-write
    again = EdgeLedger(tmp_path, rank=0)
    again.append("flow_x", 2, "d2", "r2", FlowReply(" B", 30, 40, cost=PrefillCost(0.5, 2048, 3840)))
    EdgeLedger(tmp_path, rank=1).append("flow_x", 3, "d3", "r3", FlowReply("C", 50, 60))
    reader = EdgeLedger(tmp_path, rank=5)
    assert reader.reply_for("flow_x", "d0", "r0")["reply"] == "A"
    assert reader.reply_for("flow_x", "d1", "r1") is None  # the torn record: never answered
    assert reader.reply_for("flow_x", "d2", "other request") is None
    served = FlowReply.recorded(reader.record_of("flow_x", "d2", "B"))  # lmms-eval strips served replies
    assert (served.edges, served.full_edges, served.cost) == (30, 40, PrefillCost(0.5, 2048, 3840))
    served = FlowReply.recorded(reader.record_of("flow_x", "d3", "C"))
    assert (served.edges, served.full_edges, served.cost) == (50, 60, None)
    assert json.loads((tmp_path / "about.json").read_text()) == {"model": "m"}
    with pytest.raises(LookupError, match=r"has no record of it"):
        reader.record_of("flow_x", "d0", "Z")
    EdgeLedger(tmp_path, rank=0).append("flow_x", 0, "d0", "r9", FlowReply("A", 11, 20))  # another prompt, same reply
    with pytest.raises(LookupError, match=r"with different edge counts \[\(10, 20\), \(11, 20\)\]"):
        EdgeLedger(tmp_path).record_of("flow_x", "d0", "A")


def test_ledgers_are_separated_by_every_argument_that_changes_replies_or_edges(tmp_path):
    def folder(**arguments):
        return EdgeLedger.for_model("Qwen2_5_VLFlow", {"pretrained": "p", "regime": "random", **arguments}, tmp_path, 0).directory

    assert folder() == folder(batch_size=4, strict=True, edge_ledger="x")
    assert len({folder(), folder(seed=1), folder(max_num_frames=16), folder(regime="effective"),
                folder(video_token_budget=99), folder(min_frames=3)}) == 6
    assert folder().parent == tmp_path
    assert fingerprint("M", {"regime": "full", "strict": True}) == {"model": "M", "arguments": {"regime": "full"},
                                                                    "lmms_eval_flow": "0.1.0"}


def test_a_doc_has_the_same_key_with_or_without_its_media():
    doc = {"question": "Why?", "options": ["a", "b"], "video": "/v/1.mp4", "n": 3}
    with_media = {**doc, "frame": Image.new("RGB", (4, 4)), "raw": b"\x00\x01", "audio": {"array": [0.1]}}
    assert doc_key(doc) == doc_key(with_media) != doc_key({**doc, "n": 4})


class _Echo(lmms):
    """The smallest lmms-eval model: answers "A" and notes whether lmms-eval's response cache asked."""

    asked = None

    def generate_until(self, requests):
        _Echo.asked = asked_by_response_cache()
        return ["A"] * len(requests)

    def loglikelihood(self, requests):
        raise NotImplementedError

    def generate_until_multi_round(self, requests):
        raise NotImplementedError


def test_the_model_knows_when_lmms_eval_response_cache_asks(tmp_path):
    request = Instance(request_type="generate_until", arguments=("ctx", None, {"temperature": 0}, 0, "flow_x", "test"),
                       idx=0, metadata={"task": "flow_x", "doc_id": 0, "repeats": 1})
    cache = ResponseCache.create(str(tmp_path), model="m", model_args="")
    assert cache.execute(_Echo(), "generate_until", [request]) == ["A"] and _Echo.asked is True
    cache.close()
    _Echo().generate_until([request])
    assert _Echo.asked is False


def test_plain_replies_of_a_flow_model_take_their_edges_from_the_ledger(tmp_path):
    doc = {"question": "Why?", "video": "/v/1.mp4"}
    ledger = EdgeLedger(tmp_path)
    ledger.append("flow_x", 7, doc_key(doc), "r", FlowReply("B", 30, 120, cost=PrefillCost(0.5, 2048, 3840)))
    note_flow_model_loaded(ledger)  # as a flow model does; the autouse fixture forgets it after the test
    with pytest.raises(RuntimeError, match=r"outside lmms-eval's scoring phase"):
        attention_metrics("B", doc)
    set_task_context("flow_x")  # as lmms-eval's evaluator does before a task's process_results
    try:
        assert scoring_task() == "flow_x"
        assert attention_metrics("B", doc) == {"attention_edges": 30, "attention_kept": 0.25, "prefill_seconds": 0.5,
                                               "kv_cache_bytes": 2048, "attention_flops": 3840}
        with pytest.raises(ValueError, match=r"without its attention-edge counts"):
            attention_metrics("B")  # a scorer that does not pass the doc
    finally:
        set_task_context(None)


# -- a flow model's generation, in process -------------------------------------------------
@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    kinds = {"good_a": "good", "long": "long", "good_b": "good", "too_wide": "too_wide", "missing": "missing"}
    return {name: write_video(kind, doc_id, folder) for doc_id, (name, kind) in enumerate(kinds.items())}


def flow_model(tiny_model_dir, **options):
    arguments = ",".join(f"{key}={value}" for key, value in {**SMALL, **options}.items())
    return Qwen2_5_VLFlow.create_from_arg_string(f"pretrained={tiny_model_dir},regime=effective,{arguments}",
                                                 {"batch_size": 2})


def ask(model, videos: list[str]):
    """The model's results for one question per video, asked as lmms-eval asks a chat model."""
    docs = [{"video": video, "question": f"Question {i}: which way does it move?"} for i, video in enumerate(videos)]
    model.task_dict = {"flow_x": {"test": docs}}

    def messages(doc):
        return video_messages(doc["video"], doc["question"])

    return model.generate_until([
        Instance(request_type="generate_until", idx=0,
                 arguments=(doc["question"], messages, {"max_new_tokens": 3}, i, "flow_x", "test"),
                 metadata={"task": "flow_x", "doc_id": i, "repeats": 1})
        for i, doc in enumerate(docs)])


def summary(result) -> tuple:
    text = result.text
    return str(text), text.edges, text.failure, result.token_counts and result.token_counts.output_tokens


def test_failures_inside_batches_cost_only_their_sample(tiny_model_dir, videos):
    model = flow_model(tiny_model_dir, video_token_budget=BUDGET)
    order = ["good_a", "good_b", "long", "too_wide", "missing"]
    # Batches of 2. The second fails inside lmms-eval's generation (it samples the batch's videos at
    # the first one's frame count, which the too-wide clip does not have): its two prompts run again
    # one at a time, the long clip then stops at its prefill (over budget), the too-wide clip in
    # generation. The missing file fails the last batch while its prompt is built.
    results = dict(zip(order, map(summary, ask(model, [videos[name] for name in order]))))
    assert results["long"][2] == f"flow_x doc 2 ({videos['long']}): its video has 16 tokens, over video_token_budget={BUDGET}"
    assert results["missing"][2] == f"flow_x doc 4 ({videos['missing']}): no such file"
    assert results["too_wide"][2].startswith(
        f"flow_x doc 3 ({videos['too_wide']}): generation failed (ValueError: absolute aspect ratio must be smaller")
    assert all(results[name][:2] + results[name][3:] == ("", 0, None) for name in ("long", "missing", "too_wide"))
    # the good ones, answered in a call that an error then ended, are what a clean call gives,
    # token counts included (counted by forward passes there, reported by lmms-eval here)
    clean = [summary(result) for result in ask(model, [videos["good_a"], videos["good_b"]])]
    assert [results["good_a"], results["good_b"]] == clean
    assert all(edges > 0 and failure is None and tokens == 3 for _, edges, failure, tokens in clean)


def test_strict_raises_at_the_first_failed_sample(tiny_model_dir, videos):
    model = flow_model(tiny_model_dir, strict="true")
    with pytest.raises(FailedSampleError, match=rf"^flow_x doc 1 \({videos['missing']}\): no such file$"):
        ask(model, [videos["good_a"], videos["missing"]])


@pytest.mark.parametrize("regime", ["full", "effective", "random", "staged", "temporal_exit"])
def test_the_same_arguments_give_the_same_replies_and_edges(tiny_model_dir, videos, regime):
    model = Qwen2_5_VLFlow.create_from_arg_string(
        f"pretrained={tiny_model_dir},regime={regime}," + ",".join(f"{k}={v}" for k, v in SMALL.items()))
    clips = [videos["good_a"], videos["good_b"]]
    first, second = ([summary(result) for result in ask(model, clips)] for _ in range(2))
    assert first == second and all(edges > 0 and failure is None for _, edges, failure, _ in first)


def test_an_interrupted_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "results" / "leaderboard.csv"
    atomic_write_text(path, "old\n")
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "not bytes")  # fails mid-write
    assert path.read_text() == "old\n" and [p.name for p in path.parent.iterdir()] == ["leaderboard.csv"]
    atomic_write_text(path, "new\n")
    assert path.read_text() == "new\n"


def test_a_budget_failure_that_lmms_eval_catches_is_still_a_failed_sample(family_model_dir, videos):
    """lmms-eval's llava_hf wrapper catches errors of ``generate`` and answers "": the sample stays failed."""
    from lmms_eval_flow.model_wrappers.llava_onevision_flow import LlavaOnevisionFlow

    model = LlavaOnevisionFlow.create_from_arg_string(
        f"pretrained={family_model_dir('llava_onevision')},regime=effective,device=cpu,device_map=cpu,video_token_budget=1")
    [result] = ask(model, [videos["good_a"]])
    assert re.fullmatch(rf"flow_x doc 0 \({videos['good_a']}\): its video has \d+ tokens, over video_token_budget=1",
                        result.text.failure)
    assert str(result.text) == "" and result.text.edges == 0


def test_an_unwritable_edge_ledger_stops_the_run(tiny_model_dir, videos, tmp_path):
    """Under --use_cache an answer must reach the ledger: a ledger that cannot be written is an
    error of the run, not a failure of each sample."""
    blocked = tmp_path / "not_a_folder"
    blocked.write_text("")
    model = flow_model(tiny_model_dir, edge_ledger=blocked)
    cache = ResponseCache.create(str(tmp_path / "cache"), model="qwen2_5_vl_flow", model_args="")
    model.task_dict = {"flow_x": {"test": [{"video": videos["good_a"], "question": "Which way?"}]}}
    request = Instance(request_type="generate_until", idx=0,
                       arguments=("Which way?", lambda doc: video_messages(doc["video"], doc["question"]),
                                  {"max_new_tokens": 2, "temperature": 0}, 0, "flow_x", "test"),
                       metadata={"task": "flow_x", "doc_id": 0, "repeats": 1})
    with pytest.raises(LedgerError, match=rf"cannot write the edge ledger in {blocked}/\w+ .*give a writable folder"):
        cache.execute(model, "generate_until", [request])
    cache.close()


# -- errors that are not a sample's ---------------------------------------------------------
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_the_same_generation_error_three_times_in_a_row_stops_the_run(tiny_model_dir, videos):
    """Without device_map=cpu every sample's inputs go to a GPU that is not there. Another error
    (the too-wide clip's) starts the count again; a sample's own failure (the missing file)
    neither counts nor breaks the row; the third in a row stops the run."""
    model = Qwen2_5_VLFlow.create_from_arg_string(
        f"pretrained={tiny_model_dir},regime=effective,max_pixels=3136,min_pixels=3136,max_num_frames=8")
    order = ["good_a", "too_wide", "good_b", "missing", "good_a", "good_b", "good_a"]
    with pytest.raises(RepeatedGenerationError, match=r"^3 samples in a row \(flow_x doc 2, flow_x doc 4, flow_x doc 5\) "
                       r"failed in generation with the same error, so its cause is the run's, not theirs: RuntimeError: "
                       r"Found no NVIDIA driver .* Fix: this machine has no CUDA GPU: run on the CPU with "
                       r"device=cpu,device_map=cpu in --model_args\.$"):
        ask(model, [videos[name] for name in order])
    failures = [reply and reply.text.failure for reply in model._replies]
    assert failures[1] == f"flow_x doc 1 ({videos['too_wide']}): generation failed (ValueError: absolute aspect ratio " \
                          "must be smaller than 200, got 250.0)"
    assert failures[3] == f"flow_x doc 3 ({videos['missing']}): no such file"
    assert all("Found no NVIDIA driver" in failures[i] for i in (0, 2, 4, 5)) and failures[6] is None


def test_a_task_whose_every_sample_failed_has_no_accuracy():
    check_some_ran([None, "flow_x doc 1 (/v/1.mp4): no such file"])  # one ran: scored as usual
    check_some_ran([])
    with pytest.raises(NothingRan, match=r"^every one of the 2 samples of a task failed, so it has no accuracy .* no "
                                         r"results are written\. The failures: a: no such file; b: the doc has no video$"):
        failed_samples(["a: no such file", "b: the doc has no video"])  # the tasks' aggregation
    with pytest.raises(NothingRan, match=r"^every one of the 5 samples .* None of the videos is there: are the "
                                         r"benchmark's video archives extracted .* The failures: a: no such file; "
                                         r"b: no such file; c: no such file; and 1 more$"):
        check_some_ran(["a: no such file", "a: no such file", "b: no such file", "c: no such file", "d: no such file"])


def test_an_edge_ledger_is_answered_into_by_one_process_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setattr(ledger_module.held_ledger_files, "locks", {})  # released when the test ends
    EdgeLedger(tmp_path, rank=0).hold()
    EdgeLedger(tmp_path, rank=0).hold()  # this process holds it already
    holder = json.loads((tmp_path / "rank_0.holder.json").read_text())
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()

    def hold_elsewhere(rank):
        code = f"from lmms_eval_flow.harness.ledger import EdgeLedger; EdgeLedger({str(tmp_path)!r}, rank={rank}).hold()"
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)

    refused = hold_elsewhere(0)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"lmms-eval-flow stopped the run: LedgerInUse: the edge ledger {tmp_path / 'rank_0.jsonl'} is in use by another "
        f"run (pid {os.getpid()} on {holder['host']}, since {holder['since']}: {holder['command']}): both would answer "
        f"the same docs into it. Wait for that run to end, or give this one its own folder with edge_ledger=DIR")
    assert hold_elsewhere(1).returncode == 0  # another process of the same run writes its own file


def test_qwen3_vl_flow_samples_each_video_at_its_own_frame_count(family_model_dir, videos):
    """lmms-eval's Qwen3-VL wrapper gives a batch one frame count; a 4-frame and an 8-frame clip
    in one batch run one at a time, each as in a batch of its own."""
    from lmms_eval_flow.model_wrappers.qwen3_vl_flow import Qwen3_VLFlow

    assert [frames_to_sample(32, frames) for frames in (1, 2, 4, 7, 40)] == [2, 2, 4, 6, 32]
    arguments = f"pretrained={family_model_dir('qwen3_vl')},regime=effective,device=cpu,device_map=cpu," \
                "max_pixels=4096,min_pixels=4096"  # max_num_frames: lmms-eval's 32
    batched, alone = (Qwen3_VLFlow.create_from_arg_string(arguments, {"batch_size": size}) for size in (2, 1))
    clips = [videos["good_a"], videos["long"]]
    results = [summary(result) for result in ask(batched, clips)]
    assert results == [summary(result) for clip in clips for result in ask(alone, [clip])]
    assert all(failure is None for _, _, failure, _ in results) and results[0][1] < results[1][1]  # 4 < 8 frames
