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

from lmms_eval_flow.harness.reply import failure_of, flow_metrics
from lmms_eval_flow.scoring import judge
from lmms_eval_flow.scoring.answers import exact_match, strip_reasoning, token_f1
from lmms_eval_flow.scoring.task_utils import PROBLEM, Benchmark, problem_of, prompt
from lmms_eval_flow.scoring.video_task import VideoTask

JUDGE_MODEL = judge.configured_model()  # recorded in the results' task metadata


def question(doc: dict) -> str:
    return doc["question"].strip().capitalize().rstrip("?") + "?"


class ActivityNetQA(VideoTask):
    """The question as the prompt, the answer as the key."""

    def text(self, doc: dict, lmms_eval_specific_kwargs: dict | None) -> str:
        return prompt(lmms_eval_specific_kwargs, question(doc))

    def target(self, doc: dict) -> str:
        return doc["answer"]


TASK = ActivityNetQA(
    benchmark=Benchmark(name="activitynetqa", hub_path="lmms-eval/ActivityNetQA", cache_dir="activitynetqa",
                        published_sizes={("default", "test"): ("flow_activitynetqa", 8000)}),
    required={"video_name": str, "question": str, "answer": str},
    videos=tuple(f"all_test/v_{{video_name}}.{extension}" for extension in ("mp4", "webm", "mkv")),
)
DATASET_PATH, DATASET_KWARGS = TASK.benchmark.dataset_path(), TASK.benchmark.dataset_kwargs()
check_doc, process_docs, doc_to_visual = TASK.check_doc, TASK.process_docs, TASK.doc_to_visual
doc_to_text, doc_to_messages = TASK.doc_to_text, TASK.doc_to_messages
doc_to_target = TASK.doc_to_target


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
