"""lmms-eval's own wrappers, as references for ``regime=full`` (test_stock_equivalence).

Registered for the tests' lmms-eval processes through the same ``lmms_eval.models`` entry point
as the flow wrappers (a dist-info folder the test writes on ``PYTHONPATH``). Each is lmms-eval's
class with only what it needs to run a tiny video checkpoint on transformers 5.23 (the fixes
``lmms_eval_compat`` documents), or, for float32, the checkpoint loaded by ``from_pretrained`` in
float32, which lmms-eval's Qwen2.5-VL wrapper (bfloat16 only) cannot do itself.
"""

import torch
from lmms_eval.models.chat.huggingface import Huggingface
from lmms_eval.models.chat.llava_hf import LlavaHf
from lmms_eval.models.chat.qwen2_5_vl import Qwen2_5_VL
from transformers import Qwen2_5_VLForConditionalGeneration

from lmms_eval_flow.harness.lmms_eval_compat import LmmsEvalProcessor, loading_with_lm_head


class StockLlavaHf(LlavaHf):
    is_simple = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._image_processor = LmmsEvalProcessor(self._image_processor, max_frames=self.max_frames_num)


class StockHuggingface(Huggingface):
    is_simple = False

    def __init__(self, **kwargs):
        with loading_with_lm_head():
            super().__init__(**kwargs)
        self.processor = LmmsEvalProcessor(self.processor, max_frames=self.max_num_frames)


class StockQwen2_5_VLFloat32(Qwen2_5_VL):
    is_simple = False

    def __init__(self, pretrained: str, **kwargs):
        super().__init__(pretrained=pretrained, **kwargs)
        self._model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
            pretrained, dtype=torch.float32, device_map=self.device_map).eval()


MODELS = {
    "stock_llava_hf": "stock_wrappers.StockLlavaHf",
    "stock_huggingface": "stock_wrappers.StockHuggingface",
    "stock_qwen2_5_vl_float32": "stock_wrappers.StockQwen2_5_VLFloat32",
}


def manifests():
    from lmms_eval.models.registry_v2 import ModelManifest

    return [ModelManifest(model_id=name, chat_class_path=path) for name, path in MODELS.items()]
