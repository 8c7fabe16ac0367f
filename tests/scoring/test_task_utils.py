"""The pieces the benchmark tasks share: data source, videos, sizes, windows, configs, replay, judge."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import datasets
import numpy as np
import pytest
from conftest import TASKS_DIR
from lmms_eval.api.instance import Instance
from lmms_eval.protocol import ChatMessages
from lmms_eval.utils import load_yaml_config
from lmms_eval_flow.model_wrappers.replay import Replay, load_replies
from loguru import logger
from qwen_vl_utils import process_vision_info
from task_fixtures import FIXTURES, fixture_docs

from lmms_eval_flow.scoring import judge
from lmms_eval_flow.toy.clips import render_clip
from lmms_eval_flow.harness.reply import FlowReply
from lmms_eval_flow.scoring.task_utils import (
    DATA_DIR_VARIABLE,
    Benchmark,
    DocProblem,
    UnreadableData,
    inside_data,
    mean_of_scored,
    option_index,
    require,
    score,
    video_messages,
)

BENCHMARK = Benchmark("demo", "org/Demo", "demo_cache", published_sizes={("default", "test"): ("flow_demo", 3)})


@pytest.fixture
def warnings():
    messages = []
    sink = logger.add(lambda message: messages.append(str(message)), level="WARNING")
    yield messages
    logger.remove(sink)


def test_without_an_override_the_hub_dataset_is_read_as_upstream_reads_it(monkeypatch, tmp_path):
    monkeypatch.delenv(DATA_DIR_VARIABLE, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    assert BENCHMARK.dataset_path() == "org/Demo"
    assert BENCHMARK.dataset_kwargs() == {"token": True, "video": True, "cache_dir": "demo_cache"}
    assert BENCHMARK.video_roots()[0] == tmp_path / "demo_cache"


def test_the_override_folder_replaces_the_hub(monkeypatch, tmp_path):
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "test.jsonl").write_text('{"question": "q0"}\n')
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(tmp_path))
    assert BENCHMARK.dataset_path() == str(tmp_path / "demo")
    assert list(BENCHMARK.dataset_kwargs()) == ["cache_dir"]  # no download, no video archives
    assert BENCHMARK.video_roots() == [tmp_path / "demo"]


def test_a_local_folder_is_cached_under_the_key_of_its_annotations(monkeypatch, tmp_path):
    """datasets alone keys a local folder by its name: a fixed or other copy would not be read."""
    for copy in ("a", "b"):
        (tmp_path / copy / "demo").mkdir(parents=True)
        (tmp_path / copy / "demo" / "test.jsonl").write_text('{"question": "q0", "answer": 1}\n')

    def cache_dir(copy: str) -> Path:
        monkeypatch.setenv(DATA_DIR_VARIABLE, str(tmp_path / copy))
        return Path(BENCHMARK.dataset_kwargs()["cache_dir"])

    first = cache_dir("a")
    assert first.parent == Path(datasets.config.HF_DATASETS_CACHE) / "lmms_eval_flow" and first.name.startswith("demo-")
    assert cache_dir("b") == first  # the same annotations share a cache
    (tmp_path / "b" / "demo" / "test.jsonl").write_text('{"question": "q0", "answer": 2}\n')
    assert cache_dir("b") != first and cache_dir("a") == first
    (tmp_path / "b" / "demo" / "README.md").write_text("# a README holds the configs: it is part of the key\n")
    assert len({cache_dir("a"), cache_dir("b"), first}) == 2 and cache_dir("b") != first


@pytest.mark.parametrize("name, content, message", [
    ("test.jsonl", b'{"q": "q0"}\n{"q": "caf\xe9"}\n', r"test\.jsonl is not UTF-8 text: byte 0xe9 at line 2 \(offset 22\) is "
                                                     "invalid continuation byte; save it as UTF-8"),
    ("test.jsonl", b'{"q": "q0"}\n{"q" "q1"}\n', r"test\.jsonl is not valid JSON Lines: line 2, column 6: Expecting ':'"),
    ("test.json", b'[{"q": "q0"},\n {"q": "q1"]\n', r"test\.json is not valid JSON: line 2, column 12: Expecting ','"),
])
def test_an_annotation_file_that_cannot_be_read_is_named_with_the_reason(monkeypatch, tmp_path, name, content, message):
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / name).write_bytes(content)
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(tmp_path))
    with pytest.raises(UnreadableData, match=message):
        BENCHMARK.dataset_kwargs()


def test_json_lines_in_a_json_file_are_read_and_a_folder_without_annotations_is_named(monkeypatch, tmp_path):
    (tmp_path / "lines" / "demo").mkdir(parents=True)
    (tmp_path / "lines" / "demo" / "test.json").write_text('{"q": "q0"}\n{"q": "q1"}\n')  # datasets reads these too
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(tmp_path / "lines"))
    assert "cache_dir" in BENCHMARK.dataset_kwargs()
    (tmp_path / "empty" / "demo").mkdir(parents=True)
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(tmp_path / "empty"))
    with pytest.raises(UnreadableData, match=r"cannot find the annotation files of .*empty/demo"):
        BENCHMARK.dataset_kwargs()


def test_video_paths_from_the_data_stay_inside_the_data_folder(monkeypatch, tmp_path):
    assert inside_data("videos/../human/a.mp4") == "human/a.mp4"
    for path in ("../a.mp4", "videos/../../a.mp4", "/etc/passwd", ".."):
        with pytest.raises(DocProblem, match=f"video path '{path}' leaves the data folder"):
            inside_data(path)
    (tmp_path / "demo").mkdir()
    (tmp_path / "outside.mp4").write_bytes(b"a file that exists, outside the data folder")
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(tmp_path))
    for path in ("../outside.mp4", str(tmp_path / "outside.mp4")):
        with pytest.raises(DocProblem, match="leaves the data folder"):
            BENCHMARK.video("missing.mp4", path)


def test_fields_and_answers_are_checked_against_the_options():
    doc = {"question": "q", "answer": 2, "flag": True, "ratio": 2.0, "none": None}
    require(doc, question=str, answer=int)
    for kinds, message in [({"missing": str}, "field 'missing' is missing"), ({"none": str}, "field 'none' is null"),
                           ({"flag": int}, "field 'flag' = True is bool, not int"),
                           ({"question": (int, float)}, "field 'question' = 'q' is str, not int or float")]:
        with pytest.raises(DocProblem, match=message):
            require(doc, **kinds)
    options = ["a", "b", "c"]
    assert option_index(doc, "answer", options) == 2 and option_index({"answer": " 1"}, "answer", options) == 1
    for answer in (-1, 3, "-1", "two"):  # -1 is not the last option
        with pytest.raises(DocProblem, match=r"field 'answer' = .* is not an option index; valid: 0 to 2 \(3 options\)"):
            option_index({"answer": answer}, "answer", options)
    for answer, kind in ((True, "bool"), (2.0, "float")):
        with pytest.raises(DocProblem, match=f"field 'answer' = {answer} is {kind}, not int or str"):
            option_index({"answer": answer}, "answer", options)


BENCHMARK_CONFIGS = [("tempcompass", c, "flow_tempcompass") for c in ("multi-choice", "yes_no", "caption_matching", "captioning")] + [
    ("tvbench", c, "flow_tvbench") for c in ("action_antonym", "action_count", "action_localization", "action_sequence",
                                             "egocentric_sequence", "moving_direction", "object_count", "object_shuffle",
                                             "scene_transition", "unexpected_action")] + [
    ("tomato", None, "flow_tomato"), ("nextqa", "MC", "flow_nextqa"), ("activitynetqa", None, "flow_activitynetqa"),
    ("longvideobench", None, "flow_longvideobench")]


@pytest.mark.parametrize("name, config, task", BENCHMARK_CONFIGS, ids=lambda value: str(value))
def test_every_fixture_doc_passes_its_benchmark_check_and_a_broken_one_does_not(name, config, task):
    """The checks accept the real schema (the fixtures), and refuse each doc once its answer is gone."""
    import importlib

    utils = importlib.import_module(f"lmms_eval_flow.tasks.{task}.utils")
    docs = fixture_docs(name, config)
    answer = next(field for field in ("answer", "correct_choice") if field in docs[0])
    for doc in docs:
        utils.check_doc({**doc, "flow_config": config or "default"})
        with pytest.raises(DocProblem, match=f"field '{answer}' is null"):
            utils.check_doc({**doc, answer: None, "flow_config": config or "default"})


@pytest.mark.parametrize("name, config, task, field", [
    ("nextqa", "MC", "flow_nextqa", "type"), ("activitynetqa", None, "flow_activitynetqa", "type"),
    ("longvideobench", None, "flow_longvideobench", "question_category"), ("tomato", None, "flow_tomato", "demonstration_type")])
def test_a_doc_whose_category_is_missing_or_unknown_is_a_doc_problem_at_load(name, config, task, field):
    """The breakdown fields are read like any other: a bad one is the doc's problem, found when the task loads."""
    import importlib

    utils = importlib.import_module(f"lmms_eval_flow.tasks.{task}.utils")
    doc = fixture_docs(name, config)[0]
    with pytest.raises(DocProblem, match=f"field '{field}' is missing, not one of"):
        utils.check_doc({**{key: value for key, value in doc.items() if key != field}, "flow_config": config or "default"})
    with pytest.raises(DocProblem, match=f"field '{field}' = 'XX' is not one of"):
        utils.check_doc({**doc, field: "XX", "flow_config": config or "default"})
    docs = utils.process_docs(datasets.Dataset.from_list([doc, {**doc, field: None}]))
    assert docs[0]["flow_problem"] is None
    assert "doc 1 " in docs[1]["flow_problem"] and f"field '{field}' = None is not one of" in docs[1]["flow_problem"]


def test_a_nextqa_question_counts_in_its_type_and_its_group():
    """TP (previous) and TN (next) are one before/after type, as NExT-QA's evaluation counts them."""
    from lmms_eval_flow.tasks.flow_nextqa import utils

    docs = list(utils.process_docs(datasets.Dataset.from_list(fixture_docs("nextqa", "MC"))))
    previous = docs[4]
    assert previous["type"] == "TP" and previous["answer"] == 0
    metrics = utils.process_results(previous, ["A"])
    scored = {name: value for name, value in metrics.items() if name.startswith("accuracy") and value is not None}
    assert scored == {"accuracy": 1.0, "accuracy_temporal": 1.0, "accuracy_temporal_before_after": 1.0}
    assert metrics["accuracy_temporal_when"] is None and metrics["accuracy_causal"] is None


def test_activitynetqa_reports_the_official_raw_match_with_the_normalised_one_beside_it():
    from lmms_eval_flow.tasks.flow_activitynetqa import utils

    docs = list(utils.process_docs(datasets.Dataset.from_list(fixture_docs("activitynetqa"))))
    dancing, two = docs[0], docs[2]  # a motion question answered "dancing", a number question answered "2"
    as_written = utils.process_results(dancing, ["dancing"])
    assert as_written["exact_match_raw"] == as_written["exact_match_raw_motion"] == as_written["exact_match_normalized"] == 1.0
    capitalised = utils.process_results(dancing, ["Dancing."])
    assert capitalised["exact_match_raw"] == capitalised["exact_match_raw_motion"] == 0.0
    assert capitalised["exact_match_normalized"] == 1.0
    spelled = utils.process_results(two, ["Two"])
    assert (spelled["exact_match_raw"], spelled["exact_match_normalized"]) == (0.0, 1.0)
    assert spelled["exact_match_raw_free"] == spelled["exact_match_raw_free_number"] == 0.0
    assert spelled["exact_match_raw_motion"] is None and spelled["truncated"] is None
    cut_off = utils.process_results(two, ["<think>one, two... or is it"])
    assert cut_off["truncated"] == 2
    assert cut_off["exact_match_raw"] == cut_off["exact_match_normalized"] == cut_off["token_f1"] == 0.0


def test_an_override_without_the_benchmark_folder_says_so_and_uses_the_hub(monkeypatch, tmp_path, warnings):
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(tmp_path))
    assert BENCHMARK.dataset_path() == "org/Demo"
    assert any("has no demo/ folder" in message for message in warnings)


def test_a_missing_video_names_every_place_looked_at(monkeypatch, tmp_path):
    (tmp_path / "demo" / "videos").mkdir(parents=True)
    (tmp_path / "demo" / "videos" / "b.mp4").write_bytes(b"")
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(tmp_path))
    assert BENCHMARK.video("videos/a.mp4", "videos/b.mp4") == str(tmp_path / "demo" / "videos" / "b.mp4")
    with pytest.raises(FileNotFoundError, match=r"videos/a\.mp4.*videos/c\.mp4"):
        BENCHMARK.video("videos/a.mp4", "videos/c.mp4")


def _dataset(rows: int, config: str = "default", split: str = "test") -> datasets.Dataset:
    info = datasets.DatasetInfo(config_name=config)
    return datasets.Dataset.from_dict({"question": [f"q{i}" for i in range(rows)]}, info=info, split=split)


def test_a_split_of_another_size_than_published_is_reported_with_both_counts(warnings):
    docs = BENCHMARK.prepare_docs(_dataset(2))
    [message] = [m for m in warnings if "published count" in m]
    assert "flow_demo" in message and "has 2 questions in default/test" in message and "published count is 3" in message
    assert docs["flow_config"] == ["default", "default"]
    assert docs["question"] == ["q0", "q1"]


def test_a_split_of_the_published_size_passes_quietly(warnings):
    BENCHMARK.prepare_docs(_dataset(3))
    BENCHMARK.prepare_docs(_dataset(5, config="other"))  # no published size for this config: nothing to say
    assert warnings == []


def test_the_fixtures_are_smaller_than_published_and_the_loader_says_so(warnings):
    """Fixtures go through the same check as real data; they are a few docs, so it warns."""
    tomato = load_yaml_config(str(TASKS_DIR / "flow_tomato" / "flow_tomato.yaml"))
    loaded = datasets.load_dataset(str(FIXTURES / "tomato"))["test"]
    tomato["process_docs"](loaded)
    assert any("flow_tomato" in m and "has 6 questions" in m and "published count is 1,484" in m for m in warnings)


def test_scores_carry_every_category_and_the_edges():
    reply = FlowReply("B", edges=30, full_edges=120)
    metrics = score(True, reply, "speed", ("action", "speed", "shape&trend"))
    assert metrics == {"accuracy": 1.0, "accuracy_action": None, "accuracy_speed": 1.0, "accuracy_shape_trend": None,
                       "attention_edges": 30, "attention_kept": 0.25, "failed_samples": None}
    assert score(False, "B") == {"accuracy": 0.0}
    with pytest.raises(ValueError, match="'dance' is not one of"):
        score(True, "B", "dance", ("action",))
    assert mean_of_scored([1.0, None, 0.0, None, 1.0]) == pytest.approx(2 / 3)
    assert np.isnan(mean_of_scored([None, None]))


def test_tvbench_windows_reach_the_video_reader(tmp_path):
    """The window goes through lmms-eval's chat protocol to qwen-vl-utils, which cuts the clip."""
    red_then_blue = {"frames": 16, "fps": 4, "background": "red", "objects": [
        {"shape": "square", "color": "blue", "start": [28, 28], "size": 200, "appear": 8}]}
    video = str(render_clip(red_then_blue, tmp_path / "clip.mp4"))

    def mean_rgb(messages):
        hf_messages = ChatMessages(messages=messages).to_hf_messages(video_kwargs={"nframes": 4, "max_pixels": 3136, "min_pixels": 3136})
        _, [frames], _ = process_vision_info(hf_messages, return_video_kwargs=True)
        return frames.float().mean(dim=(2, 3))  # (frames, rgb)

    whole = mean_rgb(video_messages(video, "Which colour?"))
    window = mean_rgb(video_messages(video, "Which colour?", start=2.25, end=3.75))
    assert (whole[0, 0] > whole[0, 2]) and (whole[-1, 2] > whole[-1, 0])  # red, then blue
    assert (window[:, 2] > window[:, 0]).all()  # the window shows the blue half only


def test_tvbench_docs_with_bounds_are_cut_and_others_are_not(monkeypatch, tmp_path):
    from lmms_eval_flow.tasks.flow_tvbench import utils

    for task, name in [("action_sequence", "1HGEX.mp4"), ("action_antonym", "S001C001P003R001A008_rgb.avi.mp4")]:
        (tmp_path / "tvbench" / "video" / task).mkdir(parents=True)
        (tmp_path / "tvbench" / "video" / task / name).write_bytes(b"")
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(tmp_path))
    sequence = {**fixture_docs("tvbench", "action_sequence")[0], "flow_config": "action_sequence"}
    antonym = {**fixture_docs("tvbench", "action_antonym")[0], "flow_config": "action_antonym"}
    [[cut, _]] = [turn["content"] for turn in utils.doc_to_messages(sequence)]
    [[whole, _]] = [turn["content"] for turn in utils.doc_to_messages(antonym)]
    assert cut == {"type": "video", "url": str(tmp_path / "tvbench/video/action_sequence/1HGEX.mp4"), "start_time": 0.5, "end_time": 3.5}
    assert whole == {"type": "video", "url": str(tmp_path / "tvbench/video/action_antonym/S001C001P003R001A008_rgb.avi.mp4")}


def test_tvbench_reads_the_first_line_of_a_reply_only():
    """As TVBench's infer.ipynb does (``llm_message.strip().split('\\n')[0]``): an explanation after
    the answer is not read, and an answer after a line of explanation is not credited; NExT-QA,
    which reads the whole reply, credits that one."""
    from lmms_eval_flow.tasks.flow_nextqa import utils as nextqa
    from lmms_eval_flow.tasks.flow_tvbench import utils

    doc = {**fixture_docs("tvbench", "action_antonym")[0], "flow_config": "action_antonym"}
    right = utils.doc_to_target(doc)
    wrong = next(key for key in "ABC" if key != right)

    def accuracy(reply):
        return utils.process_results(doc, [reply])["accuracy"]

    assert accuracy(f"  ({right}) it is.\nNot ({wrong}), which the video does not show.") == 1.0
    assert accuracy(f"<think>({wrong}) or ({right})?</think>\n({right})") == 1.0
    assert accuracy(f"Looking at the person closely.\n({right})") == 0.0
    assert accuracy(f"({wrong})\nOn second thought, ({right}).") == 0.0
    nextqa_doc = fixture_docs("nextqa", None)[0]
    nextqa_right = nextqa.doc_to_target(nextqa_doc)
    assert nextqa.process_results(nextqa_doc, [f"Looking closely.\n({nextqa_right})"])["accuracy"] == 1.0


@pytest.mark.parametrize("config", ["multi-choice", "caption_matching", "captioning"])
def test_tempcompass_options_and_keys_come_from_the_question(config):
    from lmms_eval_flow.tasks.flow_tempcompass import utils

    for doc in fixture_docs("tempcompass", config):
        doc = {**doc, "flow_config": config}
        options, key = utils.options(doc), utils.doc_to_target(doc)
        assert key in options and len(options) >= 2
        if config != "captioning":
            assert doc["answer"].endswith(options[key])


def test_tempcompass_reads_the_real_option_line_variants():
    from lmms_eval_flow.tasks.flow_tempcompass import utils

    doc = {"flow_config": "multi-choice", "answer": "D. away from the screen",
           "question": "Where is the car going?\nA. towards the screen\nB. left\nC.Both at once\n D. away from the screen"}
    assert utils.options(doc) == {"A": "towards the screen", "B": "left", "C": "Both at once", "D": "away from the screen"}
    assert utils.doc_to_target(doc) == "D"


def test_tempcompass_captioning_options_are_the_distinguishing_values():
    from lmms_eval_flow.tasks.flow_tempcompass import utils

    doc = {**fixture_docs("tempcompass", "captioning")[0], "flow_config": "captioning"}
    assert utils.options(doc) == {"A": "dribbling a basketball", "B": "passing a basketball", "C": "dunking a basketball"}
    # The official prompt is the question as it is; asked as a choice (the captioning_as_choice variant),
    # the options are the candidates' information, lettered.
    assert utils.doc_to_text(doc, {"post_prompt": {"captioning": ""}}) == doc["question"]
    text = utils.doc_to_text(doc, {"captioning_as_choice": True, "post_prompt": {"captioning": "\nLetter?"}})
    assert text.endswith("C. subject: man; action: dunking a basketball\nLetter?")
    assert utils.process_results(doc, ["A man is dunking a basketball."])["accuracy"] == 1.0


@pytest.mark.parametrize("yaml_path", sorted(p for p in TASKS_DIR.glob("flow_*/*.yaml") if "task" in load_yaml_config(str(p), mode="simple")
                                             and isinstance(load_yaml_config(str(p), mode="simple")["task"], str)),
                         ids=lambda p: p.stem)
def test_every_flow_task_reports_edges_and_keeps_replies_whole(yaml_path):
    config = load_yaml_config(str(yaml_path))
    metrics = {m["metric"]: m for m in config["metric_list"]}
    assert metrics["attention_edges"]["higher_is_better"] is False
    assert metrics["attention_kept"]["higher_is_better"] is False
    assert config["reasoning_tags"] == "none"
    assert config["generation_kwargs"]["do_sample"] is False


# The replay model's files.

def _jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_replies_load_by_doc_id_by_a_doc_field_or_from_lmms_eval_samples(tmp_path):
    by_id = _jsonl(tmp_path / "a.jsonl", [{"task": "t", "doc_id": 0, "reply": "A"}, {"task": "t", "doc_id": 1, "reply": "B\nC"}])
    assert load_replies(by_id) == {("t", 0): "A", ("t", 1): "B\nC"}
    by_key = _jsonl(tmp_path / "b.jsonl", [{"task": "t", "qid": "x7", "reply": "yes"}])
    assert load_replies(by_key, key="qid") == {("t", "x7"): "yes"}
    samples = tmp_path / "run"
    samples.mkdir()
    _jsonl(samples / "20260101_samples_flow_tomato.jsonl", [{"doc_id": 3, "doc": {"id": "c"}, "resps": [["D"]], "filtered_resps": ["D"]}])
    assert load_replies(samples) == {("flow_tomato", 3): "D"}
    assert load_replies(samples, key="id") == {("flow_tomato", "c"): "D"}


def test_bad_reply_files_fail_loudly(tmp_path):
    with pytest.raises(ValueError, match="two replies for t doc_id=0"):
        load_replies(_jsonl(tmp_path / "d.jsonl", [{"task": "t", "doc_id": 0, "reply": "A"}] * 2))
    with pytest.raises(ValueError, match="lacks reply"):
        load_replies(_jsonl(tmp_path / "e.jsonl", [{"task": "t", "doc_id": 0}]))
    with pytest.raises(FileNotFoundError):
        load_replies(tmp_path / "absent.jsonl")


def test_replay_answers_each_request_and_names_a_missing_one(tmp_path):
    model = Replay(replies=str(_jsonl(tmp_path / "r.jsonl", [{"task": "t", "doc_id": 0, "reply": "B"}])))
    model.task_dict = {"t": {"test": [{"q": 0}, {"q": 1}]}}

    def request(doc_id):
        return Instance(request_type="generate_until", arguments=("", None, {}, doc_id, "t", "test"), idx=0,
                        metadata={"task": "t", "doc_id": doc_id, "repeats": 1})

    assert model.generate_until([request(0)]) == ["B"]
    with pytest.raises(KeyError, match="no saved reply for t doc_id=1"):
        model.generate_until([request(1)])


# The optional judge.

@pytest.mark.parametrize("content, verdict", [
    ('{"correct": "yes", "score": 4}', (True, 4)),
    ('Sure: {"correct": "No", "score": 0}', (False, 0)),
])
def test_judge_verdicts_are_read(content, verdict):
    assert judge.parse_verdict(content) == verdict


@pytest.mark.parametrize("content", ["yes", '{"correct": "maybe", "score": 3}', '{"correct": "yes", "score": 9}', '{"score": 2}'])
def test_unreadable_judge_verdicts_are_errors(content):
    with pytest.raises(ValueError, match="judge"):
        judge.parse_verdict(content)


def test_a_half_configured_judge_is_an_error(monkeypatch):
    monkeypatch.delenv(judge.MODEL_VARIABLE, raising=False)
    monkeypatch.delenv(judge.URL_VARIABLE, raising=False)
    assert judge.configured_model() is None
    monkeypatch.setenv(judge.URL_VARIABLE, "http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match=judge.MODEL_VARIABLE):
        judge.configured_model()


def test_the_judge_is_asked_through_the_openai_protocol(monkeypatch):
    seen = []

    class Endpoint(BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append((self.path, self.headers.get("Authorization"), json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            body = json.dumps({"choices": [{"message": {"content": '{"correct": "yes", "score": 5}'}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv(judge.URL_VARIABLE, f"http://127.0.0.1:{server.server_port}/v1/")
    monkeypatch.setenv(judge.MODEL_VARIABLE, "judge-7b")
    monkeypatch.setenv(judge.KEY_VARIABLE, "secret")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    try:
        assert judge.judge("What colour is the ball?", "red", "It is red.") == (True, 5)
    finally:
        server.shutdown()
    [(path, authorization, payload)] = seen
    assert path == "/v1/chat/completions" and authorization == "Bearer secret"
    assert payload["model"] == "judge-7b" and payload["temperature"] == 0
    assert "Correct answer: red\nPredicted answer: It is red." in payload["messages"][-1]["content"]
