"""One flow model and one task, loaded once through lmms-eval, run pass after pass under changing
regimes to read what the model predicts for the first answer token.

The analysis tools (knockout, calibrate, logit lens) need the first answer token's probabilities
for the same prompts under many regimes. The model and the task are lmms-eval's own (its model
registry, its ``TaskManager`` with ``--include_path``), and every pass goes through the flow
wrapper's ``generate_until`` with one new token, so inputs are built exactly as in an evaluation;
a forward hook on the model keeps the last position's logits. Regimes change between passes by
switching the wrapper's regime session.

"Correct" means: the model's most probable first token equals the ground-truth token, the first
token of the doc's target (``doc_to_target``, e.g. the option letter "A") tokenised alone.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from loguru import logger

from lmms_eval_flow.engine.layout import TokenLayout
from lmms_eval_flow.engine.regimes import Regime


@dataclass(frozen=True)
class Doc:
    doc_id: int
    target: str
    true_token: int  # the ground-truth first answer token


@dataclass(frozen=True)
class Prediction:
    """The last prompt position of one doc under one regime."""

    probs: torch.Tensor  # [vocab] float32 probabilities of the first answer token
    layout: TokenLayout


class Probe:
    def __init__(self, model: str, model_args: str, task: str, include_path: str | Path | None = None,
                 limit: int | None = None, batch_size: int = 1):
        from lmms_eval import models
        from lmms_eval.tasks import TaskManager, get_task_dict

        from lmms_eval_flow.harness.runner import TASKS_DIR

        include_path = str(include_path or TASKS_DIR)
        manager = TaskManager("WARNING", include_path=include_path, model_name=model)
        if task not in manager.all_tasks:
            raise ValueError(f"--tasks {task!r} is not a task found with --include_path {include_path}; "
                             f"flow tasks there: {', '.join(t for t in manager.all_tasks if t.startswith('flow_'))}")
        self.lm = models.get_model(model).create_from_arg_string(model_args, {"batch_size": batch_size})
        if not hasattr(self.lm, "session"):
            raise ValueError(f"--model {model} runs no attention regimes; the analysis tools need a flow model "
                             f"(e.g. qwen2_5_vl_flow)")
        self.task_name = task
        self.task = get_task_dict([task], manager, "chat")[task]
        if self.task.get_config("output_type") != "generate_until":
            raise ValueError(f"--tasks {task} is a {self.task.get_config('output_type')} task; the analysis tools "
                             f"read the first generated token, so they need a generate_until task")
        self.lm.task_dict[task] = self.task.dataset
        self.task.build_all_requests(limit=limit)
        self.regime: Regime = self.lm.regime  # the one loaded with (--model_args regime=...)
        self.depth = self.regime.depth
        self.tokenizer = self.lm.processor.tokenizer
        self._requests = {}
        self.docs: dict[int, Doc] = {}
        for instance in self.task.instances:
            context, doc_to_messages, gen_kwargs, doc_id, task_name, split = instance.args
            one_token = {**gen_kwargs, "max_new_tokens": 1}
            self._requests[doc_id] = replace(instance, arguments=(context, doc_to_messages, one_token, doc_id, task_name, split))
            target = str(self.task.doc_to_target(self.task.dataset[split][doc_id]))
            true_token = self.tokenizer.encode(target, add_special_tokens=False)[0]
            self.docs[doc_id] = Doc(doc_id, target, true_token)

    def token_text(self, token: int) -> str:
        return self.tokenizer.decode([token])

    @contextlib.contextmanager
    def under(self, regime: Regime) -> Iterator[None]:
        """Run the model under ``regime`` inside the block, then under its own regime again."""
        lm = self.lm
        lm.session, lm.regime = lm.session.switch(regime), regime
        try:
            yield
        finally:
            lm.session, lm.regime = lm.session.switch(self.regime), self.regime

    def run(self, doc_ids: list[int], quiet: bool = False) -> dict[int, Prediction]:
        """One pass over ``doc_ids`` under the current regime; predictions in the order run (the
        order in which hooks on the model saw the prompts, batch rows in order).

        ``quiet`` hides lmms-eval's per-call progress bar (the sweeps show their own) and
        anything else written to stderr while generating, unless generation fails.
        """
        order: list[int] = []
        rows: list[torch.Tensor] = []
        layouts: list[TokenLayout] = []

        def track(request):
            context, doc_to_messages, gen_kwargs, doc_id, task_name, split = request.args

            def messages(doc, **kwargs):
                order.append(doc_id)
                return doc_to_messages(doc, **kwargs)

            return replace(request, arguments=(context, messages, gen_kwargs, doc_id, task_name, split))

        def keep_logits(module, args, output):
            rows.extend(output.logits[:, -1].float().softmax(-1).cpu())
            layouts.extend(plan.layout for plan in self.lm.session.batch.plans)

        handle = self.lm.model.register_forward_hook(keep_logits)
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr) if quiet else contextlib.nullcontext():
                self.lm.generate_until([track(self._requests[doc_id]) for doc_id in doc_ids])
        except BaseException:
            sys.stderr.write(stderr.getvalue()[-5000:])
            raise
        finally:
            handle.remove()
        if len(rows) != len(order) or sorted(order) != sorted(doc_ids):
            raise RuntimeError(f"ran {len(rows)} prompts for docs {order}, asked for {doc_ids}; cannot pair logits with docs")
        return {doc_id: Prediction(probs, layout) for doc_id, probs, layout in zip(order, rows, layouts)}


def quiet_logs() -> None:
    """lmms-eval logs every call at INFO; the analysis tools keep warnings and errors only."""
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
