"""Shared test set-up: offline hubs, a private HF_HOME, the tiny model, and an lmms-eval CLI runner."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# huggingface_hub and datasets read these once, at import: set them before anything imports them.
os.environ.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="lmms_eval_flow_tests_hf_")

import pytest  # noqa: E402

TASKS_DIR = Path(__file__).resolve().parents[1] / "tasks"
# Frames of 56x56 pixels: each temporal patch (2 frames) becomes 2x2 = 4 tokens.
SMALL_VIDEO_ARGS = "device=cpu,device_map=cpu,max_pixels=3136,min_pixels=3136,max_num_frames=8"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from lmms_eval_flow.tiny_models import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("models") / "qwen2_5_vl")


def run_lmms_eval(out_dir: Path, model: str, model_args: str, tasks: str = "flow_synthetic",
                  *extra: str, processes: int = 1) -> tuple[dict, dict[str, list[dict]]]:
    """Run the real lmms-eval CLI; return its results JSON and the logged samples per task.

    The CLI can exit 0 on failure, so success means a results file that lists every task.
    """
    args = ["--model", model, "--model_args", model_args, "--tasks", tasks, "--include_path", str(TASKS_DIR),
            "--output_path", str(out_dir), "--log_samples", "--batch_size", "1", *extra]
    env = dict(os.environ)
    if processes == 1:
        command = [sys.executable, "-m", "lmms_eval", *args]
    else:
        # accelerate runs CPU processes as MULTI_CPU when told to use the CPU.
        env["ACCELERATE_USE_CPU"] = "1"
        command = [str(Path(sys.executable).with_name("accelerate")), "launch", "--multi_gpu", "--num_processes",
                   str(processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                   "-m", "lmms_eval", *args]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    found = sorted(out_dir.rglob("*_results.json"))
    assert run.returncode == 0 and found, f"lmms-eval failed ({run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}"
    results = json.loads(found[-1].read_text())
    for task in tasks.split(","):
        assert task in results["results"], f"{task} missing from results:\n{run.stderr[-4000:]}"
    samples = {
        path.name.split("_samples_")[1].removesuffix(".jsonl"): [json.loads(line) for line in path.read_text().splitlines()]
        for path in out_dir.rglob("*_samples_*.jsonl")
    }
    return results, samples
