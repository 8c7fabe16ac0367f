"""flow_synthetic: multiple-choice questions about generated clips of moving shapes.

Each doc carries its clip as a scene spec (see ``lmms_eval_flow.toy.clips``) rather than a
video file, so the task needs no download: the clip is rendered into the local cache the
first time a doc is read. The answers are known exactly, which makes the task a quick
offline check that a model, a wrapper and an attention regime run end to end.
"""

from __future__ import annotations

from lmms_eval_flow.scoring.answers import parse_choice
from lmms_eval_flow.scoring.task_utils import lettered, options_block, score
from lmms_eval_flow.scoring.video_task import Prompt, template_prompt
from lmms_eval_flow.toy.task import clip_messages, doc_to_target, doc_to_visual  # noqa: F401 (the YAML's hooks)

DEFAULT_POST_PROMPT = "Answer with the option's letter from the given choices directly."


def lettered_options(doc: dict) -> dict[str, str]:
    """The doc's options keyed by letter, in order: {"A": ..., "B": ...}."""
    return lettered(doc["options"])


def doc_to_prompt(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> Prompt:
    """The question, one lettered option per line, then the answer-format instruction."""
    return template_prompt(lmms_eval_specific_kwargs, f"{doc['question']}\n{options_block(lettered_options(doc))}\n",
                           DEFAULT_POST_PROMPT)


def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    return doc_to_prompt(doc, lmms_eval_specific_kwargs).text


def doc_to_messages(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> list[dict]:
    """One user turn for chat models: the video first, then the question; its instruction is template."""
    return clip_messages(doc, doc_to_prompt(doc, lmms_eval_specific_kwargs))


def process_results(doc: dict, results: list[str]) -> dict[str, float]:
    """Accuracy of the one reply, plus its attention edges when the model reported them.

    An unparseable reply scores 0. A plain-text reply (a model without attention regimes)
    yields accuracy alone; lmms-eval then reports only the metrics it received.
    """
    reply = results[0]
    return score(parse_choice(reply, lettered_options(doc)) == doc["answer"], reply, doc=doc)
