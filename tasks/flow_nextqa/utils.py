"""flow_nextqa_mc: NExT-QA multiple choice (test split).

A doc has ``video`` (a video id; the file is ``NExTVideo/<video>.mp4`` under
``$HF_HOME/nextqa``, upstream's layout), ``question``, five options ``a0``..``a4``, ``answer``,
the index of the right one, and ``type``, the question's type code. Accuracy is broken down as
NExT-QA's own evaluation (``eval_mc.py``) breaks it down: by type group, causal (C*), temporal
(T*) and descriptive (D*), and by type within each, previous (TP) and next (TN) counted together
as before/after.
"""

from __future__ import annotations

from lmms_eval_flow.scoring.task_utils import Benchmark
from lmms_eval_flow.scoring.task_utils import mean_of_scored  # noqa: F401 (the YAML's per-type aggregation)
from lmms_eval_flow.scoring.video_task import Category, MultipleChoiceTask

OPTION_FIELDS = tuple(f"a{index}" for index in range(5))
QUESTION_TYPES = Category("type", {
    "CW": ("causal", "causal_why"), "CH": ("causal", "causal_how"),
    "TN": ("temporal", "temporal_before_after"), "TP": ("temporal", "temporal_before_after"),
    "TC": ("temporal", "temporal_when"),
    "DC": ("descriptive", "descriptive_count"), "DL": ("descriptive", "descriptive_location"),
    "DO": ("descriptive", "descriptive_other"),
})


def options(doc: dict) -> list[str]:
    return [str(doc[name]).strip() for name in OPTION_FIELDS]


TASK = MultipleChoiceTask(
    benchmark=Benchmark(name="nextqa", hub_path="lmms-eval/NExTQA", cache_dir="nextqa",
                        published_sizes={("MC", "test"): ("flow_nextqa_mc", 8564)}),
    videos=("NExTVideo/{video}.mp4",),
    required={"video": (int, str), "question": str, **dict.fromkeys(OPTION_FIELDS, (str, int, float))},
    options=options,
    answer="answer",
    categories=(QUESTION_TYPES,),
    strip_question=True,
)
DATASET_PATH, DATASET_KWARGS = TASK.benchmark.dataset_path(), TASK.benchmark.dataset_kwargs()
check_doc, process_docs, doc_to_visual = TASK.check_doc, TASK.process_docs, TASK.doc_to_visual
doc_to_text, doc_to_messages = TASK.doc_to_text, TASK.doc_to_messages
doc_to_target, process_results = TASK.doc_to_target, TASK.process_results
