"""The prepared device check: every family, regime and attention backend on one device, in one table.

Run from the repository root on a machine with one CUDA GPU (under 8 minutes on an H200):

    python benchmarks/device_check.py --output results/benchmarks/device_check

and here, on a CPU, as a smoke run of the same code (every family, regime and backend, fewer docs,
short sequences): ``python benchmarks/device_check.py --device cpu --quick --output /tmp/devcheck``.

Part 1, through the real lmms-eval CLI (``run_lmms_eval_many``: one lmms-eval process per backend,
its start-up paid once): each family's tiny checkpoint (``make_tiny_model``) under every regime and
every backend (``attention_backend=dense|blocks|flex``), in bfloat16 on the device, on
``flow_synthetic``. A row passes when its run wrote every doc, no sample failed, no decoder layer's
output and no logit was NaN or infinite (a ``sitecustomize`` probe handed to the lmms-eval processes
counts them), its replies equal the dense backend's on the same device, and each doc's
``attention_edges`` equal a CPU run's (``device=cpu,device_map=cpu``, dense; with ``--device cpu``
that is the dense row itself).

Part 2, the attention call alone: ``effective`` at the 28-layer defaults on a synthetic 16- and
64-frame layout (4k and 16k positions), 7B-like heads (28 query / 4 key-value heads of 128),
bfloat16, through our registered attention function under flex / blocks / dense, against stock SDPA
causal attention. Times are over all 28 layers (one call per distinct rule set, weighted by its
layers), each call warmed up, calls interleaved, best of ``--repeats``; on CUDA timed with CUDA
events, peak memory from ``torch.cuda.max_memory_allocated`` above the inputs, measured on a fresh
batch plan (so it includes the backend's mask or BlockMask). A row passes when its output is finite
and within ``ATOL`` of the dense backend's.

Writes ``device_check.json`` and ``device_check.txt`` to ``--output`` (default ``$OUT`` if set,
else ``results/benchmarks/device_check``); exits 1 when a row fails, naming it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from lmms_eval_flow.engine.regimes import REGIMES

BACKENDS = ("dense", "blocks", "flex")  # session.BACKENDS less "auto"; dense is the reference
TASK = "flow_synthetic"
DTYPE = "bfloat16"

# Small lmms-eval model args per family (as tests/family_cases.py EXPECTED has them, less the device):
# Qwen-VL frames of 56x56 / 64x64 pixels, 8 frames. llava_hf (llava_onevision) loads the checkpoint's
# own dtype (float32 for the tiny one) unless told; the others load bfloat16, lmms-eval's default.
QWEN2_5_VL_PIXELS, QWEN3_VL_PIXELS = 56 * 56, 64 * 64
FAMILY_ARGS = {
    "qwen2_5_vl": f"max_pixels={QWEN2_5_VL_PIXELS},min_pixels={QWEN2_5_VL_PIXELS},max_num_frames=8,dtype={DTYPE}",
    "llava_onevision": f"dtype={DTYPE}",
    "llava_next_video": "",
    "videollama3": "",
    "qwen3_vl": f"max_pixels={QWEN3_VL_PIXELS},min_pixels={QWEN3_VL_PIXELS},max_num_frames=8",
}

# Part 2's heads (Qwen2.5-7B's), depth, and the output tolerance against dense in bfloat16.
HEADS, KV_HEADS, HEAD_DIM, DEPTH = 28, 4, 128, 28
ATOL = 2e-2


def progress(message: str) -> None:
    print(f"[device_check {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- part 1: the lmms-eval matrix ------------------------------------------------------------------

@dataclass
class Run:
    """One lmms-eval run of the matrix; ``where`` is "device" (the checked row) or "cpu" (the edge reference)."""
    family: str
    regime: str
    backend: str
    where: str
    args: dict  # run_lmms_eval_many's dict
    samples: list | None = None
    error: str | None = None
    seconds: float | None = None
    nonfinite: int | None = None  # None: the probe could not tell
    probe_note: str = ""


# lmms-eval processes the CPU reference is spread over (beside one per backend on the device)
CPU_JOBS = 3


def device_args(device: str) -> str:
    return "device=cpu,device_map=cpu" if device == "cpu" else f"device={device},device_map={device}"


def plan_runs(families: list[str], regimes: list[str], backends: list[str], model_dirs: dict, device: str,
              docs: int, new_tokens: int, work: Path) -> list[list[Run]]:
    """The lmms-eval jobs (one process each): one per backend on the device, and the CPU dense
    reference for edges (two jobs, split by family) unless the device is the CPU."""
    def run(family, regime, backend, where, on):
        args = ",".join(filter(None, [f"pretrained={model_dirs[family]}", f"regime={regime}",
                                      f"attention_backend={backend}", device_args(on), FAMILY_ARGS.get(family, "")]))
        name = f"{where}_{family}_{regime}_{backend}"
        return Run(family, regime, backend, where, {
            "model": f"{family}_flow", "model_args": args, "tasks": TASK, "include_path": tasks_dir(),
            "output_path": work / "runs" / name, "limit": docs, "gen_kwargs": f"max_new_tokens={new_tokens}"})

    jobs = [[run(f, r, b, "device", device) for f in families for r in regimes] for b in backends]
    if device != "cpu":  # edges count the prompt only: one new token is enough for the reference
        for part in range(CPU_JOBS):
            runs = [run(f, r, "dense", "cpu", "cpu") for f in families[part::CPU_JOBS] for r in regimes]
            for reference in runs:
                reference.args["gen_kwargs"] = "max_new_tokens=1"
            jobs += [runs] if runs else []
    return jobs


def tasks_dir() -> Path:
    from lmms_eval_flow.harness.runner import TASKS_DIR
    return TASKS_DIR


# Handed to every lmms-eval process through PYTHONPATH: counts non-finite decoder-layer outputs and
# logits per loaded model (a model's index = the order it was first run in its process).
PROBE = '''"""Written by benchmarks/device_check.py: counts NaN / inf in decoder-layer outputs and logits."""
import atexit, json, os, sys
_DIR = os.environ.get("DEVICE_CHECK_PROBE_DIR")
if _DIR:
    import torch
    _state = {"models": 0, "current": None, "kinds": {}, "bad": {}, "forwards": {}}
    _path = os.path.join(_DIR, f"{os.getpid()}.jsonl")

    def _log(record):
        with open(_path, "a") as out:
            out.write(json.dumps(record) + "\\n")

    def _kind(module):
        cls = type(module)
        if cls not in _state["kinds"]:
            name = cls.__name__
            _state["kinds"][cls] = ("model" if name.endswith("ForConditionalGeneration")
                                    else "layer" if name.endswith("DecoderLayer") else None)
        return _state["kinds"][cls]

    def _finite(value):
        if isinstance(value, (tuple, list)) and value:
            value = value[0]
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return bool(torch.isfinite(value).all())
        return True

    def _pre(module, args):
        if _kind(module) == "model":
            index = getattr(module, "_device_check_index", None)
            if index is None:
                index = module._device_check_index = _state["models"]
                _state["models"] += 1
                _log({"event": "model", "index": index, "argv": sys.argv,
                      "path": str(getattr(module.config, "_name_or_path", ""))})
            _state["current"] = index

    def _post(module, args, output):
        kind = _kind(module)
        if kind is None:
            return
        index = _state["current"]
        value = getattr(output, "logits", None) if kind == "model" else output
        if kind == "model":
            _state["forwards"][index] = _state["forwards"].get(index, 0) + 1
        if value is not None and not _finite(value):
            _state["bad"][index] = _state["bad"].get(index, 0) + 1
            if _state["bad"][index] <= 3:
                _log({"event": "nonfinite", "index": index, "where": type(module).__name__})

    torch.nn.modules.module.register_module_forward_pre_hook(_pre)
    torch.nn.modules.module.register_module_forward_hook(_post)
    atexit.register(lambda: _log({"event": "summary", "bad": _state["bad"], "forwards": _state["forwards"]}))
'''


def probe_counts(probe_dir: Path, config: Path) -> list[dict] | None:
    """Per model a process loaded (in order): its path and non-finite count, for the process run
    with ``config``; None if no such process reported."""
    from lmms_eval_flow.harness.runner import read_jsonl

    for path in probe_dir.glob("*.jsonl"):
        records = read_jsonl(path)
        models = [r for r in records if r["event"] == "model"]
        if not models or str(config) not in models[0]["argv"]:
            continue
        bad: dict[int, int] = {}
        for record in records:
            if record["event"] == "nonfinite":
                bad[record["index"]] = bad.get(record["index"], 0) + 1
            elif record["event"] == "summary":  # the full counts, when the process exited normally
                bad.update({int(k): v for k, v in record["bad"].items()})
        return [{"path": m["path"], "nonfinite": bad.get(m["index"], 0)} for m in models]
    return None


def attribute_probe(runs: list[Run], models: list[dict] | None) -> None:
    """Run i of a job is the i-th model its process loaded (each run loads one), checked by path."""
    for i, run in enumerate(runs):
        if models is None:
            run.probe_note = "probe: no report from the lmms-eval process"
        elif i >= len(models) or Path(models[i]["path"]).resolve() != Path(pretrained_of(run)).resolve():
            run.probe_note = f"probe: model {i} of the process is not this run's ({len(models)} loaded)"
        else:
            run.nonfinite = models[i]["nonfinite"]


def pretrained_of(run: Run) -> str:
    return next(a.split("=", 1)[1] for a in run.args["model_args"].split(",") if a.startswith("pretrained="))


def execute_job(runs: list[Run], work: Path, probe_dir: Path, index: int) -> None:
    """One lmms-eval process for ``runs``; each run gets its samples, or the error that stopped it."""
    from lmms_eval_flow.harness.runner import LmmsEvalFailed, read_results, run_lmms_eval_many

    config = work / f"job{index}.yaml"
    label = f"job {index} ({runs[0].where} {runs[0].backend}, {len(runs)} runs)"
    progress(f"{label}: started")
    started = time.perf_counter()
    log = ""
    try:
        results = run_lmms_eval_many([run.args for run in runs], config)
    except LmmsEvalFailed as failed:  # a run stopped the process: read what the others wrote
        log = str(failed)[-1500:]
        results = []
        for run in runs:
            try:
                results.append(read_results(Path(run.args["output_path"]), TASK, 0, ""))
            except LmmsEvalFailed:
                results.append(None)
    for run, result in zip(runs, results):
        if result is None:
            run.error = f"no results from lmms-eval: {log}"
            continue
        metrics, samples = result
        run.samples = samples.get(TASK, [])
        run.seconds = float(metrics.get("total_evaluation_time_seconds") or "nan")
    attribute_probe(runs, probe_counts(probe_dir, config))
    progress(f"{label}: done in {time.perf_counter() - started:.0f} s"
             + (f", with errors: {log[-300:]}" if log else ""))


def execute(jobs: list[list[Run]], work: Path, parallel: int) -> None:
    probe_dir = work / "probe"
    probe_dir.mkdir(parents=True, exist_ok=True)
    (probe_dir / "sitecustomize.py").write_text(PROBE)
    # The lmms-eval processes inherit this environment (run_lmms_eval_many takes no env of its own).
    offline = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")  # everything is local
    saved = {key: os.environ.get(key) for key in ("PYTHONPATH", "DEVICE_CHECK_PROBE_DIR", "OMP_NUM_THREADS", *offline)}
    for key in offline:
        os.environ.setdefault(key, "1")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(probe_dir), saved["PYTHONPATH"]]))
    os.environ["DEVICE_CHECK_PROBE_DIR"] = str(probe_dir)
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // max(1, min(parallel, len(jobs)))))
    try:
        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            for future in [pool.submit(execute_job, runs, work, probe_dir, i) for i, runs in enumerate(jobs)]:
                future.result()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def replies(samples: list[dict]) -> dict:
    return {s["doc_id"]: s.get("filtered_resps", s.get("resps")) for s in samples}


def edges(samples: list[dict]) -> dict:
    return {s["doc_id"]: s.get("attention_edges") for s in samples}


def cli_rows(runs: list[Run], docs: int, device: str) -> list[dict]:
    """The table's rows of part 1, one per (family, regime, backend) run on the device, checked."""
    by_key = {(r.family, r.regime, r.backend, r.where): r for r in runs}
    rows = []
    for run in (r for r in runs if r.where == "device"):
        dense = by_key.get((run.family, run.regime, "dense", "device"))
        cpu = by_key.get((run.family, run.regime, "dense", "device" if device == "cpu" else "cpu"))
        problems, row = [], {"part": "cli", "case": run.family, "regime": run.regime, "backend": run.backend,
                             "device": device, "docs": None, "replies_equal_dense": None,
                             "edges_equal_cpu": None, "nonfinite": run.nonfinite, "failed_samples": None,
                             "run_s": run.seconds, "prefill_ms": None}
        if run.error or run.samples is None:
            problems.append(run.error or "no samples")
        else:
            samples = run.samples
            row["docs"] = len(samples)
            if len(samples) != docs:
                problems.append(f"{len(samples)} of {docs} docs")
            failed = [s["doc_id"] for s in samples if s.get("failed_samples")]
            row["failed_samples"] = len(failed)
            if failed:
                problems.append(f"failed samples {failed}: {samples[0].get('failed_samples')}")
            prefill = [s["prefill_seconds"] for s in samples if isinstance(s.get("prefill_seconds"), (int, float))]
            row["prefill_ms"] = 1000 * sum(prefill) / len(prefill) if prefill else None
            if dense is None or dense.samples is None:
                problems.append("no dense run to compare replies with")
            else:
                row["replies_equal_dense"] = replies(samples) == replies(dense.samples)
                if not row["replies_equal_dense"]:
                    differ = sorted(d for d, r in replies(samples).items() if replies(dense.samples).get(d) != r)
                    problems.append(f"replies differ from dense's on docs {differ}")
            if cpu is None or cpu.samples is None:
                problems.append("no CPU run to compare edges with")
            else:
                row["edges_equal_cpu"] = edges(samples) == edges(cpu.samples) and None not in edges(samples).values()
                if not row["edges_equal_cpu"]:
                    problems.append(f"edges {edges(samples)} != CPU's {edges(cpu.samples)}")
        if run.nonfinite is None:
            problems.append(run.probe_note or "probe: unknown")
        elif run.nonfinite:
            problems.append(f"{run.nonfinite} non-finite layer outputs / logits")
        row["ok"], row["problems"] = not problems, "; ".join(problems)
        rows.append(row)
    return rows


# -- part 2: the attention call ------------------------------------------------------------------

class AttentionModule(torch.nn.Module):
    """What the attention function reads off a module: its layer, GQA grouping and causality."""

    def __init__(self, layer_idx: int, groups: int):
        super().__init__()
        self.layer_idx, self.num_key_value_groups, self.is_causal = layer_idx, groups, True


def timer(device: torch.device):
    """A function timing one call in seconds: CUDA events on CUDA, wall time elsewhere."""
    if device.type == "cuda":
        def time_cuda(function) -> float:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            function()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1000
        return time_cuda

    def time_wall(function) -> float:
        started = time.perf_counter()
        function()
        return time.perf_counter() - started
    return time_wall


def best_of(repeats: int, time_call, functions: list) -> list[float]:
    """Each function's best time over ``repeats`` rounds, calls interleaved (rotating who goes first)."""
    best = [float("inf")] * len(functions)
    for round_ in range(repeats):
        order = list(range(len(functions)))
        order = order[round_ % len(order):] + order[:round_ % len(order)]
        for i in order:
            best[i] = min(best[i], time_call(functions[i]))
    return best


def peak_bytes(device: torch.device, function) -> int | None:
    """Peak bytes allocated during ``function`` above what was allocated before it (CUDA only)."""
    if device.type != "cuda":
        function()
        return None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    function()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - base


def attention_rows(label: str, frames: int, tokens_per_frame: int, device: torch.device, repeats: int,
                   heads: int = HEADS, kv_heads: int = KV_HEADS, head_dim: int = HEAD_DIM,
                   backends: tuple[str, ...] = BACKENDS) -> list[dict]:
    """Part 2 at one length: stock SDPA causal, then ``effective`` under each backend (28 layers)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from lmms_eval_flow.engine.attention import ACTIVE_BATCH, BatchPlan, flow_attention
    from lmms_eval_flow.engine.layout import TokenLayout
    from lmms_eval_flow.engine.plan import SamplePlan
    from lmms_eval_flow.engine.regimes import build_regime

    layout = TokenLayout.synthetic(prefix=15, frames=frames, tokens_per_frame=tokens_per_frame, question=40, template=5)
    n, dtype, groups = layout.length, getattr(torch, DTYPE), heads // kv_heads
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, h, n, head_dim, generator=generator).to(device, dtype)
               for h in (heads, kv_heads, kv_heads))
    scale = head_dim ** -0.5
    regime = build_regime("effective", DEPTH)
    plan = SamplePlan(regime, layout)
    kept = plan.edges / plan.full_edges
    by_rules: dict = {}
    for layer in range(DEPTH):
        by_rules.setdefault(regime.rules_at(layer), []).append(layer)
    time_call = timer(device)
    case = f"{label}: {n} positions, {frames} frames"

    def flow_call(layer: int, batch):
        module = AttentionModule(layer, groups)

        def call():
            token = ACTIVE_BATCH.set(batch)
            try:
                return flow_attention(module, q, k, v, None, scaling=scale)[0]
            finally:
                ACTIVE_BATCH.reset(token)
        return call

    stock_module = AttentionModule(0, groups)

    def stock():
        return sdpa_attention_forward(stock_module, q, k, v, None, scaling=scale)[0]

    base = {"part": "attention", "case": case, "regime": "effective", "device": device.type}
    rows = []
    try:
        stock()
        stock_peak = peak_bytes(device, stock)
        [stock_time] = best_of(repeats, time_call, [stock])
    except Exception as error:  # noqa: BLE001 (reported in the table)
        return [{**base, "regime": "full (causal)", "backend": "stock sdpa", "ok": False,
                 "problems": f"{type(error).__name__}: {error}"[:300]}]
    totals, peaks, setups, diffs, problems, first_call = ({b: 0.0 for b in backends}, {b: 0 for b in backends},
                                                          {b: 0.0 for b in backends}, {b: 0.0 for b in backends},
                                                          {b: [] for b in backends}, {})
    broken: set[str] = set()  # backends that raised: no timings for them
    for layers in by_rules.values():
        batches = {b: BatchPlan([plan], [0], n, b) for b in backends}
        calls, outputs = {}, {}
        for backend in backends:  # warm-up (flex compiles here), masks built, outputs kept for the check
            if problems[backend]:
                continue
            try:
                call = flow_call(layers[0], batches[backend])
                seconds = time_call(call)
                first_call.setdefault(backend, seconds)
                outputs[backend] = call().float()
                calls[backend] = call
            except Exception as error:  # noqa: BLE001
                problems[backend].append(f"{type(error).__name__}: {error}"[:300])
                broken.add(backend)
        names = list(calls)
        timed = best_of(repeats, time_call, [stock] + [calls[b] for b in names])
        stock_time = min(stock_time, timed[0])
        for backend, seconds in zip(names, timed[1:]):
            totals[backend] += seconds * len(layers)
        for backend in names:
            # a fresh plan: the mask / BlockMask is built in this call, so its memory and time count
            fresh = flow_call(layers[0], BatchPlan([plan], [0], n, backend))
            peaks[backend] = max(peaks[backend], peak_bytes(device, fresh) or 0)
            cold = time_call(flow_call(layers[0], BatchPlan([plan], [0], n, backend)))
            setups[backend] += max(0.0, cold - best_of(1, time_call, [calls[backend]])[0])
            if not torch.isfinite(outputs[backend]).all():
                problems[backend].append(f"non-finite output in layer {layers[0] + 1}")
            if "dense" in outputs and backend != "dense":
                diffs[backend] = max(diffs[backend], float((outputs[backend] - outputs["dense"]).abs().max()))
        del outputs
    rows.append({**base, "regime": "full (causal)", "backend": "stock sdpa", "attention_ms": 1000 * stock_time * DEPTH,
                 "x_stock": 1.0, "kept": 1.0, "x_stock_per_kept_edge": 1.0, "peak_mib": mib(stock_peak), "ok": True,
                 "problems": ""})
    for backend in backends:
        if diffs[backend] > ATOL:
            problems[backend].append(f"max |output - dense's| {diffs[backend]:.3g} > {ATOL}")
        ratio = None if backend in broken else totals[backend] / (stock_time * DEPTH)
        rows.append({**base, "backend": backend, "attention_ms": None if ratio is None else 1000 * totals[backend],
                     "x_stock": ratio, "kept": kept, "x_stock_per_kept_edge": None if ratio is None else ratio / kept,
                     "peak_mib": mib(peaks[backend]) if device.type == "cuda" else None,
                     "mask_build_ms": 1000 * setups[backend], "first_call_s": first_call.get(backend),
                     "max_abs_diff_dense": diffs[backend] if backend != "dense" else 0.0,
                     "ok": not problems[backend], "problems": "; ".join(problems[backend])})
    return rows


def mib(value: int | None) -> float | None:
    return None if value is None else value / 2 ** 20


# -- the table -------------------------------------------------------------------------------------

COLUMNS = [  # (header, row key, format)
    ("part", "part", "{}"), ("case", "case", "{}"), ("regime", "regime", "{}"), ("backend", "backend", "{}"),
    ("ok", "ok", "{}"), ("replies=dense", "replies_equal_dense", "{}"), ("edges=cpu", "edges_equal_cpu", "{}"),
    ("nonfinite", "nonfinite", "{}"), ("failed", "failed_samples", "{}"), ("run s", "run_s", "{:.1f}"),
    ("prefill ms", "prefill_ms", "{:.1f}"), ("attn ms (28 layers)", "attention_ms", "{:.2f}"),
    ("x stock", "x_stock", "{:.3f}"), ("kept", "kept", "{:.3f}"),
    ("x stock/kept edge", "x_stock_per_kept_edge", "{:.3f}"), ("|out - dense|", "max_abs_diff_dense", "{:.2g}"),
    ("peak MiB", "peak_mib", "{:.1f}"), ("mask ms", "mask_build_ms", "{:.2f}"),
    ("first call s", "first_call_s", "{:.2f}"),
    ("problems", "problems", "{}"),
]


def cell(row: dict, key: str, form: str) -> str:
    value = row.get(key)
    if value is None or value == "":
        return "-"
    if key == "ok":
        return "PASS" if value else "FAIL"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    return form.format(value)


def render_table(rows: list[dict]) -> str:
    """One plain-text table of every row (parts 1 and 2), columns no row uses left out."""
    columns = [c for c in COLUMNS if any(row.get(c[1]) not in (None, "") for row in rows) or c[1] == "ok"]
    cells = [[cell(row, key, form) for _, key, form in columns] for row in rows]
    widths = [max([len(header)] + [len(line[i]) for line in cells]) for i, (header, _, _) in enumerate(columns)]
    lines = [" | ".join(h.ljust(w) for (h, _, _), w in zip(columns, widths)), "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(c.ljust(w) for c, w in zip(line, widths)) for line in cells]
    return "\n".join(lines)


def failures(rows: list[dict]) -> list[str]:
    return [f"{r['part']} {r['case']} {r['regime']} {r['backend']}: {r['problems']}" for r in rows if not r["ok"]]


def machine(device: torch.device) -> dict:
    info = {"device": device.type, "torch": torch.__version__, "python": sys.version.split()[0],
            "cpu_count": os.cpu_count(), "platform": platform.platform(), "dtype": DTYPE}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    from importlib.metadata import PackageNotFoundError, version
    for package in ("transformers", "lmms_eval"):
        try:
            info[package] = version(package)
        except PackageNotFoundError:
            info[package] = None
    return info


def default_output() -> Path:
    root = Path(__file__).resolve().parents[1]
    return Path(os.environ["OUT"]) if os.environ.get("OUT") else root / "results" / "benchmarks" / "device_check"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (the default; cuda:0 is used) or cpu")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 1 doc, 2 new tokens, 572 / 1084 positions instead of 4k / 16k")
    parser.add_argument("--output", type=Path, default=None, help="folder for device_check.json / .txt "
                        "(default: $OUT if set, else results/benchmarks/device_check)")
    parser.add_argument("--docs", type=int, help="docs per run (default 4; 1 with --quick)")
    parser.add_argument("--new-tokens", type=int, help="max_new_tokens (default 4; 2 with --quick)")
    parser.add_argument("--repeats", type=int, help="best of this many timed calls (default 5; 3 with --quick)")
    parser.add_argument("--parallel", type=int, help="lmms-eval processes at once (default: all jobs)")
    parser.add_argument("--families", help="comma-separated subset of the families (default: all)")
    parser.add_argument("--regimes", help="comma-separated subset of the regimes (default: all)")
    parser.add_argument("--backends", help="comma-separated subset of dense,blocks,flex (default: all)")
    parser.add_argument("--parts", default="cli,attention", help="cli, attention or both")
    parser.add_argument("--work-dir", type=Path, help="where models and lmms-eval outputs go (default: a temp folder)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    from lmms_eval_flow.tiny import FAMILIES, make_tiny_model

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("device_check: no CUDA device here; run with --device cpu (e.g. --device cpu --quick)", file=sys.stderr)
        return 2
    device = torch.device("cuda:0" if args.device == "cuda" else args.device)
    docs = args.docs or (1 if args.quick else 4)
    new_tokens = args.new_tokens or (2 if args.quick else 4)
    repeats = max(3, args.repeats or (3 if args.quick else 5))
    families = args.families.split(",") if args.families else list(FAMILIES)
    regimes = args.regimes.split(",") if args.regimes else list(REGIMES)
    backends = args.backends.split(",") if args.backends else list(BACKENDS)
    if "dense" not in backends:
        backends = ["dense", *backends]  # the reference every other backend is checked against
    output = args.output or default_output()
    output.mkdir(parents=True, exist_ok=True)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="device_check_"))
    work.mkdir(parents=True, exist_ok=True)
    parts = set(args.parts.split(","))
    settings = {"docs": docs, "new_tokens": new_tokens, "repeats": repeats, "families": families, "regimes": regimes,
                "backends": backends, "quick": args.quick, "task": TASK, "atol": ATOL,
                "heads": f"{HEADS} query / {KV_HEADS} kv heads of {HEAD_DIM}", "depth": DEPTH}
    progress(f"device {device}, {len(families)} families x {len(regimes)} regimes x {len(backends)} backends, "
             f"{docs} docs, work dir {work}")
    rows: list[dict] = []
    unknown = [f for f in families if f not in FAMILY_ARGS]
    if "cli" in parts:
        model_dirs = {}
        for family in families:
            model_dirs[family] = make_tiny_model(work / "models" / family, family=family)
        progress(f"tiny checkpoints built ({time.perf_counter() - started:.0f} s)")
        jobs = plan_runs(families, regimes, backends, model_dirs, args.device if device.type == "cpu" else str(device),
                         docs, new_tokens, work)
        execute(jobs, work, args.parallel or len(jobs))
        rows += cli_rows([run for job in jobs for run in job], docs, "cpu" if device.type == "cpu" else "cuda")
        for row in rows:
            if row["case"] in unknown:
                row["ok"], row["problems"] = False, "; ".join(filter(None, [
                    row["problems"], "family not in device_check.FAMILY_ARGS: add its small model args"]))
        progress(f"lmms-eval matrix done ({time.perf_counter() - started:.0f} s)")
    settings["cli_seconds"] = time.perf_counter() - started
    if "attention" in parts:
        # (label, frames, tokens per frame): 4k and 16k positions; 573 and 1085 with --quick
        lengths = [("0.5k", 16, 32), ("1k", 16, 64)] if args.quick else [("4k", 16, 256), ("16k", 64, 256)]
        for label, frames, tokens in lengths:
            progress(f"attention timing at {frames} x {tokens} tokens")
            rows += attention_rows(label, frames, tokens, device, repeats, backends=tuple(backends))
            if device.type == "cuda":
                torch.cuda.empty_cache()
    elapsed = time.perf_counter() - started
    settings["seconds"] = elapsed
    failed = failures(rows)
    info = machine(device)
    header = (f"device check on {info.get('gpu', 'CPU')} ({device.type}), torch {info['torch']}, {DTYPE}, "
              f"{docs} docs x {new_tokens} new tokens, {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, "
              f"{elapsed:.0f} s")
    text = "\n".join([header, render_table(rows), "",
                      f"{len(rows) - len(failed)} of {len(rows)} rows pass" + (":" if failed else ""),
                      *[f"FAILED {line}" for line in failed]])
    print(text, flush=True)
    (output / "device_check.txt").write_text(text + "\n")
    (output / "device_check.json").write_text(json.dumps({"machine": info, "settings": settings, "rows": rows,
                                                          "failed": failed}, indent=1) + "\n")
    progress(f"wrote {output}/device_check.json and .txt")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
