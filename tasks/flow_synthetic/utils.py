"""flow_synthetic: multiple-choice questions about generated clips of moving shapes.

Each doc carries its clip as a scene spec (see ``lmms_eval_flow.toy.clips``) rather than a
video file, so the task needs no download: the clip is rendered into the local cache the
first time a doc is read. The answers are known exactly, which makes the task a quick
offline check that a model, a wrapper and an attention regime run end to end.
"""

from __future__ import annotations

from lmms_eval_flow.scoring.answers import parse_choice
from lmms_eval_flow.toy.clips import clip_path
from lmms_eval_flow.scoring.task_utils import lettered, options_block, score, video_messages

DEFAULT_POST_PROMPT = "Answer with the option's letter from the given choices directly."


def lettered_options(doc: dict) -> dict[str, str]:
    """The doc's options keyed by letter, in order: {"A": ..., "B": ...}."""
    return lettered(doc["options"])


def doc_to_visual(doc: dict) -> list[str]:
    """The doc's clip as a local mp4 path, rendered on first use."""
    return [str(clip_path(doc["clip"]))]


def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    """The question, one lettered option per line, then the answer-format instruction."""
    kwargs = lmms_eval_specific_kwargs or {}
    options = options_block(lettered_options(doc))
    pre_prompt = kwargs.get("pre_prompt", "")
    post_prompt = kwargs.get("post_prompt", DEFAULT_POST_PROMPT)
    return f"{pre_prompt}{doc['question']}\n{options}\n{post_prompt}"


def doc_to_target(doc: dict) -> str:
    return doc["answer"]


def doc_to_messages(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> list[dict]:
    """One user turn for chat models: the video first, then the question."""
    return video_messages(doc_to_visual(doc)[0], doc_to_text(doc, lmms_eval_specific_kwargs))


def process_results(doc: dict, results: list[str]) -> dict[str, float]:
    """Accuracy of the one reply, plus its attention edges when the model reported them.

    An unparseable reply scores 0. A plain-text reply (a model without attention regimes)
    yields accuracy alone; lmms-eval then reports only the metrics it received.
    """
    reply = results[0]
    return score(parse_choice(reply, lettered_options(doc)) == doc["answer"], reply, doc=doc)
