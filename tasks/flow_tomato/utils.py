"""flow_tomato: TOMATO's multiple-choice questions, with accuracy per reasoning and demonstration type.

A doc has ``question``, ``options`` (a list), ``answer`` (the index of the right option),
``reason_type`` (count, direction, rotation, shape&trend, velocity&frequency, visual_cues),
``demonstration_type`` (human, object, simulated) and ``video_path`` (relative to
``$HF_HOME/TOMATO``, upstream's folder). Both types get accuracies of their own, as TOMATO's
evaluation reports them.
The prompt is TOMATO's own (``src/generate_lib/construct_prompt.py`` of yale-nlp/TOMATO): its
instructions (the YAML's pre prompt), then the question in ``<question>`` tags and the options as the
letter-to-option dict that code prints (``{'A': '1', 'B': '2'}``) in ``<options>`` tags (the question
part), then its request to guess rather than refuse (the post prompt), with its budget of 1,024 new
tokens (``MAX_TOKENS``); the long replies are read by ``parse_choice``.
"""

from __future__ import annotations

from functools import partial

from lmms_eval_flow.scoring.task_utils import (
    Benchmark,
    mean_of_scored,  # noqa: F401 (the YAML's per-type aggregation)
    require_texts,
)
from lmms_eval_flow.scoring.video_task import Category, MultipleChoiceTask

REASON_TYPES = ("count", "direction", "rotation", "shape&trend", "velocity&frequency", "visual_cues")
DEMONSTRATION_TYPES = ("human", "object", "simulated")
TASK = MultipleChoiceTask(
    benchmark=Benchmark(name="tomato", hub_path="lmms-eval/TOMATO", cache_dir="TOMATO",
                        published_sizes={("default", "test"): ("flow_tomato", 1484)}),
    required={"question": str, "video_path": str},
    options=partial(require_texts, name="options"),
    answer="answer",
    categories=(Category.one_each("reason_type", REASON_TYPES), Category.one_each("demonstration_type", DEMONSTRATION_TYPES)),
    videos=("{video_path}",),
    # construct_prompt's "{question} \n</question>\n\n<options> \n{index2ans}", the dict as Python prints it.
    question_format="{question} \n</question>\n\n<options> \n{options}",
    show_options=str,
)
DATASET_PATH, DATASET_KWARGS = TASK.benchmark.dataset_path(), TASK.benchmark.dataset_kwargs()
check_doc, process_docs, doc_to_visual = TASK.check_doc, TASK.process_docs, TASK.doc_to_visual
doc_to_text, doc_to_messages = TASK.doc_to_text, TASK.doc_to_messages
doc_to_target, process_results = TASK.doc_to_target, TASK.process_results
