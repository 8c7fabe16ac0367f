"""lmms-eval model wrappers that add attention regimes, one module per model family.

``manifests`` is the ``lmms_eval.models`` entry point: lmms-eval calls it while building its
model registry, and imports a wrapper module only when that model is asked for.
"""

WRAPPERS = {
    "qwen2_5_vl_flow": "lmms_eval_flow.model_wrappers.qwen2_5_vl_flow.Qwen2_5_VLFlow",
    "qwen3_vl_flow": "lmms_eval_flow.model_wrappers.qwen3_vl_flow.Qwen3_VLFlow",
    "llava_onevision_flow": "lmms_eval_flow.model_wrappers.llava_onevision_flow.LlavaOnevisionFlow",
    "llava_next_video_flow": "lmms_eval_flow.model_wrappers.llava_next_video_flow.LlavaNextVideoFlow",
    "videollama3_flow": "lmms_eval_flow.model_wrappers.videollama3_flow.VideoLLaMA3Flow",
    "flow_replay": "lmms_eval_flow.model_wrappers.replay.Replay",  # saved replies, re-scored (no model)
}


def manifests():
    # Imported here, not at module level: lmms-eval calls this while its own
    # `lmms_eval.models` package is still initialising.
    from lmms_eval.models.registry_v2 import ModelManifest

    return [ModelManifest(model_id=name, chat_class_path=path) for name, path in WRAPPERS.items()]
