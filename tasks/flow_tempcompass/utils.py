"""flow_tempcompass: TempCompass's four formats, all scored by rules.

Each doc comes from one dataset config (its format, noted in ``flow_config``):

- ``multi-choice``: the question carries its options as "A. ..." lines; the answer is
  "B. text". Read with ``parse_choice`` (letter, declared answer or option text).
- ``yes_no``: answer "yes" or "no"; read with ``parse_yes_no``.
- ``caption_matching``: two labelled captions ("Caption A: ...", "Sentence B: ...",
  "Option 1: ..."); the answer is the matching line. Read with ``parse_choice`` over the
  labels' keys ("A"/"B" or "1"/"2") and the caption texts.
- ``captioning``: the question lists candidate descriptions ("Information A: {'subject': ...,
  'action': ...}") and asks for a caption ("Generated Caption:"); TempCompass has an LLM grade
  the caption, here it is read by rules: the answer's letter ("B. ice skating") is the key and a
  reply counts for the option whose distinguishing text ("ice skating") it names, so a caption
  naming exactly one candidate's is scored. ``flow_tempcompass_captioning_as_choice`` asks
  instead, as Causality Matters does, which lettered description is consistent with the video
  (``captioning_as_choice`` in the YAML's kwargs).

The prompts are TempCompass's own (``answer_prompt`` of its inference scripts, llyx97/TempCompass
``run_video_llava/inference_dataset.py``, ``run_qwen2_vl.py``, ``run_gpt_4o.py``): the question as
the dataset words it, then "\nPlease directly give the best option:" (multi-choice, caption
matching), "\nPlease answer yes or no:" (yes/no) or nothing (captioning, whose question ends with
"Generated Caption:"); every format with those scripts' 128 new tokens.

``flow_tempcompass_<format>_videollama3_style`` asks in the prompt style of VideoLLaMA3's own
evaluation, which Map the Flow's code ships for VideoLLaMA3 (``videollama3/evaluation/benchmarks/
tempcompass.py`` of byminji/map-the-flow): "Question: " + the question (captioning's without
"Generated Caption:") + a format's instruction, with its 2,048-token budget (``mm_infer``'s default);
its "Question: " is question, as that code's analysis draws it (the question runs from the video on).

Per-aspect accuracies (``dim``: action, speed, direction, order, attribute_change) come with
the overall accuracy.
"""

from __future__ import annotations

import ast
import re

from lmms_eval_flow.scoring.answers import parse_choice, parse_yes_no
from lmms_eval_flow.scoring.task_utils import (
    Benchmark,
    DocProblem,
    mean_of_scored,  # noqa: F401 (the YAML's per-aspect aggregation)
    one_of,
    options_block,
    problem_of,
    score,
)
from lmms_eval_flow.scoring.video_task import Category, Prompt, VideoTask, template_prompt

ASPECTS = Category.one_each("dim", ("action", "speed", "direction", "order", "attribute_change"))

# "A. text", " D. text", "C.text" (multi-choice); "Caption A: text", "Option 1: text" (caption matching).
_OPTION_LINE = re.compile(r"^\s*(?:(?:Option|Sentence|Caption) )?(?P<key>[A-Z1-9])(?:\.|:)\s*(?P<text>\S.*)$")
_INFORMATION_LINE = re.compile(r"^Information (?P<key>[A-Z]): (?P<info>\{.*\})$")


def _labelled_lines(lines: list[str]) -> dict[str, str]:
    options = {}
    for line in lines:
        match = _OPTION_LINE.match(line)
        if not match:
            raise DocProblem(f"TempCompass option line {line!r} is neither 'A. text' nor 'Caption A: text'")
        options[match["key"]] = match["text"].strip()
    return options


def _answer_key(answer: str) -> str:
    match = _OPTION_LINE.match(answer)
    if not match:
        raise DocProblem(f"field 'answer' = {answer!r} names no option")
    return match["key"]


def _information(doc: dict) -> dict[str, dict]:
    """The captioning candidates: {"A": {"subject": ..., "action": ...}, ...}."""
    found = {m["key"]: ast.literal_eval(m["info"]) for m in map(_INFORMATION_LINE.match, doc["question"].split("\n")) if m}
    if len(found) < 2:
        raise DocProblem(f"TempCompass captioning question lists no candidate information: {doc['question']!r}")
    return found


def _distinguishing_text(candidates: dict[str, dict]) -> dict[str, str]:
    """Each candidate by the values that differ between candidates ("ice skating")."""
    fields = sorted({name for info in candidates.values() for name in info})
    differing = [name for name in fields if len({str(info.get(name)) for info in candidates.values()}) > 1]
    return {key: ", ".join(str(info.get(name)) for name in differing) for key, info in candidates.items()}


def options(doc: dict) -> dict[str, str]:
    """The doc's options keyed as the model is asked to name them."""
    fmt = doc["flow_config"]
    if fmt == "multi-choice":
        return _labelled_lines(doc["question"].split("\n")[1:])
    if fmt == "caption_matching":
        return _labelled_lines(doc["question"].split("\n")[1:])
    if fmt == "captioning":
        return _distinguishing_text(_information(doc))
    raise ValueError(f"TempCompass format {fmt!r} has no options")


class TempCompass(VideoTask):
    """The format's prompt and key; the answer checked against the options the question lists."""

    def check_content(self, doc: dict) -> None:
        if doc["flow_config"] == "yes_no":
            one_of(doc, "answer", ("yes", "no"))
        elif _answer_key(doc["answer"]) not in options(doc):
            raise DocProblem(f"field 'answer' = {doc['answer']!r} is not one of the options {list(options(doc))}")

    def prompt(self, doc: dict, lmms_eval_specific_kwargs: dict | None) -> Prompt:
        """The question as the dataset words it (in ``question_format``, "{question}" by default;
        captioning's closing "Generated Caption:" dropped where ``drop_caption_cue`` says so), the
        format's instruction after it (the YAML's ``post_prompt`` holds one per format); captioning
        as a choice where the kwargs say so."""
        kwargs = dict(lmms_eval_specific_kwargs or {})
        post_prompts = kwargs.get("post_prompt") or {}
        kwargs["post_prompt"] = post_prompts.get(doc["flow_config"], "") if isinstance(post_prompts, dict) else post_prompts
        if doc["flow_config"] != "captioning" or not kwargs.get("captioning_as_choice"):
            question = doc["question"]
            if doc["flow_config"] == "captioning" and kwargs.get("drop_caption_cue"):
                question = question.replace("Generated Caption:", "").strip()
            return template_prompt(kwargs, kwargs.get("question_format", "{question}").format(question=question))
        shown = {key: "; ".join(f"{name}: {value}" for name, value in info.items()) for key, info in _information(doc).items()}
        return template_prompt(kwargs, f"Which of these descriptions is consistent with the video?\n{options_block(shown)}")

    def target(self, doc: dict) -> str:
        return doc["answer"] if doc["flow_config"] == "yes_no" else _answer_key(doc["answer"])


TASK = TempCompass(
    benchmark=Benchmark(
        name="tempcompass",
        hub_path="lmms-eval/TempCompass",
        cache_dir="tempcompass",
        published_sizes={
            ("multi-choice", "test"): ("flow_tempcompass_multi_choice", 1580),
            ("yes_no", "test"): ("flow_tempcompass_yes_no", 2453),
            ("caption_matching", "test"): ("flow_tempcompass_caption_matching", 1503),
            ("captioning", "test"): ("flow_tempcompass_captioning", 2004),
        },
    ),
    required={"video_id": (str, int), "question": str, "answer": str},
    videos=("videos/{video_id}.mp4",),
    categories=(ASPECTS,),
)
DATASET_PATH, DATASET_KWARGS = TASK.benchmark.dataset_path(), TASK.benchmark.dataset_kwargs()
check_doc, process_docs, doc_to_visual = TASK.check_doc, TASK.process_docs, TASK.doc_to_visual
doc_to_text, doc_to_messages = TASK.doc_to_text, TASK.doc_to_messages
doc_to_target = TASK.doc_to_target


def process_results(doc: dict, results: list[str]) -> dict:
    reply = results[0]
    if problem_of(doc):
        return score(False, reply, categories=TASK.category_names, doc=doc)
    if doc["flow_config"] == "yes_no":
        picked = parse_yes_no(reply)
    else:
        picked = parse_choice(reply, options(doc))
    return score(picked == doc_to_target(doc), reply, TASK.categories_of(doc), TASK.category_names, doc=doc)
