"""How replies are scored: the answer parser, the helpers the benchmark tasks share (data
source, doc checks, per-doc scores and aggregations), and the optional LLM judge.

May import: the harness (a reply's edges and failure), lmms-eval; not the engine's internals.
"""
