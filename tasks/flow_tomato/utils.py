"""flow_tomato: TOMATO's multiple-choice questions, with accuracy per reasoning type.

A doc has ``question``, ``options`` (a list), ``answer`` (the index of the right option),
``reason_type`` (count, direction, rotation, shape&trend, velocity&frequency, visual_cues),
``demonstration_type`` and ``video_path`` (relative to ``$HF_HOME/TOMATO``, upstream's folder).
The prompt is the question with lettered options and a one-letter instruction rather than
TOMATO's long free-form prompt, so that replies are short and read by rules.
"""

from __future__ import annotations

from lmms_eval_flow.scoring.answers import parse_choice
from lmms_eval_flow.scoring.task_utils import (
    Benchmark,
    inside_data,
    lettered,
    mean_of_scored,  # noqa: F401 (the YAML's per-type aggregation)
    one_of,
    option_index,
    options_block,
    problem_of,
    prompt,
    refuse_invalid,
    require,
    require_texts,
    score,
    unless_invalid,
    video_messages,
)

BENCHMARK = Benchmark(
    name="tomato",
    hub_path="lmms-eval/TOMATO",
    cache_dir="TOMATO",
    published_sizes={("default", "test"): ("flow_tomato", 1484)},
)
DATASET_PATH = BENCHMARK.dataset_path()
DATASET_KWARGS = BENCHMARK.dataset_kwargs()
REASON_TYPES = ("count", "direction", "rotation", "shape&trend", "velocity&frequency", "visual_cues")


def check_doc(doc: dict) -> None:
    """Every field the task reads, checked when it loads (see ``task_utils.prepare_docs``)."""
    require(doc, question=str, video_path=str)
    option_index(doc, "answer", require_texts(doc, "options"))
    one_of(doc, "reason_type", REASON_TYPES)
    inside_data(doc["video_path"])


def process_docs(dataset):
    return BENCHMARK.prepare_docs(dataset, check_doc)


def options(doc: dict) -> dict[str, str]:
    return lettered(list(doc["options"]))


@unless_invalid
def doc_to_target(doc: dict) -> str:
    return list(options(doc))[option_index(doc, "answer", doc["options"])]


def doc_to_visual(doc: dict) -> list[str]:
    refuse_invalid(doc)
    return [BENCHMARK.video(doc["video_path"])]


@unless_invalid
def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    return prompt(lmms_eval_specific_kwargs, f"{doc['question']}\n{options_block(options(doc))}")


def doc_to_messages(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> list[dict]:
    return video_messages(doc_to_visual(doc)[0], doc_to_text(doc, lmms_eval_specific_kwargs))


def process_results(doc: dict, results: list[str]) -> dict:
    reply = results[0]
    if problem_of(doc):
        return score(False, reply, categories=REASON_TYPES, doc=doc)
    correct = parse_choice(reply, options(doc)) == doc_to_target(doc)
    return score(correct, reply, doc["reason_type"], REASON_TYPES, doc=doc)
