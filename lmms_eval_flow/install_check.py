"""``lmms-eval-flow check-install``: ``pip check`` on the installed environment, less one known
false report.

decord 0.6.0, the only decord release (lmms-eval's and qwen-vl-utils' video reader), ships one
Linux wheel whose tag says CPython 3.6 although it runs on every CPython 3; pip's check reports
it as "not supported on this platform". That line alone is set aside, by its exact text, so any
other broken or missing requirement still fails the check.
"""

from __future__ import annotations

import subprocess
import sys

KNOWN_FALSE_REPORTS = ("decord 0.6.0 is not supported on this platform",)


def real_problems(pip_check_output: str) -> list[str]:
    """The lines of ``pip check``'s output that report a real problem."""
    lines = [line.strip() for line in pip_check_output.splitlines() if line.strip()]
    return [line for line in lines if line not in KNOWN_FALSE_REPORTS and line != "No broken requirements found."]


def check_install() -> int:
    """Run ``pip check``; print and return 1 if it reports anything but the known false reports."""
    run = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    problems = real_problems(run.stdout + run.stderr)
    if problems:
        print("pip check found broken requirements:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    if run.returncode != 0 and not (run.stdout + run.stderr).strip():
        print(f"pip check exited {run.returncode} without saying why", file=sys.stderr)
        return 1
    print("pip check: no broken requirements" + (" (decord's wheel tag set aside: see lmms_eval_flow.install_check)"
                                                 if run.returncode else ""))
    return 0
