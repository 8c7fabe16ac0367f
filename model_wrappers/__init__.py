"""lmms-eval model wrappers that add attention regimes, one module per model family.

``manifests`` is the ``lmms_eval.models`` entry point: lmms-eval calls it while building its
model registry, and imports a wrapper module only when that model is asked for. So the family
wrappers are found here, not imported: every class of this folder that assigns a literal
``model_name`` (its ``--model`` name) is registered under it, and a new ``<family>_flow.py``
needs no line here.
"""

import ast
from pathlib import Path

# The one wrapper that is no model family: saved replies, re-scored (no model).
REPLAY = {"flow_replay": f"{__name__}.replay.Replay"}


def declared_model_name(node: ast.ClassDef) -> str | None:
    """The ``model_name = "..."`` a class body declares, if it declares one."""
    for statement in node.body:
        if (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                and isinstance(statement.targets[0], ast.Name) and statement.targets[0].id == "model_name"
                and isinstance(statement.value, ast.Constant)):
            return statement.value.value
    return None


def family_wrappers() -> dict[str, str]:
    """``--model`` name -> class path of every family wrapper in this folder, read from its source."""
    found = {}
    for path in sorted(Path(__file__).parent.glob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef) and (model_name := declared_model_name(node)) is not None:
                found[model_name] = f"{__name__}.{path.stem}.{node.name}"
    return found


WRAPPERS = {**family_wrappers(), **REPLAY}


def manifests():
    # Imported here, not at module level: lmms-eval calls this while its own
    # `lmms_eval.models` package is still initialising.
    from lmms_eval.models.registry_v2 import ModelManifest

    return [ModelManifest(model_id=name, chat_class_path=path) for name, path in WRAPPERS.items()]
