"""Runs that write an edge ledger, as the reliability tests watch them: what the ledger holds, and
a ``--use_cache`` run started and left running once it has answered its first doc."""

import json
import subprocess
import time


def ledger_records(root) -> list[dict]:
    """Every record in the edge ledgers under ``root``, all ranks."""
    return [json.loads(line) for path in root.glob("*/rank_*.jsonl") for line in path.read_text().splitlines() if line]


def start_until_answered(command: list[str], env: dict, ledger) -> subprocess.Popen:
    """Start ``command`` and return once its ledger holds a record (or the run has ended)."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not ledger_records(ledger) and process.poll() is None:
        time.sleep(0.1)
    return process
