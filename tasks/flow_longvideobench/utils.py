"""flow_longvideobench_val: LongVideoBench validation questions on the video alone.

A doc has ``video_path`` (relative to ``videos/`` under ``$HF_HOME/datasets/longvideobench``,
upstream's layout), ``question``, ``option0``..``option4`` (unused ones are "N/A"),
``correct_choice`` (an index) and ``duration_group``: the upper bound in seconds of the
video's length group (15, 60, 600, 3600), reported as ``accuracy_<bound>s``. This is
upstream's ``longvideobench_val_v`` set-up (no interleaved subtitles).
"""

from __future__ import annotations

from lmms_eval_flow.scoring.answers import parse_choice
from lmms_eval_flow.scoring.task_utils import (
    Benchmark,
    inside_data,
    lettered,
    mean_of_scored,  # noqa: F401 (the YAML's per-duration aggregation)
    one_of,
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
    name="longvideobench",
    hub_path="longvideobench/LongVideoBench",
    cache_dir="datasets/longvideobench",
    published_sizes={("default", "validation"): ("flow_longvideobench_val", 1337)},
)
DATASET_PATH = BENCHMARK.dataset_path()
DATASET_KWARGS = BENCHMARK.dataset_kwargs()
DURATION_GROUPS = ("15s", "60s", "600s", "3600s")


def check_doc(doc: dict) -> None:
    """Every field the task reads, checked when it loads (see ``task_utils.prepare_docs``)."""
    require(doc, question=str, video_path=str)
    option_index(doc, "correct_choice", options(doc))
    one_of(doc, "duration_group", (15, 60, 600, 3600))
    inside_data(f"videos/{doc['video_path']}")


def process_docs(dataset):
    return BENCHMARK.prepare_docs(dataset, check_doc)


def options(doc: dict) -> dict[str, str]:
    texts = [doc.get(f"option{index}") for index in range(5)]
    return lettered([text for text in texts if text is not None and text != "N/A"])


@unless_invalid
def doc_to_target(doc: dict) -> str:
    return list(options(doc))[option_index(doc, "correct_choice", options(doc))]


def doc_to_visual(doc: dict) -> list[str]:
    refuse_invalid(doc)
    return [BENCHMARK.video(f"videos/{doc['video_path']}")]


@unless_invalid
def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    return prompt(lmms_eval_specific_kwargs, f"{doc['question']}\n{options_block(options(doc))}")


def doc_to_messages(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> list[dict]:
    return video_messages(doc_to_visual(doc)[0], doc_to_text(doc, lmms_eval_specific_kwargs))


def process_results(doc: dict, results: list[str]) -> dict:
    reply = results[0]
    if problem_of(doc):
        return score(False, reply, categories=DURATION_GROUPS, doc=doc)
    correct = parse_choice(reply, options(doc)) == doc_to_target(doc)
    return score(correct, reply, f"{int(doc['duration_group'])}s", DURATION_GROUPS, doc=doc)
