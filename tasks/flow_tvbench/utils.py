"""flow_tvbench: TVBench's ten tasks as lettered multiple choice.

A doc (MVBench format) has ``video``, ``question``, ``candidates`` and ``answer`` (the text
of the right candidate); Action Sequence and Action Localization docs also give ``start`` and
``end`` in seconds, and their clip is cut to that window (the original loader's ``bound``):
``doc_to_messages`` hands the window to lmms-eval's chat protocol, whose video reader
(qwen-vl-utils) samples frames inside it; simple-protocol models get the whole video.
Videos sit in one folder per task, ``video/<task>/<video>`` in the hub repository (a flattened
``<task>/<video>`` is accepted too); the task is the doc's dataset config (``flow_config``).
No per-task counts are published with the dataset, so no size is checked.

The prompt is TVBench's own evaluation's (``infer.ipynb`` and ``vqa_dataset.py`` of
daniel-cores/tvbench, MVBench's format): VideoChat2's system text before the question (the YAML's pre
prompt), the question as "Question: ...\nOptions:\n(A) ...\n(B) ..." (``qa_template``), then
"\nOnly give the best option." (the post prompt), with the answer primed by "Best option:(" (declared
as ``answer_primer``, which flow models send: ``harness.primer``) and 100 new tokens.
As that evaluation does, only the reply's first line is read (``answers.first_line``): an answer
given after a line of explanation is not credited.
``flow_tvbench_mvbench_style`` is Map the Flow's version of it (byminji/map-the-flow).
"""

from __future__ import annotations

from functools import partial

from lmms_eval_flow.scoring.task_utils import Benchmark, require_texts
from lmms_eval_flow.scoring.video_task import MultipleChoiceTask

TASK = MultipleChoiceTask(
    benchmark=Benchmark(name="tvbench", hub_path="FunAILab/TVBench", cache_dir="tvbench"),
    required={"video": str, "question": str, "answer": str},
    options=partial(require_texts, name="candidates"),
    answer="answer",
    answer_is_text=True,
    window=("start", "end"),
    videos=("video/{flow_config}/{video}", "{flow_config}/{video}"),
    question_format="Question: {question}\nOptions:\n{options}",  # qa_template's, as MVBench's
    option_format="({key}) {text}",
    first_line_only=True,  # infer.ipynb keeps the reply's first line ("remove potential explanation")
)
DATASET_PATH, DATASET_KWARGS = TASK.benchmark.dataset_path(), TASK.benchmark.dataset_kwargs()
check_doc, process_docs, doc_to_visual = TASK.check_doc, TASK.process_docs, TASK.doc_to_visual
doc_to_text, doc_to_messages = TASK.doc_to_text, TASK.doc_to_messages
doc_to_target, process_results = TASK.doc_to_target, TASK.process_results
