"""lmms-eval-flow: attention regimes for video LLMs, evaluated through lmms-eval."""

__version__ = "0.1.0"
