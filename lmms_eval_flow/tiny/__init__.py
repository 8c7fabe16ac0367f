"""Tiny, randomly initialised checkpoints of the real video-LLM classes, built offline.

A tiny checkpoint lets users smoke-test their setup and lets the tests exercise the real
``from_pretrained`` / processor / lmms-eval loading paths without downloading gigabytes.
Everything is random (weights, and a tokenizer trained on a small built-in corpus), so the
answers are gibberish; only the shapes, token layout and code paths are real. One builder per
family, ``build_<family>`` (in ``qwen2_5_vl`` and ``families``), found by its name: a new family's
builder needs no line elsewhere; one shared tokenizer helper (``tokenizers``).

Usage::

    from lmms_eval_flow.tiny import make_tiny_model
    path = make_tiny_model("/tmp/tiny-qwen2_5_vl")
    # then e.g. --model qwen2_5_vl_flow --model_args pretrained=/tmp/tiny-qwen2_5_vl,...

May import: the engine is not needed; transformers and tokenizers only.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

from lmms_eval_flow.tiny import families, qwen2_5_vl

BUILDER_PREFIX = "build_"


def declared_builders(*modules) -> dict[str, Callable[..., None]]:
    """Family name -> builder: each ``build_<family>(out_dir, seed, **options)`` that ``modules``
    define, in the order they define them."""
    return {name.removeprefix(BUILDER_PREFIX): value for module in modules for name, value in vars(module).items()
            if name.startswith(BUILDER_PREFIX) and inspect.isfunction(value) and value.__module__ == module.__name__}


# qwen2_5_vl (its own module), then llava_onevision, llava_next_video, videollama3, qwen3_vl (families.py)
FAMILIES = declared_builders(qwen2_5_vl, families)


def make_tiny_model(out_dir: str | Path, family: str = "qwen2_5_vl", seed: int = 0, **options) -> Path:
    """Build a tiny random checkpoint of ``family`` into ``out_dir`` and return its path.

    The result loads with the model family's usual ``from_pretrained`` / ``AutoProcessor``
    calls; the same ``seed`` always gives the same files. ``options`` go to the family's
    builder (for ``qwen2_5_vl``: ``sizes=TinySizes(...)``, ``extra_corpus=texts``).
    """
    if family not in FAMILIES:
        raise ValueError(f"Unknown model family {family!r}; valid families: {', '.join(sorted(FAMILIES))}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    FAMILIES[family](out_dir, seed, **options)
    return out_dir
