"""Bad or changed annotations through the real lmms-eval CLI, on copies of the TOMATO fixture.

- a fixed annotation, or another copy of the folder, is what gets scored (no stale cache);
- an answer index outside the options, a null or missing field, a video path that leaves the
  data folder: each doc fails alone when the task loads, named, counted in ``failed_samples``
  and scored wrong, under ``flow_replay``, under a flow model that generates the other docs and
  under lmms-eval's own Qwen2.5-VL wrapper, which answers its prompt (the problem as text);
- an annotation file that is not UTF-8 stops the run before anything runs, naming the file.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from conftest import SMALL_VIDEO_ARGS, TASKS_DIR
from lmms_eval.utils import sanitize_model_name
from task_fixtures import FIXTURES

from lmms_eval_flow.harness import runner
from lmms_eval_flow.scoring.answers import parse_choice
from lmms_eval_flow.scoring.task_utils import lettered
from lmms_eval_flow.toy.clips import render_clip

TASK = "flow_tomato"
DOCS = [json.loads(line) for line in (FIXTURES / "tomato" / "data" / "test.jsonl").read_text().splitlines()]
RIGHT = ["ABCDE"[doc["answer"]] for doc in DOCS]  # the fixture's key, one letter per doc


def tomato_copy(root, docs=DOCS, videos=False):
    """A copy of the TOMATO fixture under ``root/tomato`` holding ``docs``; ``root`` is the data dir."""
    folder = root / "tomato"
    shutil.copytree(FIXTURES / "tomato", folder)
    write_docs(folder, docs)
    if videos:
        for relative, spec in json.loads((folder / "clips.json").read_text()).items():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            render_clip(spec, folder / relative)
    return folder


def write_docs(folder, docs) -> None:
    (folder / "data" / "test.jsonl").write_text("".join(json.dumps(doc) + "\n" for doc in docs))


def edited(**changes) -> list[dict]:
    """The fixture's docs with ``{doc_id: {field: value or DELETE}}`` applied."""
    docs = [dict(doc) for doc in DOCS]
    for doc_id, fields in changes.items():
        for name, value in fields.items():
            if value is DELETE:
                del docs[int(doc_id[1:])][name]
            else:
                docs[int(doc_id[1:])][name] = value
    return docs


DELETE = object()


def lmms_eval(tmp_path, data_dir, name, model, model_args, *extra, hf_home=None):
    """One CLI run on ``flow_tomato`` reading ``data_dir``: (exit code, log, output folder)."""
    out = tmp_path / name
    command, env = runner.lmms_eval_command(model, model_args, TASK, TASKS_DIR, out, *extra)
    env["LMMS_EVAL_FLOW_DATA_DIR"] = str(data_dir)
    if hf_home:
        env["HF_HOME"] = str(hf_home)
    run = subprocess.run(command, env=env, capture_output=True, text=True)
    return run.returncode, run.stdout + run.stderr, out


def replay(tmp_path, data_dir, name, replies, **kwargs):
    """``flow_replay`` answering ``replies`` (one per doc id): the log, the results and the logged
    samples of a run that exited 0 and wrote its results."""
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(json.dumps({"task": TASK, "doc_id": i, "reply": r}) + "\n" for i, r in enumerate(replies)))
    code, log, out = lmms_eval(tmp_path, data_dir, name, "flow_replay", f"replies={path}", **kwargs)
    assert code == 0, log[-3000:]
    results, samples = runner.read_results(out, TASK, code, log)
    return log, results["results"][TASK], sorted(samples[TASK], key=lambda s: s["doc_id"])


def reason(doc_id: int, problem: str) -> str:
    return f"tomato default/test doc {doc_id} (data/test.jsonl): {problem}"


# -- 1. the annotations scored are the ones in the folder now ----------------------------------

def test_a_fixed_annotation_and_another_copy_are_scored_not_the_first_copy_loaded(tmp_path):
    hf_home = tmp_path / "hf"  # one datasets cache for every run, as on a user's machine
    first = tomato_copy(tmp_path / "first")
    log, metrics, samples = replay(tmp_path, first.parent, "before", RIGHT, hf_home=hf_home)
    assert metrics["accuracy,none"] == 1.0 and [s["target"] for s in samples] == RIGHT
    assert f"tomato: reading {first}" in log

    write_docs(first, edited(d0={"answer": 4}))  # fix doc 0's answer in place: "E", not "C"
    _, metrics, samples = replay(tmp_path, first.parent, "fixed", RIGHT, hf_home=hf_home)
    assert samples[0]["target"] == "E" and samples[0]["accuracy"] == 0.0
    assert metrics["accuracy,none"] == pytest.approx(5 / 6)

    other = tomato_copy(tmp_path / "other", edited(d1={"answer": 0}, d2={"answer": 0}))
    log, metrics, samples = replay(tmp_path, other.parent, "other", RIGHT, hf_home=hf_home)
    assert [s["target"] for s in samples] == ["C", "A", "A", *RIGHT[3:]]
    assert metrics["accuracy,none"] == pytest.approx(4 / 6)
    assert f"tomato: reading {other}" in log


# -- 2, 4, 9. bad docs fail alone when the task loads ------------------------------------------

BAD = {  # doc id -> (change, what its failed_samples reason says)
    1: ({"answer": -1}, "field 'answer' = -1 is not an option index; valid: 0 to 4 (5 options)"),
    2: ({"answer": None}, "field 'answer' is null or missing"),
    3: ({"answer": 4}, "field 'answer' = 4 is not an option index; valid: 0 to 3 (4 options)"),
    4: ({"question": DELETE}, "field 'question' is null or missing"),
}


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    """Every doc answered with the last option's letter, which -1 would read as right."""
    tmp_path = tmp_path_factory.mktemp("replayed")
    folder = tomato_copy(tmp_path / "data", edited(**{f"d{i}": change for i, (change, _) in BAD.items()}))
    last = ["ABCDE"[len(doc["options"]) - 1] for doc in DOCS]
    return replay(tmp_path, folder.parent, "bad", [RIGHT[0], *last[1:]])


def test_an_answer_index_outside_the_options_is_a_failed_sample_not_the_last_option(replayed):
    log, metrics, samples = replayed
    assert reason(1, BAD[1][1]) in log  # named when the task loads
    assert samples[1]["filtered_resps"] == "E" and samples[1]["accuracy"] == 0.0  # -1 is not "E"
    assert samples[1]["failed_samples"] == reason(1, BAD[1][1])
    assert samples[1]["target"] == f"(invalid doc: {reason(1, BAD[1][1])})"
    assert samples[3]["failed_samples"] == reason(3, BAD[3][1])  # one past the last option


def test_bad_docs_are_failed_alone_named_counted_and_scored_wrong(replayed):
    log, metrics, samples = replayed
    assert [s["doc_id"] for s in samples] == list(range(len(DOCS)))  # none dropped
    expected = [reason(i, problem) for i, (_, problem) in sorted(BAD.items())]
    assert (f"tomato default/test: {len(BAD)} of {len(DOCS)} docs are invalid and will be failed samples, "
            "scored as wrong:\n" + "\n".join(expected)) in log
    assert metrics["failed_samples,none"] == {"count": len(BAD), "reasons": expected}
    assert [s["failed_samples"] for s in samples] == [None, *expected, None]
    # doc 0 is answered right, and so is doc 5, whose key is its last option ("C")
    assert [s["accuracy"] for s in samples] == [1.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    assert metrics["accuracy,none"] == pytest.approx(2 / 6)
    assert metrics["accuracy_count,none"] == 1.0 and metrics["accuracy_visual_cues,none"] == 1.0
    assert all(s[f"accuracy_{name}"] is None for s in samples[1:5] for name in ("count", "direction", "rotation"))


def test_a_flow_model_generates_the_good_docs_and_fails_bad_docs_and_paths_out_of_the_data(tmp_path, tiny_model_dir):
    """A null answer used to end the run after all generation; video paths leaving the data
    folder were read wherever they pointed (here: real clips outside it)."""
    outside = render_clip(json.loads((FIXTURES / "tomato" / "clips.json").read_text())["videos/human/0101-00.mp4"],
                          tmp_path / "outside.mp4")
    docs = edited(d1={"video_path": "../../outside.mp4"}, d2={"video_path": str(outside)}, d5={"answer": None})
    folder = tomato_copy(tmp_path / "data", docs, videos=True)
    code, log, out = lmms_eval(tmp_path, folder.parent, "flow", "qwen2_5_vl_flow",
                               f"pretrained={tiny_model_dir},regime=effective,{SMALL_VIDEO_ARGS}",
                               "--gen_kwargs", "max_new_tokens=2")
    assert code == 0, log[-3000:]
    results, samples = runner.read_results(out, TASK, code, log)
    samples = sorted(samples[TASK], key=lambda s: s["doc_id"])
    leaves = "leaves the data folder; paths must be relative, without '..'"
    expected = {1: reason(1, f"video path '../../outside.mp4' {leaves}"), 2: reason(2, f"video path {str(outside)!r} {leaves}"),
                5: reason(5, "field 'answer' is null or missing")}
    reported = results["results"][TASK]["failed_samples,none"]
    assert reported["count"] == 3
    for doc_id, problem in expected.items():
        message = f"flow_tomato doc {doc_id}: its prompt could not be built (DocProblem: {problem})"
        assert message in reported["reasons"] and samples[doc_id]["failed_samples"] == message
        assert samples[doc_id]["accuracy"] == 0.0 and samples[doc_id]["attention_edges"] is None
    for doc_id in (0, 3, 4):  # generated through the model, with their edges
        assert samples[doc_id]["failed_samples"] is None and samples[doc_id]["attention_edges"] > 0


def test_lmms_evals_own_wrapper_answers_the_good_docs_and_a_bad_doc_fails_alone(tmp_path, tiny_model_dir):
    """Under a model without attention regimes a bad doc used to end the run (exit 0, no results):
    its prompt raised in lmms-eval's wrapper. Now its prompt is its problem as text, with no video."""
    folder = tomato_copy(tmp_path / "data", edited(d1=BAD[1][0]), videos=True)  # answer -1
    code, log, out = lmms_eval(tmp_path, folder.parent, "stock", "qwen2_5_vl", f"pretrained={tiny_model_dir},{SMALL_VIDEO_ARGS}",
                               "--gen_kwargs", "max_new_tokens=2")
    assert code == 0, log[-3000:]
    results, samples = runner.read_results(out, TASK, code, log)
    samples = sorted(samples[TASK], key=lambda s: s["doc_id"])
    problem = reason(1, BAD[1][1])
    assert [s["doc_id"] for s in samples] == list(range(len(DOCS)))
    assert results["results"][TASK]["failed_samples,none"] == {"count": 1, "reasons": [problem]}
    assert samples[1]["failed_samples"] == problem and samples[1]["accuracy"] == 0.0
    assert samples[1]["target"] == f"(invalid doc: {problem})"
    for sample in samples[:1] + samples[2:]:  # answered and scored on their own key
        assert sample["failed_samples"] is None and isinstance(sample["filtered_resps"], str)
        assert sample["target"] == RIGHT[sample["doc_id"]]
        picked = parse_choice(sample["filtered_resps"], lettered(DOCS[sample["doc_id"]]["options"]))
        assert sample["accuracy"] == float(picked == sample["target"])


# -- 4. an annotation file that cannot be read -------------------------------------------------

def test_an_annotation_file_that_is_not_utf8_stops_the_run_naming_the_file(tmp_path):
    folder = tomato_copy(tmp_path / "data")
    data = folder / "data" / "test.jsonl"
    second = data.read_bytes().split(b"\n")
    second[1] = second[1].replace(b"Which direction", b"Which dir\xe9ction")  # Latin-1, not UTF-8
    data.write_bytes(b"\n".join(second))
    replies = tmp_path / "replies.jsonl"
    replies.write_text("".join(json.dumps({"task": TASK, "doc_id": i, "reply": r}) + "\n" for i, r in enumerate(RIGHT)))
    code, log, out = lmms_eval(tmp_path, folder.parent, "unreadable", "flow_replay", f"replies={replies}")
    offset = data.read_bytes().index(b"\xe9")
    assert log.rstrip().endswith(f"lmms-eval-flow stopped the run: UnreadableData: the annotation file {data} is not "
                                 f"UTF-8 text: byte 0xe9 at line 2 (offset {offset}) is invalid continuation byte; "
                                 "save it as UTF-8")
    assert code == 1
    assert not list(out.rglob("*_results.json")) and not list(out.rglob("*_samples_*.jsonl"))


def test_results_lmms_evals_own_wrapper_could_not_write_stop_a_run_on_a_flow_task(tmp_path, tiny_model_dir):
    """The results check is installed when a flow task loads, so it holds under lmms-eval's own
    wrappers too: a plain file where lmms-eval makes the model's results folder, and the run
    exits 1 naming it, where lmms-eval alone would log the error and exit 0."""
    folder = tomato_copy(tmp_path / "data", videos=True)
    blocked = tmp_path / "stock" / sanitize_model_name(str(tiny_model_dir))
    blocked.parent.mkdir()
    blocked.write_text("")
    code, log, out = lmms_eval(tmp_path, folder.parent, "stock", "qwen2_5_vl", f"pretrained={tiny_model_dir},{SMALL_VIDEO_ARGS}",
                               "--gen_kwargs", "max_new_tokens=2", "--limit", "1")
    assert code == 1, log[-3000:]
    assert f"lmms-eval-flow stopped the run: ResultsNotWritten: lmms-eval did not write the run's results: {blocked}/" in log
    assert blocked.read_text() == "" and not list(out.rglob("*_results.json"))
