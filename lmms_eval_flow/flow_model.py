"""What every flow model wrapper shares, whatever the family: regime arguments checked before
the model loads, and replies that carry their sample's attention edges.

A family wrapper subclasses ``FlowModel`` and lmms-eval's own wrapper for that family
(``class Qwen2_5_VLFlow(FlowModel, Qwen2_5_VL)``), calls ``parse_flow_arguments`` first in its
``__init__``, loads through lmms-eval, then calls ``start_regime`` with a ``RegimeSession`` built
on the loaded model with the family's layout function.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, replace

from lmms_eval.api.instance import GenerationResult, Instance
from loguru import logger

from .regimes import PARAMETERS, Regime, build_regime
from .reply import FlowReply, note_flow_model_loaded
from .session import BACKENDS, RegimeSession


def lmms_eval_arguments(upstream_init) -> tuple[str, ...]:
    """The named arguments of an lmms-eval wrapper's ``__init__``."""
    return tuple(p for p in inspect.signature(upstream_init).parameters if p not in ("self", "args", "kwargs"))


@dataclass(frozen=True)
class FlowArguments:
    regime: Regime
    backend: str


def parse_flow_arguments(model_name: str, regime: str, depth: int, kwargs: dict, upstream_arguments) -> tuple[FlowArguments, dict]:
    """Split ``--model_args`` into our validated arguments and those for lmms-eval's wrapper.

    Runs before any weights load, so a typo costs seconds, not a model load.
    """
    regime_args = {key: kwargs.pop(key) for key in PARAMETERS if key in kwargs}
    backend = kwargs.pop("attention_backend", "auto")
    unknown = sorted(set(kwargs) - set(upstream_arguments))
    if unknown:
        raise ValueError(
            f"unknown model argument(s) {', '.join(unknown)} for {model_name}; valid: regime, attention_backend, "
            f"{', '.join(PARAMETERS)} and lmms-eval's arguments {', '.join(upstream_arguments)}"
        )
    if backend not in BACKENDS:
        raise ValueError(f"attention_backend={backend!r} is not valid; valid: {', '.join(BACKENDS)}")
    return FlowArguments(build_regime(regime, depth, **regime_args), backend), kwargs


class FlowModel:
    """Mixin for an lmms-eval chat wrapper: run its generation under ``self.session``'s regime."""

    regime: Regime
    session: RegimeSession

    def start_regime(self, session: RegimeSession) -> None:
        """Run from now on under ``session`` (the family's ``apply_regime`` on the loaded model)."""
        self.session = session
        self._docs_run: list[tuple[str, int]] = []
        note_flow_model_loaded()
        logger.info(f"{type(self).__name__}: regime {self.regime.describe()}")

    def generate_until(self, requests: list[Instance]) -> list[GenerationResult]:
        """lmms-eval's generation, with each reply carrying its sample's attention edges.

        lmms-eval builds every prompt from ``doc_to_messages`` right before that prompt's
        forward, in batch order; noting which doc each call was for pairs every prefill's
        plan with its request.
        """
        self._docs_run.clear()
        self.session.take_records()
        results = super().generate_until([self._tracked(request) for request in requests])
        plans = self.session.take_records()
        if len(plans) != len(self._docs_run):
            raise RuntimeError(f"ran {len(plans)} prefills for {len(self._docs_run)} prompts; cannot pair edges with docs")
        plan_of = dict(zip(self._docs_run, plans))
        return [_with_edges(result, plan_of[(r.task_name, r.doc_id)]) for result, r in zip(results, requests)]

    def _tracked(self, request: Instance) -> Instance:
        context, doc_to_messages, gen_kwargs, doc_id, task, split = request.args

        def messages(doc, **kwargs):
            self._docs_run.append((task, doc_id))
            return doc_to_messages(doc, **kwargs)

        return replace(request, arguments=(context, messages, gen_kwargs, doc_id, task, split))


def _with_edges(result, plan) -> GenerationResult:
    text, counts = (result.text, result.token_counts) if isinstance(result, GenerationResult) else (result, None)
    return GenerationResult(text=FlowReply(text, plan.edges, plan.full_edges), token_counts=counts)
