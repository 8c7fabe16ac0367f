"""The supported model families, and ``apply_regime``: a regime on any loaded model of them.

A family is one module here holding its layout function (one batch row's token ids and the
processor's outputs -> a ``TokenLayout``) and ``layout_for(model, tokenizer)``, which binds a
loaded checkpoint's ids into it; optionally ``check_regime(config, regime)``, which refuses what
the family cannot run. Each declares ``MODEL_TYPE``, its checkpoints' ``config.model_type``,
by which ``FAMILIES`` finds it.

For use without lmms-eval (a notebook, another harness)::

    session = apply_regime(model, processor.tokenizer, "effective",   # or a Regime
                           instructions=["Only give the best option."])   # template, not question
    with session, torch.no_grad():
        model(**inputs)
    [plan] = session.take_records()   # plan.edges, plan.full_edges, plan.edges_per_layer
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Collection
from types import ModuleType

from lmms_eval_flow.engine.regimes import Regime, build_regime
from lmms_eval_flow.engine.session import RegimeSession


def declared_families() -> dict[str, ModuleType]:
    """config.model_type -> family module: every module of this folder, under the ``MODEL_TYPE``
    it declares, so a new family's module needs no line here."""
    modules = [importlib.import_module(f"{__name__}.{info.name}") for info in pkgutil.iter_modules(__path__)]
    undeclared = [module.__name__ for module in modules if not isinstance(getattr(module, "MODEL_TYPE", None), str)]
    if undeclared:
        raise TypeError(f"family module(s) {', '.join(undeclared)} declare no MODEL_TYPE (their checkpoints' model_type)")
    return {module.MODEL_TYPE: module for module in modules}


FAMILIES: dict[str, ModuleType] = declared_families()


def family_of(config) -> ModuleType:
    if config.model_type not in FAMILIES:
        raise ValueError(f"no attention regimes for model_type={config.model_type!r}; supported: {', '.join(FAMILIES)}")
    return FAMILIES[config.model_type]


def check_regime(config, regime: Regime) -> None:
    """Refuse, before any weights load, what the checkpoint's family cannot run with ``regime``."""
    check = getattr(family_of(config), "check_regime", None)
    if check is not None:
        check(config, regime)


def apply_regime(model, tokenizer, regime: Regime | str, backend: str = "auto", instructions: Collection[str] = (),
                 **parameters) -> RegimeSession:
    """Put ``regime`` (a ``Regime``, or a regime name and its model arguments, e.g.
    ``"effective", cross_frame="6-15"``) on a loaded model of a supported family.

    ``instructions`` are the texts of the tasks' instructions ("Only give the best option."): a
    user text that opens or closes with one has it drawn as template, not question."""
    config = model.config
    if isinstance(regime, str):
        regime = build_regime(regime, config.text_config.num_hidden_layers, model_type=config.model_type,
                              checkpoint=config.name_or_path, **parameters)
    check_regime(config, regime)
    return RegimeSession(model, model.model.language_model.layers, regime,
                         family_of(config).layout_for(model, tokenizer, instructions), backend)
