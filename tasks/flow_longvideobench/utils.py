"""flow_longvideobench_val: LongVideoBench validation questions on the video alone.

A doc has ``video_path`` (relative to ``videos/`` under ``$HF_HOME/datasets/longvideobench``,
upstream's layout), ``question``, ``option0``..``option4`` (unused ones are "N/A"),
``correct_choice`` (an index), ``duration_group``: the upper bound in seconds of the
video's length group (15, 60, 600, 3600), reported as ``accuracy_<bound>s``, and
``question_category``, one of the 17 referring-reasoning categories (S2E ... TAA), reported as
``accuracy_<category>`` in lower case: the two breakdowns LongVideoBench's evaluation reports.
This is upstream's ``longvideobench_val_v`` set-up (no interleaved subtitles), with the official
dataloader's prompt (``LongVideoBenchDataset.__getitem__`` in longvideobench/LongVideoBench): "Question: "
and the question, one "A. option" line per candidate, then "Answer with the option's letter from the
given choices directly." (the YAML's post prompt), its text items joined by new lines as lmms-eval's
task joins them. The official code sets no token budget; lmms-eval's 32 is kept.
"""

from __future__ import annotations

from lmms_eval_flow.scoring.task_utils import Benchmark
from lmms_eval_flow.scoring.task_utils import mean_of_scored  # noqa: F401 (the YAML's per-duration aggregation)
from lmms_eval_flow.scoring.video_task import Category, MultipleChoiceTask


# Perception (a scene, event, object or text referred to, then what is asked of it), then relation.
QUESTION_CATEGORIES = ("S2E", "S2O", "S2A", "E2O", "O2E", "T2E", "T2O", "T2A",
                       "E3E", "O3O", "SSS", "SOS", "SAA", "T3E", "T3O", "TOS", "TAA")


def options(doc: dict) -> list[str]:
    """``option0``..``option4`` less the unused ones ("N/A")."""
    texts = [doc.get(f"option{index}") for index in range(5)]
    return [text for text in texts if text is not None and text != "N/A"]


TASK = MultipleChoiceTask(
    benchmark=Benchmark(name="longvideobench", hub_path="longvideobench/LongVideoBench",
                        cache_dir="datasets/longvideobench",
                        published_sizes={("default", "validation"): ("flow_longvideobench_val", 1337)}),
    categories=(Category.one_each("duration_group", (15, 60, 600, 3600), names=("15s", "60s", "600s", "3600s")),
                Category.one_each("question_category", QUESTION_CATEGORIES)),
    answer="correct_choice",
    options=options,
    required={"question": str, "video_path": str},
    videos=("videos/{video_path}",),
    question_format="Question: {question}\n{options}",  # the official dataloader's "Question: " + question
)
DATASET_PATH, DATASET_KWARGS = TASK.benchmark.dataset_path(), TASK.benchmark.dataset_kwargs()
check_doc, process_docs, doc_to_visual = TASK.check_doc, TASK.process_docs, TASK.doc_to_visual
doc_to_text, doc_to_messages = TASK.doc_to_text, TASK.doc_to_messages
doc_to_target, process_results = TASK.doc_to_target, TASK.process_results
