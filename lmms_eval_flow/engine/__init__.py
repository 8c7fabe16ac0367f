"""The regime engine: token layouts, regimes (rules over token groups and layers), per-sample
plans and their exact edge counts, the attention function and its backends, temporal exit,
perturbations, and the ``RegimeSession`` that puts a regime on a loaded transformers model.

May import: torch and transformers only; never lmms-eval, the harness, the tasks or the wrappers
(a test checks), so it works in a notebook or another harness.
"""
