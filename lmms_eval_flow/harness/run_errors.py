"""Errors that end a flow run, and how they reach the exit status of ``lmms-eval ...``.

lmms-eval's CLI (``cli_evaluate``) catches every ``Exception`` a run raises, logs it and exits 0
(unless ``--verbosity DEBUG``): a run that could not produce valid results would look like one
that did. So an error after which a flow run cannot give valid results is a ``RunStopped``, a
``SystemExit``, which ``except Exception`` lets through: lmms-eval's code catches nothing wider
(no bare ``except:`` or ``except BaseException`` on the way from the model or the scorer to its
``__main__``), so Python ends the process with exit status 1 and prints the message on stderr, on
a line of its own starting ``lmms-eval-flow stopped the run:``. A ``SystemExit`` is Python's own
way for a program to ask to end with a status; unlike a ``BaseException`` of our own it ends the
run without a traceback, as the message says everything (the error, the sample or folder, and
the fix). ``--verbosity DEBUG`` changes nothing here.

It ends the process, not one run: under ``lmms-eval --config`` the runs listed after it do not
start. In a multi-process run (``accelerate launch``) the process that stops exits 1 and the
launcher ends the others and exits non-zero.

lmms-eval's writing of its own results files, after the last flow code of a run has returned,
logs any error and goes on (a full disk leaves 0-byte files). Once a flow model or task has
loaded, lmms-eval's results tracker checks what it saved (``results_files``): a results JSON
missing, empty or not JSON, or a samples file short of one JSON line per sample, stops the run
(``ResultsNotWritten``). What this cannot catch: errors of lmms-eval before any flow code runs
(an unknown ``--tasks``), which it logs before exiting 0.

What raises one: bad ``--model_args`` (``ConfigurationError``), ``strict=true`` at a failed
sample, an edge ledger that cannot be written or is in use by another run, a wrapper whose
prompts and answers do not pair (flow_model), the same generation error on several samples in a
row (``RepeatedGenerationError``), a task whose every sample failed (``NothingRan``), and results
files lmms-eval did not write (``ResultsNotWritten``).
"""

from __future__ import annotations

PREFIX = "lmms-eval-flow stopped the run"


class RunStopped(SystemExit):
    """An error that ends the run rather than one sample; the process exits 1, with the line
    ``lmms-eval-flow stopped the run: <type>: <message>`` on stderr. ``str(error)`` is the message."""

    def __init__(self, message: str):
        super().__init__(message)
        # What Python prints, exiting with status 1; on a line of its own after lmms-eval's progress bars.
        self.code = f"\n{PREFIX}: {type(self).__name__}: {message}"


class ConfigurationError(RunStopped):
    """The model cannot be built from the run's ``--model_args`` (a bad value, a missing checkpoint)."""


class RepeatedGenerationError(RunStopped):
    """The same generation error on ``REPEATED_ERRORS`` samples in a row: its cause is not theirs."""


class NothingRan(RunStopped):
    """Every sample of a task failed: its accuracy would be a 0.0 that measured nothing."""


class ResultsNotWritten(RunStopped):
    """lmms-eval saved the run's results or samples, and the file is not what it saved (``results_files``)."""


# How many samples in a row may fail generation with the same error before the run stops.
REPEATED_ERRORS = 3

# Known causes of generation errors that are not a sample's, and their fixes (matched in the message).
KNOWN_FIXES = (
    ("Found no NVIDIA driver", "this machine has no CUDA GPU: run on the CPU with device=cpu,device_map=cpu in --model_args"),
    ("Torch not compiled with CUDA enabled",
     "this torch has no CUDA: run on the CPU with device=cpu,device_map=cpu in --model_args"),
    ("answered without running the model", "lmms-eval's wrapper caught the error and logged it above"),
)


def fix_for(error: str) -> str | None:
    """The fix of a known error, or None."""
    return next((fix for known, fix in KNOWN_FIXES if known in error), None)


def check_some_ran(reasons: list) -> None:
    """Stop the run when every sample of a task failed (``reasons``: each doc's failure or None).

    Called by the tasks' ``failed_samples`` aggregation, which lmms-eval runs once per task on
    every doc of the run (all processes gathered), after lmms-eval's response cache: the one
    place that sees a whole task. Its accuracy would be 0.0 and look measured; the run stops
    before lmms-eval writes any results, so no such number is written.
    """
    if not reasons or any(reason is None for reason in reasons):
        return
    distinct = list(dict.fromkeys(reasons))
    shown = "; ".join(distinct[:3]) + (f"; and {len(distinct) - 3} more" if len(distinct) > 3 else "")
    missing = all(reason.endswith(": no such file") for reason in reasons)
    hint = (" None of the videos is there: are the benchmark's video archives extracted (under $HF_HOME/<cache_dir>, "
            "or in LMMS_EVAL_FLOW_DATA_DIR)?" if missing else "")
    raise NothingRan(f"every one of the {len(reasons)} samples of a task failed, so it has no accuracy (0.0 would "
                     f"look like a measured score) and no results are written.{hint} The failures: {shown}")
