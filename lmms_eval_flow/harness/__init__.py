"""Everything that depends on lmms-eval: the flow model mixin the wrappers share, argument and
run-option parsing, the reply that carries edges to the scorer, the edge ledger, per-sample
checks, the compat fixes for lmms-eval 0.7.3, the errors that stop a run, and the CLI runner.

May import: the engine, lmms-eval, transformers; not scoring, analysis, reporting or the toy.
"""
