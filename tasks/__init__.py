"""The flow task suite: pass this folder to lmms-eval with ``--include_path``.

``lmms-eval-flow tasks-dir`` prints its location (``lmms_eval_flow.harness.runner.TASKS_DIR``).
"""
