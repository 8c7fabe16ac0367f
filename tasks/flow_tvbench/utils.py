"""flow_tvbench: TVBench's ten tasks as lettered multiple choice.

A doc (MVBench format) has ``video``, ``question``, ``candidates`` and ``answer`` (the text
of the right candidate); Action Sequence and Action Localization docs also give ``start`` and
``end`` in seconds, and their clip is cut to that window (the original loader's ``bound``):
``doc_to_messages`` hands the window to lmms-eval's chat protocol, whose video reader
(qwen-vl-utils) samples frames inside it; simple-protocol models get the whole video.
Videos sit in one folder per task, ``video/<task>/<video>`` in the hub repository (a flattened
``<task>/<video>`` is accepted too); the task is the doc's dataset config (``flow_config``).
No per-task counts are published with the dataset, so no size is checked.
"""

from __future__ import annotations

from lmms_eval_flow.answers import parse_choice
from lmms_eval_flow.task_utils import (
    Benchmark,
    lettered,
    options_block,
    prompt,
    score,
    video_messages,
)

BENCHMARK = Benchmark(name="tvbench", hub_path="FunAILab/TVBench", cache_dir="tvbench")
DATASET_PATH = BENCHMARK.dataset_path()
DATASET_KWARGS = BENCHMARK.dataset_kwargs()
process_docs = BENCHMARK.prepare_docs


def options(doc: dict) -> dict[str, str]:
    return lettered(list(doc["candidates"]))


def doc_to_target(doc: dict) -> str:
    matches = [key for key, text in options(doc).items() if text == doc["answer"]]
    if len(matches) != 1:
        raise ValueError(f"TVBench answer {doc['answer']!r} is not exactly one of the candidates {list(doc['candidates'])}")
    return matches[0]


def window(doc: dict) -> tuple[float | None, float | None]:
    """The (start, end) seconds the clip is cut to, or (None, None) for the whole video."""
    start, end = doc.get("start"), doc.get("end")
    if start is None or end is None:
        return None, None
    return float(start), float(end)


def doc_to_visual(doc: dict) -> list[str]:
    task, name = doc["flow_config"], doc["video"]
    return [BENCHMARK.video(f"video/{task}/{name}", f"{task}/{name}")]


def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    return prompt(lmms_eval_specific_kwargs, f"{doc['question']}\n{options_block(options(doc))}")


def doc_to_messages(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> list[dict]:
    return video_messages(doc_to_visual(doc)[0], doc_to_text(doc, lmms_eval_specific_kwargs), *window(doc))


def process_results(doc: dict, results: list[str]) -> dict:
    reply = results[0]
    return score(parse_choice(reply, options(doc)) == doc_to_target(doc), reply, doc=doc)
