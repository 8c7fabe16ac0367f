"""benchmarks/device_check.py's parts that need no GPU and no lmms-eval matrix: the jobs it plans,
the checks and table it builds from run results (fake ones here), its NaN probe, and the attention
timing at a tiny length (dense and blocks; flex's compilation is left to the script's own CPU run)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from family_cases import EXPECTED

from lmms_eval_flow.tiny import FAMILIES

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "device_check.py"
spec = importlib.util.spec_from_file_location("device_check", SCRIPT)
device_check = sys.modules["device_check"] = importlib.util.module_from_spec(spec)  # dataclasses look it up
spec.loader.exec_module(device_check)


def test_every_family_has_the_small_model_args_of_the_family_tests():
    assert set(device_check.FAMILY_ARGS) == set(FAMILIES)
    for family, (_, _, _, args) in EXPECTED.items():
        ours = dict(pair.split("=") for pair in device_check.FAMILY_ARGS[family].split(",") if pair)
        theirs = dict(pair.split("=") for pair in args.split(","))
        assert {k: v for k, v in theirs.items() if not k.startswith("device")}.items() <= ours.items()
        assert ours.get("dtype", "bfloat16") == "bfloat16"


def test_jobs_one_process_per_backend_and_a_cpu_dense_reference_on_cuda(tmp_path):
    dirs = {family: tmp_path / family for family in FAMILIES}
    jobs = device_check.plan_runs(list(FAMILIES), ["full", "random"], ["dense", "blocks", "flex"], dirs, "cuda:0",
                                  4, 3, tmp_path)
    assert [(job[0].where, job[0].backend) for job in jobs] == [
        ("device", "dense"), ("device", "blocks"), ("device", "flex")] + [("cpu", "dense")] * device_check.CPU_JOBS
    runs = [run for job in jobs for run in job]
    assert len(runs) == 3 * 2 * len(FAMILIES) + 2 * len(FAMILIES)
    references = {(run.family, run.regime) for run in runs if run.where == "cpu"}
    assert references == {(family, regime) for family in FAMILIES for regime in ("full", "random")}
    for run in runs:
        args = run.args["model_args"]
        assert f"attention_backend={run.backend}" in args and f"regime={run.regime}" in args
        assert ("device=cpu,device_map=cpu" in args) == (run.where == "cpu")
        assert ("device=cuda:0,device_map=cuda:0" in args) == (run.where == "device")
        assert run.args["limit"] == 4
        assert run.args["gen_kwargs"] == ("max_new_tokens=3" if run.where == "device" else "max_new_tokens=1")
        assert device_check.FAMILY_ARGS[run.family] in args
    on_cpu = device_check.plan_runs(["qwen2_5_vl"], ["full"], ["dense", "flex"], dirs, "cpu", 1, 2, tmp_path)
    assert [job[0].where for job in on_cpu] == ["device", "device"]  # the dense row is the CPU reference


def sample(doc: int, reply: str = "A", edges: int = 100, failed=None) -> dict:
    return {"doc_id": doc, "filtered_resps": reply, "attention_edges": edges, "failed_samples": failed,
            "prefill_seconds": 0.5}


def fake_runs(device: str = "cuda") -> list:
    runs = []
    for backend in ("dense", "blocks", "flex"):
        for regime in ("full", "effective"):
            runs.append(device_check.Run("qwen2_5_vl", regime, backend, "device", {}, samples=[sample(0), sample(1)],
                                         seconds=1.0, nonfinite=0))
    if device == "cuda":
        for regime in ("full", "effective"):
            runs.append(device_check.Run("qwen2_5_vl", regime, "dense", "cpu", {}, samples=[sample(0), sample(1)],
                                         nonfinite=0))
    return runs


def find(rows, regime, backend):
    return next(r for r in rows if r["regime"] == regime and r["backend"] == backend)


@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_rows_pass_when_replies_edges_and_probe_agree(device):
    rows = device_check.cli_rows(fake_runs(device), 2, device)
    assert len(rows) == 6 and all(r["ok"] for r in rows), [r["problems"] for r in rows]
    assert all(r["replies_equal_dense"] and r["edges_equal_cpu"] and r["device"] == device for r in rows)
    table = device_check.render_table(rows)
    assert table.count("PASS") == 6 and "FAIL" not in table and device_check.failures(rows) == []


def test_each_check_fails_its_row_and_says_why():
    runs = fake_runs()
    by = {(r.regime, r.backend, r.where): r for r in runs}
    by[("effective", "flex", "device")].samples = [sample(0), sample(1, reply="B")]
    by[("full", "blocks", "device")].samples = [sample(0), sample(1, edges=99)]
    by[("full", "dense", "device")].nonfinite = 2
    by[("full", "flex", "device")].samples = [sample(0, failed="bad video"), sample(1)]
    by[("effective", "blocks", "device")].error = "no results from lmms-eval: boom"
    by[("effective", "blocks", "device")].samples = None
    rows = device_check.cli_rows(runs, 2, "cuda")
    assert "replies differ from dense's on docs [1]" in find(rows, "effective", "flex")["problems"]
    assert "edges {0: 100, 1: 99} != CPU's {0: 100, 1: 100}" in find(rows, "full", "blocks")["problems"]
    assert "2 non-finite" in find(rows, "full", "dense")["problems"]
    assert "failed samples [0]: bad video" in find(rows, "full", "flex")["problems"]
    assert "boom" in find(rows, "effective", "blocks")["problems"]
    assert find(rows, "effective", "dense")["ok"]
    assert len(device_check.failures(rows)) == 5
    table = device_check.render_table(rows)
    assert table.count("FAIL") == 5 and table.count("PASS") == 1
    # a short run, and a run the probe could not attribute, fail too
    runs = fake_runs()
    runs[0].samples = [sample(0)]
    runs[1].nonfinite, runs[1].probe_note = None, "probe: no report from the lmms-eval process"
    rows = device_check.cli_rows(runs, 2, "cuda")
    assert "1 of 2 docs" in rows[0]["problems"] and "probe: no report" in rows[1]["problems"]


PROBED = """
import sys, torch
class TinyDecoderLayer(torch.nn.Module):
    def forward(self, x):
        return x * float(sys.argv[-1])
class TinyForConditionalGeneration(torch.nn.Module):
    def __init__(self, path):
        super().__init__()
        self.config = type("Config", (), {"_name_or_path": path})()
        self.layer = TinyDecoderLayer()
    def forward(self, x):
        return type("Output", (), {"logits": self.layer(x)})()
for path in ("/models/a", "/models/b"):
    model = TinyForConditionalGeneration(path)
    model(torch.ones(2)); model(torch.ones(2))
"""


@pytest.mark.parametrize("factor, bad", [("1.0", 0), ("nan", 4)])  # 2 forwards x (layer + logits)
def test_probe_counts_nonfinite_outputs_per_model_of_an_lmms_eval_process(tmp_path, factor, bad):
    (tmp_path / "sitecustomize.py").write_text(device_check.PROBE)
    script, config = tmp_path / "probed.py", tmp_path / "job0.yaml"
    script.write_text(PROBED)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "DEVICE_CHECK_PROBE_DIR": str(tmp_path)}
    subprocess.run([sys.executable, str(script), "--config", str(config), factor], env=env, check=True)
    models = device_check.probe_counts(tmp_path, config)
    assert models == [{"path": "/models/a", "nonfinite": bad}, {"path": "/models/b", "nonfinite": bad}]
    assert device_check.probe_counts(tmp_path, tmp_path / "job1.yaml") is None
    runs = [device_check.Run("f", "full", "dense", "device", {"model_args": f"pretrained={p},regime=full"})
            for p in ("/models/a", "/models/b", "/models/c")]
    device_check.attribute_probe(runs, models)
    assert [r.nonfinite for r in runs] == [bad, bad, None] and "not this run's" in runs[2].probe_note


def test_attention_timing_at_a_tiny_length_matches_dense_and_reports_every_backend():
    rows = device_check.attention_rows("tiny", frames=2, tokens_per_frame=16, device=torch.device("cpu"), repeats=3,
                                       heads=4, kv_heads=2, head_dim=32, backends=("dense", "blocks"))
    assert [r["backend"] for r in rows] == ["stock sdpa", "dense", "blocks"]
    assert all(r["ok"] for r in rows), [r["problems"] for r in rows]
    blocks = rows[2]
    assert 0 < blocks["kept"] < 1 and blocks["attention_ms"] > 0 and blocks["max_abs_diff_dense"] <= device_check.ATOL
    assert blocks["x_stock_per_kept_edge"] == pytest.approx(blocks["x_stock"] / blocks["kept"])
    assert blocks["peak_mib"] is None  # measured on CUDA only
    assert "tiny: 93 positions" in device_check.render_table(rows)
    json.dumps(rows)  # the JSON the script writes


def test_the_script_refuses_cuda_where_there_is_none(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device_check.main(["--output", str(tmp_path)]) == 2
