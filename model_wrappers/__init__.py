"""lmms-eval model wrappers that add attention regimes, one module per model family.

``manifests`` is the ``lmms_eval.models`` entry point: lmms-eval calls it while building its
model registry, and imports a wrapper module only when that model is asked for.
"""

WRAPPERS = {
    "qwen2_5_vl_flow": "lmms_eval_flow.model_wrappers.qwen2_5_vl_flow.Qwen2_5_VLFlow",
}


def manifests():
    # Imported here, not at module level: lmms-eval calls this while its own
    # `lmms_eval.models` package is still initialising.
    from lmms_eval.models.registry_v2 import ModelManifest

    return [ModelManifest(model_id=name, chat_class_path=path) for name, path in WRAPPERS.items()]
