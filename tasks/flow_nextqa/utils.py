"""flow_nextqa_mc: NExT-QA multiple choice (test split).

A doc has ``video`` (a video id; the file is ``NExTVideo/<video>.mp4`` under
``$HF_HOME/nextqa``, upstream's layout), ``question``, five options ``a0``..``a4`` and
``answer``, the index of the right one.
"""

from __future__ import annotations

from lmms_eval_flow.scoring.answers import parse_choice
from lmms_eval_flow.scoring.task_utils import (
    Benchmark,
    inside_data,
    lettered,
    option_index,
    options_block,
    problem_of,
    prompt,
    refuse_invalid,
    require,
    score,
    unless_invalid,
    video_messages,
)

BENCHMARK = Benchmark(
    name="nextqa",
    hub_path="lmms-eval/NExTQA",
    cache_dir="nextqa",
    published_sizes={("MC", "test"): ("flow_nextqa_mc", 8564)},
)
DATASET_PATH = BENCHMARK.dataset_path()
DATASET_KWARGS = BENCHMARK.dataset_kwargs()
OPTION_FIELDS = tuple(f"a{index}" for index in range(5))


def video(doc: dict) -> str:
    return f"NExTVideo/{doc['video']}.mp4"


def check_doc(doc: dict) -> None:
    """Every field the task reads, checked when it loads (see ``task_utils.prepare_docs``)."""
    require(doc, video=(int, str), question=str, **dict.fromkeys(OPTION_FIELDS, (str, int, float)))
    option_index(doc, "answer", OPTION_FIELDS)
    inside_data(video(doc))


def process_docs(dataset):
    return BENCHMARK.prepare_docs(dataset, check_doc)


def options(doc: dict) -> dict[str, str]:
    return lettered([str(doc[name]).strip() for name in OPTION_FIELDS])


@unless_invalid
def doc_to_target(doc: dict) -> str:
    return list(options(doc))[option_index(doc, "answer", OPTION_FIELDS)]


def doc_to_visual(doc: dict) -> list[str]:
    refuse_invalid(doc)
    return [BENCHMARK.video(video(doc))]


@unless_invalid
def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    return prompt(lmms_eval_specific_kwargs, f"{doc['question'].strip()}\n{options_block(options(doc))}")


def doc_to_messages(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> list[dict]:
    return video_messages(doc_to_visual(doc)[0], doc_to_text(doc, lmms_eval_specific_kwargs))


def process_results(doc: dict, results: list[str]) -> dict:
    reply = results[0]
    if problem_of(doc):
        return score(False, reply, doc=doc)
    return score(parse_choice(reply, options(doc)) == doc_to_target(doc), reply, doc=doc)
