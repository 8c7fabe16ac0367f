"""Reports over lmms-eval results files: the checkpoint x regime x task leaderboard (Markdown,
CSV, HTML with plots) and the regression gate against a committed baseline.

May import: the harness's file helpers, lmms-eval's argument parser; nothing that loads a model.
"""
