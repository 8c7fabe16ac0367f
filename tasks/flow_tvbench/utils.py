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

from lmms_eval_flow.scoring.answers import parse_choice
from lmms_eval_flow.scoring.task_utils import (
    Benchmark,
    DocProblem,
    inside_data,
    lettered,
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

BENCHMARK = Benchmark(name="tvbench", hub_path="FunAILab/TVBench", cache_dir="tvbench")
DATASET_PATH = BENCHMARK.dataset_path()
DATASET_KWARGS = BENCHMARK.dataset_kwargs()


def check_doc(doc: dict) -> None:
    """Every field the task reads, checked when it loads (see ``task_utils.prepare_docs``)."""
    require(doc, video=str, question=str, answer=str)
    require_texts(doc, "candidates")
    answer_key(doc)
    for name in ("start", "end"):
        if doc.get(name) is not None:
            require(doc, **{name: (int, float)})
    for path in videos(doc):
        inside_data(path)


def process_docs(dataset):
    return BENCHMARK.prepare_docs(dataset, check_doc)


def options(doc: dict) -> dict[str, str]:
    return lettered(list(doc["candidates"]))


def answer_key(doc: dict) -> str:
    matches = [key for key, text in options(doc).items() if text == doc["answer"]]
    if len(matches) != 1:
        raise DocProblem(f"field 'answer' = {doc['answer']!r} is not exactly one of the candidates {list(doc['candidates'])}")
    return matches[0]


doc_to_target = unless_invalid(answer_key)


def window(doc: dict) -> tuple[float | None, float | None]:
    """The (start, end) seconds the clip is cut to, or (None, None) for the whole video."""
    start, end = doc.get("start"), doc.get("end")
    if start is None or end is None:
        return None, None
    return float(start), float(end)


def videos(doc: dict) -> tuple[str, str]:
    """Where the doc's video may be: ``video/<task>/<video>`` or a flattened ``<task>/<video>``."""
    task, name = doc["flow_config"], doc["video"]
    return f"video/{task}/{name}", f"{task}/{name}"


def doc_to_visual(doc: dict) -> list[str]:
    refuse_invalid(doc)
    return [BENCHMARK.video(*videos(doc))]


@unless_invalid
def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    return prompt(lmms_eval_specific_kwargs, f"{doc['question']}\n{options_block(options(doc))}")


def doc_to_messages(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> list[dict]:
    return video_messages(doc_to_visual(doc)[0], doc_to_text(doc, lmms_eval_specific_kwargs), *window(doc))


def process_results(doc: dict, results: list[str]) -> dict:
    reply = results[0]
    if problem_of(doc):
        return score(False, reply, doc=doc)
    return score(parse_choice(reply, options(doc)) == doc_to_target(doc), reply, doc=doc)
