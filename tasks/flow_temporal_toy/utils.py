"""flow_temporal_toy: the embedded default's temporal benchmark (lmms_eval_flow.toy.benchmark).

Its hooks live with the toy (``lmms_eval_flow.toy.task``), which trains on the same prompts.
"""

from lmms_eval_flow.scoring.task_utils import failed_samples, mean_of_scored  # noqa: F401 (the YAML's aggregations)
from lmms_eval_flow.toy.task import (  # noqa: F401 (the YAML's hooks)
    doc_to_messages,
    doc_to_target,
    doc_to_text,
    doc_to_visual,
    process_results,
)
