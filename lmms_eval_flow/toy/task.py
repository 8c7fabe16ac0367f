"""The toy benchmark as an lmms-eval task (``flow_temporal_toy``): its prompts and its scoring.

Docs carry their clip as a scene spec, rendered into the local cache on first use, so the task
runs offline. The training script builds its prompts with these same functions, so the toy model
is trained on exactly the token layout it is evaluated on; the task folder
(``tasks/flow_temporal_toy``) hands them to lmms-eval.
"""

from __future__ import annotations

from lmms_eval_flow.scoring.answers import parse_choice
from lmms_eval_flow.toy.clips import clip_path
from lmms_eval_flow.scoring.task_utils import lettered, options_block, score, video_messages
from lmms_eval_flow.scoring.video_task import Prompt, template_prompt
from lmms_eval_flow.toy.benchmark import QUESTION_TYPES

DEFAULT_POST_PROMPT = "\nAnswer with the option's letter from the given choices directly."


def doc_to_visual(doc: dict) -> list[str]:
    return [str(clip_path(doc["clip"]))]


def doc_to_prompt(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> Prompt:
    """The question, one "A. option" line per option, then the answer-format instruction."""
    return template_prompt(lmms_eval_specific_kwargs, f"{doc['question']}\n{options_block(lettered(doc['options']))}",
                           DEFAULT_POST_PROMPT)


def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    return doc_to_prompt(doc, lmms_eval_specific_kwargs).text


def doc_to_target(doc: dict) -> str:
    return doc["answer"]


def clip_messages(doc: dict, prompt: Prompt) -> list[dict]:
    """The doc's clip, then the prompt's text, its template parts named (the answer-format
    instruction is template, not question); shared with ``flow_synthetic``."""
    return video_messages(doc_to_visual(doc)[0], prompt.text, instructions=prompt.instructions)


def doc_to_messages(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> list[dict]:
    return clip_messages(doc, doc_to_prompt(doc, lmms_eval_specific_kwargs))


def process_results(doc: dict, results: list[str]) -> dict:
    """Overall and per-type accuracy of the one reply, plus its attention edges."""
    reply = results[0]
    correct = parse_choice(reply, lettered(doc["options"])) == doc["answer"]
    return score(correct, reply, doc["category"], QUESTION_TYPES, doc=doc)
