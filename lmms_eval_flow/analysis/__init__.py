"""The papers' analysis tools: knockout sweeps, calibrated effective ranges, the logit lens, and
the first-token forward pass they share (one model and task loaded once, many regimes).

May import: the engine, the harness, the scoring helpers; not reporting or the toy.
"""
