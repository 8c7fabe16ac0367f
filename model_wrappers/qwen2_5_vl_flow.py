"""``qwen2_5_vl_flow``: lmms-eval's Qwen2.5-VL chat model under an attention regime.

Loading, prompting and generation are lmms-eval's own (``lmms_eval.models.chat.qwen2_5_vl``);
this wrapper only parses the regime arguments, applies the regime to the loaded model, finds
the token groups in Qwen2.5-VL's input, and attaches each reply's attention edges.
"""

from __future__ import annotations

import inspect

import torch
from accelerate import Accelerator, DistributedType
from lmms_eval.api.model import lmms
from lmms_eval.models.chat.qwen2_5_vl import Qwen2_5_VL
from lmms_eval.models.simple.qwen2_5_vl import Qwen2_5_VL as Qwen2_5_VLSimple
from transformers import AutoProcessor, AutoTokenizer, Qwen2_5_VLForConditionalGeneration

from lmms_eval_flow.engine.families import apply_regime
from lmms_eval_flow.engine.perturbations import Perturbed, parse_perturbations
from lmms_eval_flow.engine.precision import cast_parameters
from lmms_eval_flow.engine.regimes import Regime
from lmms_eval_flow.engine.session import RegimeSession
from lmms_eval_flow.harness.flow_model import FlowModel, lmms_eval_arguments


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
        accelerator = Accelerator()
        if accelerator.distributed_type == DistributedType.MULTI_CPU:
            self._init_cpu_process(accelerator, pretrained=pretrained, **kwargs)
        else:
            super().load_model(pretrained, **kwargs)
        if self._dtype != self._model.dtype:
            cast_parameters(self._model, self._dtype)

    def regime_session(self, backend: str) -> RegimeSession:
        return apply_regime(self.model, self.processor.tokenizer, self.regime, backend)

    def _init_cpu_process(self, accelerator: Accelerator, **kwargs) -> None:
        """One process of a multi-process CPU run (accelerate's MULTI_CPU, as in CI).

        lmms-eval's wrapper sends every process of a multi-process run to a CUDA device, so it
        cannot start there. Each CPU process instead sets up what lmms-eval's single-process
        path sets up, with lmms-eval's defaults, on the CPU, and takes its shard of the docs
        (rank, world size) from accelerate. Only what the chat path reads is set.
        """
        lmms.__init__(self)
        args = inspect.signature(Qwen2_5_VLSimple.__init__).bind(self, **kwargs)
        args.apply_defaults()
        a = args.arguments
        self.accelerator, self._device, self.device_map = accelerator, torch.device("cpu"), "cpu"
        load = {"torch_dtype": "bfloat16", "device_map": "cpu"}
        if a["attn_implementation"] is not None:
            load["attn_implementation"] = a["attn_implementation"]
        self._model = Qwen2_5_VLForConditionalGeneration.from_pretrained(a["pretrained"], **load).eval()
        self.processor = AutoProcessor.from_pretrained(a["pretrained"], max_pixels=a["max_pixels"], min_pixels=a["min_pixels"])
        self._tokenizer = AutoTokenizer.from_pretrained(a["pretrained"])
        self._config = self._model.config
        self.max_pixels, self.min_pixels = a["max_pixels"], a["min_pixels"]
        self.max_num_frames, self.fps = a["max_num_frames"], a["fps"]
        self.batch_size_per_gpu, self.use_cache = int(a["batch_size"]), a["use_cache"]
        self._rank, self._world_size = accelerator.process_index, accelerator.num_processes
