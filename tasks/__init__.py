"""The flow task suite: pass this folder to lmms-eval with ``--include_path``.

``lmms-eval-flow tasks-dir`` prints its location.
"""

from pathlib import Path

TASKS_DIR = Path(__file__).resolve().parent
