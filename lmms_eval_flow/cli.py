"""``lmms-eval-flow``: the command line around the engine (planning, set-up helpers, reports)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lmms_eval_flow.engine.regimes import PARAMETERS, REGIMES


def _add_regime_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per regime parameter, spelled like the model arguments (``--cross-frame 6-15``)."""
    parser.add_argument("--regime", default="full", help=f"one of: {', '.join(REGIMES)}")
    types = {"seed": int, "keep": float, "block_ratio": float}
    for name in PARAMETERS:
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=types.get(name, str), default=None)


def _regime_args(args: argparse.Namespace) -> dict:
    return {name: getattr(args, name) for name in PARAMETERS if getattr(args, name) is not None}


# What ``edges`` plans: no language model is deeper or reads more positions; the planner compares
# frames pairwise (from group sizes, no N x N mask), so their number bounds its time and memory.
MAX_LAYERS, MAX_FRAMES, MAX_POSITIONS = 1024, 1024, 2**24


def _check_edges_args(args: argparse.Namespace) -> None:
    """Refuse what cannot be meant before planning: a depth below 1, frames without tokens, sizes
    that no model has (they would also take hours or gigabytes)."""
    if not 1 <= args.layers <= MAX_LAYERS:
        raise ValueError(f"--layers {args.layers} is not a language-model depth; valid: 1 to {MAX_LAYERS}")
    for flag in ("prefix", "frames", "tokens_per_frame", "question", "template"):
        if getattr(args, flag) < 0:
            raise ValueError(f"--{flag.replace('_', '-')} {getattr(args, flag)} must not be negative")
    if not 0 <= args.instruction <= args.question:
        raise ValueError(f"--instruction {args.instruction} is not a count of the last --question positions; "
                         f"valid: 0 to {args.question}")
    if args.frames > MAX_FRAMES:
        raise ValueError(f"--frames {args.frames} is more than {MAX_FRAMES}, the most frames edges plans")
    if args.frames and not args.tokens_per_frame:
        raise ValueError("--tokens-per-frame 0: a frame has at least one token (--frames 0 plans a layout without video)")
    length = args.prefix + args.frames * args.tokens_per_frame + args.question + args.template + 1
    if length > MAX_POSITIONS:
        raise ValueError(f"the layout has {length} positions (--frames {args.frames} x --tokens-per-frame "
                         f"{args.tokens_per_frame} and the rest); at most {MAX_POSITIONS}, beyond any model's context")


def cmd_edges(args: argparse.Namespace) -> None:
    from lmms_eval_flow.engine.layout import TokenLayout
    from lmms_eval_flow.engine.plan import SamplePlan
    from lmms_eval_flow.engine.regimes import build_regime

    _check_edges_args(args)
    # The instruction closes the user text but is template (SPEC), as Map the Flow's code counts it.
    layout = TokenLayout.synthetic(args.prefix, args.frames, args.tokens_per_frame, args.question - args.instruction,
                                   args.template + args.instruction)
    plan = SamplePlan(build_regime(args.regime, args.layers, **_regime_args(args)), layout)
    print(json.dumps({
        "regime": args.regime,
        "edges": plan.edges,
        "full_edges": plan.full_edges,
        "kept": plan.edges / plan.full_edges,
        "settings": plan.regime.settings,
    }))
    if args.per_layer:
        for layer, edges in enumerate(plan.edges_per_layer, start=1):
            print(json.dumps({"layer": layer, "edges": edges, "full_edges": plan.full_layer_edges,
                              "kept": edges / plan.full_layer_edges}))


def cmd_tasks_dir(args: argparse.Namespace) -> None:
    from lmms_eval_flow.harness.runner import TASKS_DIR

    print(TASKS_DIR)


def cmd_make_tiny_model(args: argparse.Namespace) -> None:
    from lmms_eval_flow.tiny import make_tiny_model

    print(make_tiny_model(args.dir, family=args.family, seed=args.seed))


def cmd_check_install(args: argparse.Namespace) -> None:
    from lmms_eval_flow.install_check import check_install

    raise SystemExit(check_install())


def cmd_demo(args: argparse.Namespace) -> None:
    from lmms_eval_flow.toy.demo import run_demo

    regimes = tuple(args.regimes.split(","))
    unknown = [r for r in regimes if r not in REGIMES]
    if unknown:
        raise ValueError(f"--regimes has {', '.join(unknown)}; valid regimes: {', '.join(REGIMES)}")
    run_demo(Path(args.output), regimes, args.device, args.limit, *([tuple(map(Path, args.model))] if args.model else []))


def cmd_leaderboard(args: argparse.Namespace) -> None:
    from lmms_eval_flow.reporting.leaderboard import build_leaderboard, check_plot_x, to_markdown, write_leaderboard

    check_plot_x(args.plot_x)
    table = build_leaderboard(args.results, args.max_failed_share)
    print(to_markdown(table))
    if args.output:
        print(f"\nwritten: {', '.join(map(str, write_leaderboard(table, args.output, args.plot_x)))}")


def cmd_regress(args: argparse.Namespace) -> None:
    from lmms_eval_flow.reporting.regress import PASSING, regress, to_text

    table, passed = regress(args.baseline, args.current, args.alpha, args.exact)
    print(to_text(table))
    if passed:
        print(f"\nno regression against {args.baseline} ({len(table)} rows)")
        return
    failing = table[~table["status"].isin(PASSING)]
    print(f"\n{len(failing)} of {len(table)} rows fail the gate against {args.baseline}: "
          f"{', '.join(sorted(set(', '.join(failing['status']).split(', '))))}")
    raise SystemExit(1)


def cmd_baseline(args: argparse.Namespace) -> None:
    from lmms_eval_flow.reporting.regress import write_baseline

    print(f"written: {', '.join(map(str, write_baseline(args.current, args.output)))}")


def _add_model_flags(parser: argparse.ArgumentParser) -> None:
    """The model and task flags of the analysis tools, spelled as lmms-eval's."""
    parser.add_argument("--model", default="qwen2_5_vl_flow", help="a flow model of lmms-eval's registry")
    parser.add_argument("--model_args", required=True, help="as lmms-eval's: pretrained=DIR,regime=...,perturb=...")
    parser.add_argument("--tasks", required=True, help="one generate_until task, e.g. flow_synthetic")
    parser.add_argument("--include_path", default=None, help="task folder (default: lmms-eval-flow tasks-dir)")
    parser.add_argument("--limit", type=int, default=None, help="first N docs of the task (default: all)")
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--samples", choices=("correct", "all"), default="correct",
                        help="average over docs whose first token is the ground truth (default), or all")


def _probe(args: argparse.Namespace):
    from lmms_eval_flow.analysis.first_token import Probe, quiet_logs

    quiet_logs()
    return Probe(args.model, args.model_args, args.tasks, args.include_path, args.limit, args.batch_size)


def cmd_knockout(args: argparse.Namespace) -> None:
    from lmms_eval_flow.analysis.knockout import SweepFolder, parse_pathways, sweep
    from lmms_eval_flow.engine.layers import parse_layer_range

    pathways = parse_pathways(args.pathway)
    if args.window < 1:
        raise ValueError(f"--window {args.window} must be at least 1 layer")
    folder = SweepFolder(args.output)
    folder.begin(dict(model=args.model, model_args=args.model_args, task=args.tasks, limit=args.limit,
                      window=args.window), pathways)
    probe = _probe(args)
    folder.record(depth=probe.depth, regime=probe.regime.describe())
    centres = parse_layer_range(args.layers, probe.depth, "--layers") if args.layers else None
    try:
        summary = sweep(probe, pathways, args.window, folder, args.samples, centres)
    except KeyboardInterrupt:  # rows are whole on disk (SweepFolder.append): say how to go on, no traceback
        print(f"\nlmms-eval-flow knockout: interrupted; {len(folder.knocked())} knockout rows kept in {folder.root}; "
              f"run the same command again to resume", file=sys.stderr)
        raise SystemExit(130)
    print(summary.pivot(index="layer", columns="pathway", values="relative_change").round(2).to_string())
    print(f"relative change of p(predicted token) in % per window centre; written to {folder.summary_path}, "
          f"{folder.plot_path}")


def cmd_validate(args: argparse.Namespace) -> None:
    from lmms_eval_flow.toy.validate import PRECISION_TARGET, RECALL_TARGET, to_text, validate

    from lmms_eval_flow.toy import KNOWN_ANSWER_DIR

    table = validate(args.output, args.checkpoint or KNOWN_ANSWER_DIR, args.limit, args.window, args.interval,
                     args.threshold, args.device)
    print(to_text(table))
    print(f"targets per pathway: precision {PRECISION_TARGET}, recall at least {RECALL_TARGET}; "
          f"written to {Path(args.output) / 'validation.csv'}")
    missed = table.loc[~table["passed"], "pathway"].tolist()
    if missed:
        print(f"the analysis tools did not recover the planted range of {', '.join(missed)}")
        raise SystemExit(1)


def cmd_calibrate(args: argparse.Namespace) -> None:
    from lmms_eval_flow.analysis.calibrate import calibrate

    calibrate(args.sweep, args.output or Path(args.sweep) / "ranges.json", args.samples, args.threshold, args.interval)


def cmd_logit_lens(args: argparse.Namespace) -> None:
    from lmms_eval_flow.analysis.logit_lens import logit_lens

    keywords = tuple(k for k in args.keywords.split(",") if k.strip()) if args.keywords else None
    probe = _probe(args)
    logit_lens(probe, args.output, args.samples, *([keywords] if keywords else []))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lmms-eval-flow", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    edges = commands.add_parser("edges", help="attention edges a regime keeps on a synthetic layout")
    edges.add_argument("--layers", type=int, required=True, help="language-model depth L")
    for name, help_text in [("prefix", "positions before the video"), ("frames", "video frames"),
                            ("tokens-per-frame", "tokens per frame"),
                            ("question", "positions of the user text after the video: the question and its options, "
                                         "and the task's instruction (see --instruction)"),
                            ("template", "template positions after the user text (the last position is extra)")]:
        edges.add_argument(f"--{name}", type=int, required=True, help=help_text)
    edges.add_argument("--instruction", type=int, default=0, metavar="N",
                       help="of the --question positions, the last N are the task's instruction ('Only give the best "
                            "option.') and count as template, as SPEC and Map the Flow's code have it; the layout's "
                            "length stays, so planning with and without it shows what counting the instruction as "
                            "question would change (default 0: all --question positions are question)")
    edges.add_argument("--per-layer", action="store_true",
                       help="after the totals, one line per layer (1..L) with its allowed edges and kept share")
    _add_regime_flags(edges)
    edges.set_defaults(run=cmd_edges)

    tasks_dir = commands.add_parser("tasks-dir", help="print the folder to pass to lmms-eval --include_path")
    tasks_dir.set_defaults(run=cmd_tasks_dir)

    tiny = commands.add_parser("make-tiny-model", help="write a tiny random checkpoint to smoke-test a setup")
    tiny.add_argument("dir")
    tiny.add_argument("--family", default="qwen2_5_vl")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(run=cmd_make_tiny_model)

    check = commands.add_parser("check-install", help="pip check, less decord's known false report (README's set-up)")
    check.set_defaults(run=cmd_check_install)

    demo = commands.add_parser("demo", help="the main job: every regime on the embedded default, then the leaderboard")
    demo.add_argument("--output", default="out/demo", help="where the results and the leaderboard go")
    demo.add_argument("--regimes", default=",".join(REGIMES), help="comma-separated regimes to run")
    demo.add_argument("--device", default="cpu")
    demo.add_argument("--limit", type=int, default=None, help="docs per task (default: all)")
    demo.add_argument("--model", action="append", default=None,
                      help="a Qwen2.5-VL checkpoint, may be given more than once (default: both shipped toys, "
                           "lmms_eval_flow/toy/qwen2_5_vl_known_answer_toy and qwen2_5_vl_temporal_toy)")
    demo.set_defaults(run=cmd_demo)

    knockout = commands.add_parser("knockout", help="attention knockout sweep of pathways over the depth (CSV + PNG)")
    _add_model_flags(knockout)
    knockout.add_argument("--pathway", default="cross_frame,video_question,question_last",
                          help="comma-separated SOURCE_TARGET pathways or cross_frame (see lmms_eval_flow/knockout.py)")
    knockout.add_argument("--window", type=int, default=9, help="layers blocked around each centre (Map the Flow 9, "
                                                                 "Causality Matters 5)")
    knockout.add_argument("--layers", default=None, help="window centres to sweep, 1-based range (default: every layer)")
    knockout.add_argument("--output", default="out/knockout", help="sweep folder; an interrupted sweep resumes there")
    knockout.set_defaults(run=cmd_knockout)

    validate = commands.add_parser("validate", help="knockout + calibrate on the known-answer toy, against its "
                                                    "planted ranges (precision, recall; exit 1 on a miss)")
    validate.add_argument("--output", default="out/validate", help="folder for the sweep and validation.csv "
                                                                   "(an interrupted sweep resumes there)")
    validate.add_argument("--checkpoint", default=None, help="a checkpoint with planted ranges (default: the shipped "
                                                             "known-answer toy)")
    validate.add_argument("--limit", type=int, default=None, help="first N docs of flow_temporal_toy (default: all)")
    validate.add_argument("--window", type=int, default=1, help="layers blocked around each centre")
    validate.add_argument("--interval", type=int, default=1, help="calibrate's layers per interval")
    validate.add_argument("--threshold", type=float, default=-5.0, help="calibrate's threshold (%%)")
    validate.add_argument("--device", default="cpu")
    validate.set_defaults(run=cmd_validate)

    calibrate = commands.add_parser("calibrate", help="effective ranges from a knockout sweep, as a ranges=FILE")
    calibrate.add_argument("sweep", help="a knockout --output folder with cross_frame, video_question, question_last")
    calibrate.add_argument("--output", default=None, help="ranges file to write (default: SWEEP/ranges.json)")
    calibrate.add_argument("--samples", choices=("correct", "all"), default="correct")
    calibrate.add_argument("--threshold", type=float, default=-5.0, help="keep intervals whose mean change (%%) is below")
    calibrate.add_argument("--interval", type=int, default=5, help="layers per interval")
    calibrate.set_defaults(run=cmd_calibrate)

    lens = commands.add_parser("logit-lens", help="per-layer answer probability and video-token projections")
    _add_model_flags(lens)
    lens.add_argument("--keywords", default=None, help="comma-separated words to count among video tokens' top-1")
    lens.add_argument("--output", default="out/logit_lens")
    lens.set_defaults(run=cmd_logit_lens)

    board = commands.add_parser("leaderboard", help="checkpoint x regime x task table from lmms-eval results JSONs")
    board.add_argument("results", nargs="+", help="results JSONs, or folders searched for *_results.json")
    board.add_argument("--output", default=None, help="folder to write leaderboard.md/.csv/.html to (default: print only)")
    board.add_argument("--max-failed-share", type=float, default=0.05,
                       help="mark a row whose share of failed samples exceeds this (default 0.05)")
    board.add_argument("--plot-x", default="attention_kept", metavar="METRIC",
                       help="what leaderboard.html plots the score against: attention_kept (default), "
                            "attention_edges, prefill_seconds, kv_cache_bytes or attention_flops")
    board.set_defaults(run=cmd_leaderboard)

    gate = commands.add_parser("regress", help="exit 1 when results differ from a baseline's beyond chance, doc by doc")
    gate.add_argument("--baseline", required=True, help="a baseline CSV (lmms-eval-flow baseline), e.g. "
                      "results/baselines/flow_temporal_toy.csv, with its .docs.csv beside it")
    gate.add_argument("--current", nargs="+", required=True, help="results JSONs, or folders searched for *_results.json "
                      "(run with --log_samples: each doc's outcome is read from the samples files)")
    gate.add_argument("--alpha", type=float, default=0.01,
                      help="a row fails when the paired test on its changed docs gives p below this (default 0.01)")
    gate.add_argument("--exact", action="store_true",
                      help="also fail on any changed reply (for deterministic runs, as CI's CPU demo)")
    gate.set_defaults(run=cmd_regress)

    base = commands.add_parser("baseline", help="write a baseline for regress: the leaderboard rows and each doc's outcome")
    base.add_argument("--current", nargs="+", required=True, help="results JSONs, or folders searched for *_results.json")
    base.add_argument("--output", required=True, help="the baseline CSV to write; NAME.docs.csv is written beside it")
    base.set_defaults(run=cmd_baseline)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except ValueError as error:
        parser.exit(2, f"lmms-eval-flow {args.command}: error: {error}\n")
if __name__ == "__main__":
    main()
