"""``qwen2_5_vl_flow``: lmms-eval's Qwen2.5-VL chat model under an attention regime.

Loading, prompting and generation are lmms-eval's own (``lmms_eval.models.chat.qwen2_5_vl``);
this wrapper only parses the regime arguments, applies the regime to the loaded model, finds
the token groups in Qwen2.5-VL's input, and attaches each reply's attention edges. A video cut to
a window is sampled at most at the frames the window holds (``sampling_inside_windows``).
"""

from __future__ import annotations

import torch
from accelerate import Accelerator, DistributedType
from lmms_eval.models.chat import qwen2_5_vl as lmms_eval_chat_qwen2_5_vl
from lmms_eval.models.chat.qwen2_5_vl import Qwen2_5_VL
from lmms_eval.models.simple import qwen2_5_vl as lmms_eval_qwen2_5_vl
from lmms_eval.models.simple.qwen2_5_vl import Qwen2_5_VL as Qwen2_5_VLSimple

from lmms_eval_flow.engine.families import apply_regime
from lmms_eval_flow.engine.perturbations import Perturbed, parse_perturbations
from lmms_eval_flow.engine.precision import cast_parameters
from lmms_eval_flow.engine.regimes import Regime
from lmms_eval_flow.engine.session import RegimeSession
from lmms_eval_flow.harness.flow_model import FlowModel, lmms_eval_arguments
from lmms_eval_flow.harness.lmms_eval_compat import loading_as_one_process, sampling_inside_windows, take_shard


class Qwen2_5_VLFlow(FlowModel, Qwen2_5_VL):
    """Qwen2.5-VL with ``regime=full|effective|random|staged|temporal_exit`` and its parameters,
    and optionally ``perturb=`` position/order perturbations (lmms_eval_flow.engine.perturbations).

    ``dtype=float32`` runs the model in float32 instead of lmms-eval's bfloat16: on CPUs without
    bfloat16 arithmetic (the demo's and CI's) that is several times faster. lmms-eval loads the
    weights in bfloat16; float32 widens the parameters (exact) and leaves the buffers alone, so
    the rotary frequencies stay the float32 ones transformers computed (``precision``).
    """

    is_simple = False
    model_name = "qwen2_5_vl_flow"  # its --model name: model_wrappers registers it from this line
    checkpoint_type = "qwen2_5_vl"
    upstream_arguments = lmms_eval_arguments(Qwen2_5_VLSimple.__init__)
    own_arguments = ("perturb", "perturb_seed", "dtype")

    def __init__(self, pretrained: str, regime: str = "full", perturb: str | None = None, perturb_seed: int = 0,
                 dtype: str = "bfloat16", **kwargs) -> None:
        if dtype not in ("bfloat16", "float32"):
            raise ValueError(f"dtype={dtype!r} is not supported; valid: bfloat16 (lmms-eval's), float32")
        if not isinstance(perturb_seed, int) or isinstance(perturb_seed, bool) or perturb_seed < 0:
            raise ValueError(f"perturb_seed={perturb_seed!r} must be a non-negative integer")
        self._perturb, self._dtype = perturb, getattr(torch, dtype)
        super().__init__(pretrained, regime, **kwargs)
        text_model = self.model.model.language_model
        self.perturbed = Perturbed(text_model, text_model.layers, self._perturbations, perturb_seed)

    def check_regime(self, config, regime: Regime) -> None:
        super().check_regime(config, regime)
        depth = config.text_config.num_hidden_layers
        self._perturbations = parse_perturbations(self._perturb, depth, regime) if self._perturb else ()

    def load_model(self, pretrained: str, **kwargs) -> None:
        """lmms-eval's loading; in one process of a multi-process CPU run (accelerate's MULTI_CPU, as
        in CI), its single-process loading, since it sends processes of such a run to CUDA."""
        accelerator = Accelerator()
        if accelerator.distributed_type == DistributedType.MULTI_CPU:
            with loading_as_one_process(lmms_eval_qwen2_5_vl):
                super().load_model(pretrained, **kwargs)
            take_shard(self, accelerator)
        else:
            super().load_model(pretrained, **kwargs)
        if self._dtype != self._model.dtype:
            cast_parameters(self._model, self._dtype)

    def regime_session(self, backend: str) -> RegimeSession:
        return apply_regime(self.model, self.processor.tokenizer, self.regime, backend, instructions=self.instructions)

    def generating(self):
        return sampling_inside_windows(lmms_eval_chat_qwen2_5_vl)
