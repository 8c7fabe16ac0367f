"""A flow video task's hooks, declared once: each task's ``utils.py`` says only what differs.

Every flow benchmark task has one shape: one video per doc under the benchmark's data folder
(``task_utils.Benchmark``), the docs checked when the task loads, a chat turn of the video then
the prompt, a score per doc. ``VideoTask`` holds that shape and takes what differs as data: the
benchmark, the fields every doc has, where its video is, where docs give one the fields of a clip
window, and the categories its scores are broken down by (``Category``: the breakdowns the
benchmark's own evaluation reports). ``MultipleChoiceTask`` adds how the options and the answer are
read; it is the whole of TOMATO, TVBench, NExT-QA and LongVideoBench. The
open-ended and mixed-format tasks subclass ``VideoTask`` with their own prompt and key.

A task's ``utils.py`` declares ``TASK = MultipleChoiceTask(...)`` and names the bound methods its
YAML references (``doc_to_text = TASK.doc_to_text``): lmms-eval's ``!function utils.name`` reads a
module attribute, and it inspects a hook's parameters, which a bound method shows without ``self``.

A doc's prompt is a ``Prompt`` in three parts, so that a token layout can tell the question from
the template (Map the Flow's code takes the question and its options as the question, and the
task's instruction and answer primer as template): ``preamble`` (lmms-eval's ``pre_prompt``: what
the benchmark's prompt says before the question), ``question`` (the question with its options, as
shown) and ``instruction`` (lmms-eval's ``post_prompt``: the instruction appended after the
question), plus ``primer``, the text the benchmark's own code starts the assistant's answer with
(``answer_primer``; "Best option:(" in the MVBench style). ``doc_to_prompt`` gives it;
``doc_to_text`` is its three parts joined. The task YAML's ``lmms_eval_specific_kwargs`` hold the
pre and post prompts and the primer, and may override how a multiple-choice question and its
options are laid out (``question_format``, ``option_format``): that is how a prompt-style variant
(``flow_<task>_mvbench_style``) differs from the default, and how a model-specific entry overrides
them the usual lmms-eval way.

The primer rides on the prompt's text (``video_messages(..., primer=)``), which lmms-eval's chat
protocol leaves out: lmms-eval's own wrappers get the user turn alone, and a flow model sends the
primer as the start of the assistant's turn (``harness.primer``). Replies are read either way
("A) ..." after a primer, as well as "(A) ..." and "A").

A doc found invalid when the task loaded (``sample_checks.problem_of``) never becomes a video
question: its text is "(invalid doc: <problem>)", it has no visuals and its chat turn is that text
alone. Any model can run it, lmms-eval's own wrappers included, without a crash on a bad field that
would end the run; its reply is scored as wrong and counted in ``failed_samples``
(``task_utils.score``), and a flow model fails it unrun.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from lmms_eval_flow.harness.sample_checks import DocProblem, problem_of
from lmms_eval_flow.scoring.answers import first_line, parse_choice
from lmms_eval_flow.scoring.task_utils import (
    Benchmark,
    inside_data,
    lettered,
    one_of,
    option_index,
    options_block,
    require,
    score,
    text_messages,
    video_messages,
)


@dataclass(frozen=True)
class Prompt:
    """A doc's prompt, in the parts a token layout tells apart: ``preamble + question + instruction``
    is the text the user turn carries after the video; ``primer`` is the start of the answer the
    benchmark's code puts in the assistant turn (sent by flow models: see the module docstring)."""

    preamble: str  # template before the question: the benchmark's opening instructions, lmms-eval's pre_prompt
    question: str  # the question and its options as shown: what Map the Flow counts as the question
    instruction: str  # template after the question: the task's instruction, lmms-eval's post_prompt
    primer: str = ""  # the answer's start in the assistant turn ("Best option:("), or none
    frames: int | None = None  # the frame count the prompt tells the model it is shown (TOMATO's "16 separate frames")
    system: str = ""  # the benchmark's system text, sent as a system turn before the user's (lmms-eval's system_prompt), or none

    @property
    def text(self) -> str:
        return f"{self.preamble}{self.question}{self.instruction}"

    @property
    def instructions(self) -> tuple[str, ...]:
        """Its template parts, which ``video_messages`` names so that a flow model's layout draws
        them as template, not question."""
        return tuple(part for part in (self.preamble, self.instruction) if part.strip())


def template_prompt(kwargs: dict | None, question: str, default_instruction: str = "") -> Prompt:
    """``question`` between lmms-eval's ``pre_prompt`` and ``post_prompt``, with the ``answer_primer``,
    ``stated_frames`` and ``system_prompt`` the kwargs declare (model-specific entries override them)."""
    kwargs = kwargs or {}
    return Prompt(kwargs.get("pre_prompt", ""), question, kwargs.get("post_prompt", default_instruction),
                  kwargs.get("answer_primer", ""), kwargs.get("stated_frames"), kwargs.get("system_prompt", ""))


@dataclass(frozen=True)
class Category:
    """A doc field whose values each count toward accuracies of their own, ``accuracy_<name>``:
    a value may count toward several (a NExT-QA "CW" question is both ``causal`` and
    ``causal_why``), several values toward one (TN and TP are both ``temporal_before_after``)."""

    field: str
    groups: dict  # each value a doc may have (checked when it loads) -> the names of the accuracies it counts in

    @classmethod
    def one_each(cls, field: str, values: tuple, names: tuple | None = None) -> Category:
        """Each value an accuracy of its own, named ``names`` in the same order, or by the value."""
        return cls(field, {value: (name,) for value, name in zip(values, names or values)})

    @property
    def metric_names(self) -> tuple:
        return tuple(dict.fromkeys(name for names in self.groups.values() for name in names))

    def names_of(self, doc: dict) -> tuple:
        return self.groups[doc[self.field]]


@dataclass(frozen=True, eq=False, kw_only=True, repr=False)
class VideoTask(ABC):
    """The hooks of a task with one video per doc; a subclass says how a valid doc's prompt and key
    read (``text``, ``target``) and what to check beyond the required fields (``check_content``).

    Compared and hashed by identity (``eq=False``): lmms-eval keeps the bound hooks in its task
    config, and a bound method hashes its instance, whose dict fields do not hash. ``repr=False``
    leaves every subclass the short ``__repr__`` below.
    """

    benchmark: Benchmark
    required: dict[str, type | tuple[type, ...]]  # every doc's fields and their kinds, checked in this order
    # Where a doc's video may be, relative to the data folder, the first found read: templates of the
    # doc's fields and its ``flow_config``, "NExTVideo/{video}.mp4".
    videos: tuple[str, ...]
    window: tuple[str, str] | None = None  # the fields of a clip's (start, end) seconds, in docs that give them
    categories: tuple[Category, ...] = ()

    def __repr__(self) -> str:
        """Short: lmms-eval writes the hooks (``<bound method ... of {repr}>``) into the results JSON."""
        return f"{type(self).__name__}({self.benchmark.name})"

    def check_content(self, doc: dict) -> None:
        """What to check of a doc beyond its required fields' presence and kinds (its answer, say)."""

    @abstractmethod
    def prompt(self, doc: dict, lmms_eval_specific_kwargs: dict | None) -> Prompt:
        """A valid doc's prompt, in its parts."""

    @abstractmethod
    def target(self, doc: dict) -> str:
        """A valid doc's key."""

    def check_doc(self, doc: dict) -> None:
        """Every field the task reads, checked when it loads (``Benchmark.prepare_docs``); the first
        bad one raises ``DocProblem``."""
        require(doc, **self.required)
        for category in self.categories:
            one_of(doc, category.field, category.groups)
        self.check_content(doc)
        for name in self.window or ():
            if doc.get(name) is not None:
                require(doc, **{name: (int, float)})
        for path in self.video_paths(doc):
            inside_data(path)

    @property
    def category_names(self) -> tuple:
        """Every category's accuracies, in the order the YAML lists them."""
        return tuple(name for category in self.categories for name in category.metric_names)

    def categories_of(self, doc: dict) -> tuple:
        """The accuracies a valid doc counts in."""
        return tuple(name for category in self.categories for name in category.names_of(doc))

    def process_docs(self, dataset):
        return self.benchmark.prepare_docs(dataset, self.check_doc)

    def video_paths(self, doc: dict) -> tuple[str, ...]:
        return tuple(template.format(**doc) for template in self.videos)

    def clip(self, doc: dict) -> tuple[float | None, float | None]:
        """The (start, end) seconds the clip is cut to, or (None, None) for the whole video."""
        start, end = (doc.get(name) for name in self.window) if self.window else (None, None)
        if start is None or end is None:
            return None, None
        return float(start), float(end)

    def doc_to_visual(self, doc: dict) -> list[str]:
        return [] if problem_of(doc) else [self.benchmark.video(*self.video_paths(doc))]

    def doc_to_prompt(self, doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> Prompt:
        """The doc's prompt in its parts (question, and the template around it); an invalid doc's is
        its problem as text, all of it template."""
        problem = problem_of(doc)
        if problem:
            return Prompt("", "", f"(invalid doc: {problem})")
        return self.prompt(doc, lmms_eval_specific_kwargs)

    def doc_to_text(self, doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
        """Also called by lmms-eval on every doc when the task loads and when it logs samples."""
        return self.doc_to_prompt(doc, lmms_eval_specific_kwargs).text

    def doc_to_target(self, doc: dict) -> str:
        problem = problem_of(doc)
        return f"(invalid doc: {problem})" if problem else self.target(doc)

    def doc_to_messages(self, doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> list[dict]:
        """The benchmark's system turn where it has one, then the video, cut to the doc's window
        (lmms-eval's chat protocol hands it to the video reader), then the prompt, its template parts
        named; an invalid doc's text alone."""
        if problem_of(doc):
            return text_messages(self.doc_to_text(doc))
        prompt = self.doc_to_prompt(doc, lmms_eval_specific_kwargs)
        return video_messages(self.doc_to_visual(doc)[0], prompt.text, *self.clip(doc), instructions=prompt.instructions,
                              primer=prompt.primer, stated_frames=prompt.frames, system=prompt.system)


@dataclass(frozen=True, eq=False, kw_only=True, repr=False)
class MultipleChoiceTask(VideoTask):
    """A question shown with its options lettered A, B, ...; the key is the right option's letter,
    read out of the reply by ``parse_choice``. ``process_results`` scores ``accuracy`` and the
    accuracy of each category's names.

    The question part of the prompt is ``question_format`` of the doc's question and its options,
    each option ``option_format`` of its letter and text, one a line (or ``show_options`` of them
    all, where the benchmark shows them otherwise); the YAML's ``lmms_eval_specific_kwargs`` may
    give either format instead (a prompt-style variant's "Question: ...", "(A) ...")."""

    options: Callable[[dict], list]  # the doc's option texts in order; DocProblem when they are malformed
    answer: str  # the field naming the right option: its index, or its text where ``answer_is_text``
    answer_is_text: bool = False
    strip_question: bool = False  # the question is shown without the white space around it
    question_format: str = "{question}\n{options}"  # the question part: the doc's question and its shown options
    option_format: str = "{key}. {text}"  # each option's line
    show_options: Callable[[dict[str, str]], str] | None = None  # all options shown at once, instead of lines
    first_line_only: bool = False  # the benchmark's evaluation reads the reply's first line alone (``first_line``)

    def check_content(self, doc: dict) -> None:
        self.answer_index(doc, self.options(doc))

    def answer_index(self, doc: dict, options: list) -> int:
        """The right option's place; an index out of range, or a text that is not exactly one
        option, is a ``DocProblem`` naming the valid ones."""
        if not self.answer_is_text:
            return option_index(doc, self.answer, options)
        matches = [index for index, text in enumerate(options) if text == doc[self.answer]]
        if len(matches) != 1:
            raise DocProblem(f"field {self.answer!r} = {doc[self.answer]!r} is not exactly one of the candidates "
                             f"{list(options)}")
        return matches[0]

    def lettered_options(self, doc: dict) -> dict[str, str]:
        return lettered(list(self.options(doc)))

    def shown_options(self, options: dict[str, str], kwargs: dict) -> str:
        if "option_format" not in kwargs and self.show_options is not None:
            return self.show_options(options)
        return options_block(options, kwargs.get("option_format", self.option_format))

    def prompt(self, doc: dict, lmms_eval_specific_kwargs: dict | None) -> Prompt:
        kwargs = lmms_eval_specific_kwargs or {}
        question = doc["question"].strip() if self.strip_question else doc["question"]
        shown = self.shown_options(self.lettered_options(doc), kwargs)
        return template_prompt(kwargs, kwargs.get("question_format", self.question_format).format(question=question, options=shown))

    def target(self, doc: dict) -> str:
        return list(self.lettered_options(doc))[self.answer_index(doc, self.options(doc))]

    def process_results(self, doc: dict, results: list[str]) -> dict:
        reply = results[0]
        if problem_of(doc):
            return score(False, reply, categories=self.category_names, doc=doc)
        read = first_line(reply) if self.first_line_only else reply
        correct = parse_choice(read, self.lettered_options(doc)) == self.target(doc)
        return score(correct, reply, self.categories_of(doc), self.category_names, doc=doc)
