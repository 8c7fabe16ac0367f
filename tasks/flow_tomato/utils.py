"""flow_tomato: TOMATO's multiple-choice questions, with accuracy per reasoning type.

A doc has ``question``, ``options`` (a list), ``answer`` (the index of the right option),
``reason_type`` (count, direction, rotation, shape&trend, velocity&frequency, visual_cues),
``demonstration_type`` and ``video_path`` (relative to ``$HF_HOME/TOMATO``, upstream's folder).
The prompt is the question with lettered options and a one-letter instruction rather than
TOMATO's long free-form prompt, so that replies are short and read by rules.
"""

from __future__ import annotations

from lmms_eval_flow.answers import parse_choice
from lmms_eval_flow.task_utils import (
    Benchmark,
    lettered,
    mean_of_scored,  # noqa: F401 (the YAML's per-type aggregation)
    options_block,
    prompt,
    score,
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
process_docs = BENCHMARK.prepare_docs
REASON_TYPES = ("count", "direction", "rotation", "shape&trend", "velocity&frequency", "visual_cues")


def options(doc: dict) -> dict[str, str]:
    return lettered(list(doc["options"]))


def doc_to_target(doc: dict) -> str:
    return list(options(doc))[int(doc["answer"])]


def doc_to_visual(doc: dict) -> list[str]:
    return [BENCHMARK.video(doc["video_path"])]


def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    return prompt(lmms_eval_specific_kwargs, f"{doc['question']}\n{options_block(options(doc))}")


def doc_to_messages(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> list[dict]:
    return video_messages(doc_to_visual(doc)[0], doc_to_text(doc, lmms_eval_specific_kwargs))


def process_results(doc: dict, results: list[str]) -> dict:
    reply = results[0]
    correct = parse_choice(reply, options(doc)) == doc_to_target(doc)
    return score(correct, reply, doc["reason_type"], REASON_TYPES, doc=doc)
