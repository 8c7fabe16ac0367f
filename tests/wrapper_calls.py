"""Calling a flow wrapper as lmms-eval calls it, for tests that read what it hands ``generate``."""

from __future__ import annotations

import importlib

from lmms_eval.api.instance import Instance

from lmms_eval_flow.model_wrappers import WRAPPERS


def flow_class(family: str) -> type:
    """The family's flow wrapper, as lmms-eval imports it."""
    module, name = WRAPPERS[f"{family}_flow"].rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def generate_inputs(model, messages: list[dict], max_new_tokens: int = 1) -> dict:
    """The inputs the wrapper hands ``generate`` for one request whose ``doc_to_messages`` gives
    ``messages`` (its sample must not fail)."""
    model.task_dict = {"flow_x": {"test": [{"video": "v"}]}}
    given, generate = [], model.model.generate

    def noting_inputs(**kwargs):
        given.append(kwargs)
        return generate(**kwargs)

    model.model.generate = noting_inputs
    try:
        [result] = model.generate_until([Instance(
            request_type="generate_until", idx=0,
            arguments=("", lambda doc: messages, {"max_new_tokens": max_new_tokens}, 0, "flow_x", "test"),
            metadata={"task": "flow_x", "doc_id": 0, "repeats": 1})])
    finally:
        del model.model.generate
    assert result.text.failure is None, result.text.failure
    [inputs] = given
    return inputs
