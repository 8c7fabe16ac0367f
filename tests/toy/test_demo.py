"""The CI accuracy gate: ``lmms-eval-flow demo`` on both shipped toys, through the CLI, then
``lmms-eval-flow regress --exact`` against the committed baseline.

It also checks that training saw what evaluation sees: for every doc, lmms-eval's reply under
``full`` is the letter the training pipeline's inputs (``ChatEncoder``, at the checkpoint's own
video settings) make the model predict.
"""

import json
import subprocess
import sys
from pathlib import Path

import torch
from transformers import Qwen2_5_VLForConditionalGeneration

from lmms_eval_flow.harness.runner import read_jsonl
from lmms_eval_flow.toy import CHECKPOINTS, video_arguments
from lmms_eval_flow.toy.benchmark import committed_split_path
from lmms_eval_flow.toy.train import ChatEncoder

ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / "results" / "baselines" / "flow_temporal_toy.csv"
CLI = [sys.executable, "-m", "lmms_eval_flow.cli"]


def test_demo_passes_the_accuracy_gate(tmp_path):
    demo = subprocess.run([*CLI, "demo", "--output", str(tmp_path)], capture_output=True, text=True)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "| checkpoint" in demo.stdout
    assert {path.name for path in tmp_path.glob("leaderboard*")} >= {"leaderboard.md", "leaderboard.csv",
                                                                     "leaderboard.html"}

    gate = subprocess.run([*CLI, "regress", "--baseline", str(BASELINE), "--current", str(tmp_path), "--exact"],
                          capture_output=True, text=True)
    assert gate.returncode == 0, gate.stdout + gate.stderr[-3000:]

    docs = [json.loads(line) for line in committed_split_path().read_text().splitlines()]
    for checkpoint in CHECKPOINTS:
        (samples_file,) = (tmp_path / checkpoint.name / "full").rglob("*_samples_flow_temporal_toy.jsonl")
        samples = read_jsonl(samples_file)
        assert len(samples) == len(docs)
        encoder = ChatEncoder(checkpoint, **video_arguments(checkpoint))
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(checkpoint).to(torch.float32).eval()
        with torch.no_grad():
            for sample in samples:
                inputs = encoder.prompt(docs[sample["doc_id"]])
                predicted = model(**inputs).logits[0, -1].argmax().item()
                assert encoder.processor.tokenizer.decode([predicted]) == sample["filtered_resps"], (checkpoint.name,
                                                                                                     sample["doc_id"])
