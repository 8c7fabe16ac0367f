"""flow_activitynetqa: ActivityNet-QA's open-ended questions, scored offline.

A doc has ``video_name`` (the file is ``all_test/v_<video_name>.mp4``, ``.webm`` or ``.mkv``
under ``$HF_HOME/activitynetqa``, upstream's layout), ``question`` (lower case, no question
mark: shown capitalised with one, as upstream does), ``answer`` (a word or short phrase),
``question_id`` and ``type``.

Metrics: ``exact_match`` (normalised; yes/no answers read with the yes/no parser) and
``token_f1`` (word overlap), both from ``lmms_eval_flow.scoring.answers``; ``judge_accuracy`` and
``judge_score`` only when an LLM judge is configured (``lmms_eval_flow.scoring.judge``).
"""

from __future__ import annotations

from lmms_eval_flow.scoring import judge
from lmms_eval_flow.scoring.answers import exact_match, strip_reasoning, token_f1
from lmms_eval_flow.harness.reply import failure_of, flow_metrics
from lmms_eval_flow.scoring.task_utils import (
    PROBLEM,
    Benchmark,
    inside_data,
    problem_of,
    prompt,
    refuse_invalid,
    require,
    unless_invalid,
    video_messages,
)

BENCHMARK = Benchmark(
    name="activitynetqa",
    hub_path="lmms-eval/ActivityNetQA",
    cache_dir="activitynetqa",
    published_sizes={("default", "test"): ("flow_activitynetqa", 8000)},
)
DATASET_PATH = BENCHMARK.dataset_path()
DATASET_KWARGS = BENCHMARK.dataset_kwargs()
JUDGE_MODEL = judge.configured_model()  # recorded in the results' task metadata
EXTENSIONS = ("mp4", "webm", "mkv")


def check_doc(doc: dict) -> None:
    """Every field the task reads, checked when it loads (see ``task_utils.prepare_docs``)."""
    require(doc, video_name=str, question=str, answer=str)
    inside_data(f"all_test/v_{doc['video_name']}.mp4")


def process_docs(dataset):
    return BENCHMARK.prepare_docs(dataset, check_doc)


@unless_invalid
def doc_to_target(doc: dict) -> str:
    return doc["answer"]


def doc_to_visual(doc: dict) -> list[str]:
    refuse_invalid(doc)
    return [BENCHMARK.video(*(f"all_test/v_{doc['video_name']}.{ext}" for ext in EXTENSIONS))]


def question(doc: dict) -> str:
    return doc["question"].strip().capitalize().rstrip("?") + "?"


@unless_invalid
def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    return prompt(lmms_eval_specific_kwargs, question(doc))


def doc_to_messages(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> list[dict]:
    return video_messages(doc_to_visual(doc)[0], doc_to_text(doc, lmms_eval_specific_kwargs))


def process_results(doc: dict, results: list[str]) -> dict:
    """A failed sample (``failed_samples``: it could not run, or its doc is invalid) scores 0 on
    every metric."""
    reply = results[0]
    failure = failure_of(reply) or problem_of(doc)
    if failure:
        metrics = {"exact_match": 0.0, "token_f1": 0.0}
    else:
        metrics = {"exact_match": float(exact_match(reply, doc["answer"])), "token_f1": token_f1(reply, doc["answer"])}
    if judge.configured_model():
        correct, rating = (False, 0) if failure else judge.judge(question(doc), doc["answer"], strip_reasoning(reply).strip())
        metrics.update(judge_accuracy=float(correct), judge_score=float(rating))
    checked = {"failed_samples": failure} if PROBLEM in doc else {}  # reported with plain replies too
    return {**metrics, **flow_metrics(reply, doc), **checked}
