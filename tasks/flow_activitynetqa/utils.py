"""flow_activitynetqa: ActivityNet-QA's open-ended questions, scored offline.

A doc has ``video_name`` (the file is ``all_test/v_<video_name>.mp4``, ``.webm`` or ``.mkv``
under ``$HF_HOME/activitynetqa``, upstream's layout), ``question`` (lower case, no question
mark: shown capitalised with one, as upstream does), ``answer`` (a word or short phrase),
``question_id`` and ``type``: the question type, 0 motion, 1 spatial relation, 2 temporal
relation, 3-8 free, whose answer type is 3 yes/no, 4 colour, 5 object, 6 location, 7 number,
8 other.

The prompt is upstream lmms-eval's (``activitynetqa``): ActivityNet-QA's official code
(MILVLG/activitynet-qa ``evaluation/eval.py``) only scores predictions and has no prompt; the 64 new
tokens are lmms-eval's too. ``flow_activitynetqa_videollama3_style`` asks as VideoLLaMA3's own
evaluation does, which Map the Flow's code ships (``videollama3/evaluation/benchmarks/activitynet_qa.py``
of byminji/map-the-flow): "Question: " + the question as the dataset words it + "\nPlease watch the
video and answer the question clearly and concisely.\n", with its 2,048-token budget.

Metrics: ``exact_match_raw``, the official evaluation's accuracy (``evaluation/eval.py``: the
reply is the answer exactly, ``answers.raw_exact_match``), overall and per type as that script
reports it (``exact_match_raw_<type>``, the free types also pooled as ``exact_match_raw_free``);
beside it ``exact_match_normalized`` (normalised, yes/no answers read with the yes/no parser) and
``token_f1`` (word overlap), from ``lmms_eval_flow.scoring.answers``; ``judge_accuracy`` and
``judge_score`` only when an LLM judge is configured (``lmms_eval_flow.scoring.judge``).
"""

from __future__ import annotations

from lmms_eval_flow.harness.reply import flow_metrics
from lmms_eval_flow.scoring import judge
from lmms_eval_flow.scoring.answers import exact_match, raw_exact_match, strip_reasoning, token_f1
from lmms_eval_flow.scoring.task_utils import (
    Benchmark,
    category_scores,
    mean_of_scored,  # noqa: F401 (the YAML's per-type aggregation)
    problem_of,
    sample_outcomes,
    unscored,
)
from lmms_eval_flow.scoring.video_task import Category, Prompt, VideoTask, template_prompt

JUDGE_MODEL = judge.configured_model()  # recorded in the results' task metadata
FREE_ANSWER_TYPES = ("yes_no", "color", "object", "location", "number", "other")  # types 3-8
QUESTION_TYPES = Category("type", {0: ("motion",), 1: ("spatial_relation",), 2: ("temporal_relation",),
                                   **{3 + index: ("free", f"free_{name}") for index, name in enumerate(FREE_ANSWER_TYPES)}})


def question(doc: dict) -> str:
    return doc["question"].strip().capitalize().rstrip("?") + "?"


class ActivityNetQA(VideoTask):
    """The question as the prompt, the answer as the key."""

    def prompt(self, doc: dict, lmms_eval_specific_kwargs: dict | None) -> Prompt:
        """The question as upstream shows it, or as the dataset words it where the kwargs'
        ``question_format`` lays it out ("Question: {question}": VideoLLaMA3's evaluation)."""
        kwargs = lmms_eval_specific_kwargs or {}
        if "question_format" in kwargs:
            return template_prompt(kwargs, kwargs["question_format"].format(question=doc["question"]))
        return template_prompt(kwargs, question(doc))

    def target(self, doc: dict) -> str:
        return doc["answer"]


TASK = ActivityNetQA(
    benchmark=Benchmark(name="activitynetqa", hub_path="lmms-eval/ActivityNetQA", cache_dir="activitynetqa",
                        published_sizes={("default", "test"): ("flow_activitynetqa", 8000)}),
    required={"video_name": str, "question": str, "answer": str},
    videos=tuple(f"all_test/v_{{video_name}}.{extension}" for extension in ("mp4", "webm", "mkv")),
    categories=(QUESTION_TYPES,),
)
DATASET_PATH, DATASET_KWARGS = TASK.benchmark.dataset_path(), TASK.benchmark.dataset_kwargs()
check_doc, process_docs, doc_to_visual = TASK.check_doc, TASK.process_docs, TASK.doc_to_visual
doc_to_text, doc_to_messages = TASK.doc_to_text, TASK.doc_to_messages
doc_to_target = TASK.doc_to_target


def process_results(doc: dict, results: list[str]) -> dict:
    """A failed sample (``failed_samples``: it could not run, or its doc is invalid) or a truncated
    reply scores 0 on every metric."""
    reply = results[0]
    zero = unscored(reply, doc)
    raw = 0.0 if zero else float(raw_exact_match(reply, doc["answer"]))
    types = () if problem_of(doc) else TASK.categories_of(doc)
    metrics = {"exact_match_raw": raw, **category_scores("exact_match_raw", raw, types, TASK.category_names, doc),
               "exact_match_normalized": 0.0 if zero else float(exact_match(reply, doc["answer"])),
               "token_f1": 0.0 if zero else token_f1(reply, doc["answer"])}
    if judge.configured_model():
        correct, rating = (False, 0) if zero else judge.judge(question(doc), doc["answer"], strip_reasoning(reply).strip())
        metrics.update(judge_accuracy=float(correct), judge_score=float(rating))
    return {**metrics, **flow_metrics(reply, doc), **sample_outcomes(reply, doc)}
