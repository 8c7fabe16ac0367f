"""A model family goes by one name, ``<family>``, in every place that declares it: its layout module
``engine/families/<family>.py`` (found by ``config.model_type`` in the engine's ``FAMILIES``), its
tiny builder ``build_<family>``, its wrapper ``<family>_flow`` and its expectations in
tests/family_cases.py. These tests fail when a family is declared in one place and missing from
another."""

import importlib
import pkgutil

import pytest

from family_cases import EXPECTED, FAMILIES

from lmms_eval_flow.engine import families as engine_families
from lmms_eval_flow.model_wrappers import REPLAY, WRAPPERS, manifests
from lmms_eval_flow.tiny import FAMILIES as TINY_FAMILIES

LAYOUT_MODULES = {info.name for info in pkgutil.iter_modules(engine_families.__path__)}


def family_wrappers() -> dict[str, type]:
    """Family name -> its imported wrapper class."""
    found = {}
    for model_name, path in WRAPPERS.items():
        if model_name not in REPLAY:
            module, name = path.rsplit(".", 1)
            found[model_name.removesuffix("_flow")] = getattr(importlib.import_module(module), name)
    return found


def test_every_layout_module_is_found_by_the_model_type_it_declares():
    assert {module.__name__.rsplit(".", 1)[1] for module in engine_families.FAMILIES.values()} == LAYOUT_MODULES
    assert all(module.MODEL_TYPE == model_type for model_type, module in engine_families.FAMILIES.items())


def test_a_layout_module_without_a_model_type_is_named(tmp_path, monkeypatch):
    (tmp_path / "new_family.py").write_text("def layout_for(model, tokenizer): ...\n")
    monkeypatch.setattr(engine_families, "__path__", [*engine_families.__path__, str(tmp_path)])
    with pytest.raises(TypeError, match=r"lmms_eval_flow\.engine\.families\.new_family declare no MODEL_TYPE"):
        engine_families.declared_families()


def test_every_family_has_a_tiny_builder_a_wrapper_and_test_expectations():
    assert set(TINY_FAMILIES) == LAYOUT_MODULES
    assert set(family_wrappers()) == LAYOUT_MODULES
    assert set(EXPECTED) == LAYOUT_MODULES
    assert [family.name for family in FAMILIES] == list(TINY_FAMILIES)


def test_a_wrapper_is_registered_under_its_model_name_and_takes_its_familys_checkpoints():
    for family, wrapper in family_wrappers().items():
        assert wrapper.model_name == f"{family}_flow"
        assert engine_families.FAMILIES[wrapper.checkpoint_type].__name__ == f"{engine_families.__name__}.{family}"


def test_lmms_eval_is_given_every_wrapper():
    expected = {f"{family}_flow" for family in LAYOUT_MODULES} | {"flow_replay"}
    assert {manifest.model_id for manifest in manifests()} == expected
