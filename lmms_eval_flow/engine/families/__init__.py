"""The supported model families, and ``apply_regime``: a regime on any loaded model of them.

A family is one module here holding its layout function (one batch row's token ids and the
processor's outputs -> a ``TokenLayout``) and ``layout_for(model, tokenizer)``, which binds a
loaded checkpoint's ids into it; optionally ``check_regime(config, regime)``, which refuses what
the family cannot run. ``FAMILIES`` finds them by the checkpoint's ``config.model_type``.

For use without lmms-eval (a notebook, another harness)::

    session = apply_regime(model, processor.tokenizer, "effective")   # or a Regime
    with session, torch.no_grad():
        model(**inputs)
    [plan] = session.take_records()   # plan.edges, plan.full_edges, plan.edges_per_layer
"""

from __future__ import annotations

from types import ModuleType

from lmms_eval_flow.engine.families import llava_next_video, llava_onevision, qwen2_5_vl, qwen3_vl, videollama3
from lmms_eval_flow.engine.regimes import Regime, build_regime
from lmms_eval_flow.engine.session import RegimeSession

# config.model_type -> the family's module: every module of this folder, under its checkpoints' model_type
# (tests/test_family_declarations.py fails on one left out)
FAMILIES: dict[str, ModuleType] = {
    "qwen2_5_vl": qwen2_5_vl,
    "qwen3_vl": qwen3_vl,
    "llava_onevision": llava_onevision,
    "llava_next_video": llava_next_video,
    "video_llama_3": videollama3,
}


def family_of(config) -> ModuleType:
    if config.model_type not in FAMILIES:
        raise ValueError(f"no attention regimes for model_type={config.model_type!r}; supported: {', '.join(FAMILIES)}")
    return FAMILIES[config.model_type]


def check_regime(config, regime: Regime) -> None:
    """Refuse, before any weights load, what the checkpoint's family cannot run with ``regime``."""
    check = getattr(family_of(config), "check_regime", None)
    if check is not None:
        check(config, regime)


def apply_regime(model, tokenizer, regime: Regime | str, backend: str = "auto", **parameters) -> RegimeSession:
    """Put ``regime`` (a ``Regime``, or a regime name and its model arguments, e.g.
    ``"effective", cross_frame="6-15"``) on a loaded model of a supported family."""
    config = model.config
    if isinstance(regime, str):
        regime = build_regime(regime, config.text_config.num_hidden_layers, model_type=config.model_type,
                              checkpoint=config.name_or_path, **parameters)
    check_regime(config, regime)
    return RegimeSession(model, model.model.language_model.layers, regime,
                         family_of(config).layout_for(model, tokenizer), backend)
