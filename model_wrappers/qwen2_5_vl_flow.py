"""``qwen2_5_vl_flow``: lmms-eval's Qwen2.5-VL chat model under an attention regime.

Loading, prompting and generation are lmms-eval's own (``lmms_eval.models.chat.qwen2_5_vl``);
this wrapper only parses the regime arguments, applies the regime to the loaded model, finds
the token groups in Qwen2.5-VL's input, and attaches each reply's attention edges.
"""

from __future__ import annotations

import inspect
from dataclasses import replace

import torch

from accelerate import Accelerator, DistributedType
from lmms_eval.api.instance import GenerationResult, Instance
from lmms_eval.api.model import lmms
from lmms_eval.models.chat.qwen2_5_vl import Qwen2_5_VL
from lmms_eval.models.simple.qwen2_5_vl import Qwen2_5_VL as Qwen2_5_VLSimple
from loguru import logger
from transformers import AutoConfig, AutoProcessor, AutoTokenizer, Qwen2_5_VLForConditionalGeneration

from lmms_eval_flow.layout import TokenLayout
from lmms_eval_flow.regimes import PARAMETERS, Regime, build_regime
from lmms_eval_flow.reply import FlowReply, note_flow_model_loaded
from lmms_eval_flow.session import RegimeSession

_LMMS_EVAL_ARGUMENTS = tuple(p for p in inspect.signature(Qwen2_5_VLSimple.__init__).parameters if p not in ("self", "kwargs"))


def qwen2_5_vl_layout(kwargs: dict, row: int, *, video_token_id: int, end_of_turn_id: int,
                      special_ids: set[int], merge_size: int) -> TokenLayout:
    """Token groups of one row of a Qwen2.5-VL forward batch.

    A frame group is one temporal patch (two sampled frames): the video tokens that share one
    temporal rotary position. ``generate`` passes those positions (``position_ids``, whose
    third-last row is time) and drops ``video_grid_thw``; a direct forward passes the grid, whose
    patches hold ``h * w / merge_size**2`` tokens each. The question is the text after the video
    up to the end of that user turn (``<|im_end|>``); ``<|vision_end|>`` and the assistant prompt
    are template.
    """
    input_ids, mask = kwargs["input_ids"], kwargs.get("attention_mask")
    present = slice(None) if mask is None else mask[row].bool()
    ids = input_ids[row][present]
    length = len(ids)
    video = (ids == video_token_id).nonzero().squeeze(1)
    if len(video) == 0:
        return TokenLayout.from_spans(length, length - 1, [], (length - 1, length - 1))
    start, stop = int(video[0]), int(video[-1]) + 1
    if stop - start != len(video):
        raise ValueError("attention regimes need at most one video per sample; this sample has several")
    if kwargs.get("position_ids") is not None:
        time = kwargs["position_ids"][-3, row][present]
        frame_sizes = torch.unique_consecutive(time[video], return_counts=True)[1].tolist()
    else:
        # video_grid_thw lists the batch's videos in order, one per row that has one.
        index = sum(bool((input_ids[r] == video_token_id).any()) for r in range(row))
        t, h, w = (int(x) for x in kwargs["video_grid_thw"][index])
        frame_sizes = [h * w // merge_size**2] * t
    if sum(frame_sizes) != len(video):
        raise ValueError(f"frame sizes {frame_sizes} do not add up to the {len(video)} video tokens of the sample")
    tokens = ids.tolist()
    end = next((i for i in range(stop, length - 1) if tokens[i] == end_of_turn_id), length - 1)
    question = next((i for i in range(stop, end) if tokens[i] not in special_ids), end)
    return TokenLayout.from_spans(length, start, frame_sizes, (question, end))


def apply_regime(model: Qwen2_5_VLForConditionalGeneration, tokenizer, regime: Regime) -> RegimeSession:
    """Put ``regime`` on a loaded Qwen2.5-VL model (the wrapper and the analysis tools use this)."""
    config = model.config
    layout_args = dict(
        video_token_id=config.video_token_id,
        end_of_turn_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        special_ids=set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder),
        merge_size=config.vision_config.spatial_merge_size,
    )
    return RegimeSession(
        model,
        model.model.language_model.layers,
        regime,
        lambda forward_kwargs, row: qwen2_5_vl_layout(forward_kwargs, row, **layout_args),
    )


class Qwen2_5_VLFlow(Qwen2_5_VL):
    """Qwen2.5-VL with ``regime=full|effective|random|staged|temporal_exit`` and its parameters."""

    is_simple = False

    def __init__(self, pretrained: str, regime: str = "full", **kwargs) -> None:
        regime_args = {key: kwargs.pop(key) for key in PARAMETERS if key in kwargs}
        unknown = sorted(set(kwargs) - set(_LMMS_EVAL_ARGUMENTS))
        if unknown:
            raise ValueError(
                f"unknown model argument(s) {', '.join(unknown)} for qwen2_5_vl_flow; valid: regime, "
                f"{', '.join(PARAMETERS)} and lmms-eval's qwen2_5_vl arguments {', '.join(_LMMS_EVAL_ARGUMENTS)}"
            )
        depth = AutoConfig.from_pretrained(pretrained).text_config.num_hidden_layers
        self.regime = build_regime(regime, depth, **regime_args)  # fails here, before the weights load
        accelerator = Accelerator()
        if accelerator.distributed_type == DistributedType.MULTI_CPU:
            self._init_cpu_process(accelerator, pretrained=pretrained, **kwargs)
        else:
            super().__init__(pretrained=pretrained, **kwargs)
        logger.info(f"qwen2_5_vl_flow: regime {self.regime.describe()}")

        self.session = apply_regime(self.model, self.processor.tokenizer, self.regime)
        note_flow_model_loaded()
        self._docs_run: list[tuple[str, int]] = []

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
        return [self._with_edges(result, plan_of[(r.task_name, r.doc_id)]) for result, r in zip(results, requests)]

    def _tracked(self, request: Instance) -> Instance:
        context, doc_to_messages, gen_kwargs, doc_id, task, split = request.args

        def messages(doc, **kwargs):
            self._docs_run.append((task, doc_id))
            return doc_to_messages(doc, **kwargs)

        return replace(request, arguments=(context, messages, gen_kwargs, doc_id, task, split))

    @staticmethod
    def _with_edges(result, plan) -> GenerationResult:
        text, counts = (result.text, result.token_counts) if isinstance(result, GenerationResult) else (result, None)
        return GenerationResult(text=FlowReply(text, plan.edges, plan.full_edges), token_counts=counts)

