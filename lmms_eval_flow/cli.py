"""``lmms-eval-flow``: the command line around the engine (planning, set-up helpers, reports)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .regimes import PARAMETERS, REGIMES


def _add_regime_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per regime parameter, spelled like the model arguments (``--cross-frame 6-15``)."""
    parser.add_argument("--regime", default="full", help=f"one of: {', '.join(REGIMES)}")
    types = {"seed": int, "keep": float}
    for name in PARAMETERS:
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=types.get(name, str), default=None)


def _regime_args(args: argparse.Namespace) -> dict:
    return {name: getattr(args, name) for name in PARAMETERS if getattr(args, name) is not None}


def cmd_edges(args: argparse.Namespace) -> None:
    from .layout import TokenLayout
    from .plan import SamplePlan
    from .regimes import build_regime

    layout = TokenLayout.synthetic(args.prefix, args.frames, args.tokens_per_frame, args.question, args.template)
    plan = SamplePlan(build_regime(args.regime, args.layers, **_regime_args(args)), layout)
    print(json.dumps({
        "regime": args.regime,
        "edges": plan.edges,
        "full_edges": plan.full_edges,
        "kept": plan.edges / plan.full_edges,
        "settings": plan.regime.settings,
    }))


def cmd_tasks_dir(args: argparse.Namespace) -> None:
    from .tasks import TASKS_DIR

    print(TASKS_DIR)


def cmd_make_tiny_model(args: argparse.Namespace) -> None:
    from .tiny_models import make_tiny_model

    print(make_tiny_model(args.dir, family=args.family, seed=args.seed))


def cmd_demo(args: argparse.Namespace) -> None:
    from .demo import run_demo

    regimes = tuple(args.regimes.split(","))
    unknown = [r for r in regimes if r not in REGIMES]
    if unknown:
        raise ValueError(f"--regimes has {', '.join(unknown)}; valid regimes: {', '.join(REGIMES)}")
    run_demo(Path(args.output), regimes, args.device, args.limit)


def cmd_leaderboard(args: argparse.Namespace) -> None:
    from .leaderboard import build_leaderboard, to_markdown

    print(to_markdown(build_leaderboard(args.results)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lmms-eval-flow", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    edges = commands.add_parser("edges", help="attention edges a regime keeps on a synthetic layout")
    edges.add_argument("--layers", type=int, required=True, help="language-model depth L")
    for name, help_text in [("prefix", "positions before the video"), ("frames", "video frames"),
                            ("tokens-per-frame", "tokens per frame"), ("question", "question positions"),
                            ("template", "template positions after the question (the last position is extra)")]:
        edges.add_argument(f"--{name}", type=int, required=True, help=help_text)
    _add_regime_flags(edges)
    edges.set_defaults(run=cmd_edges)

    tasks_dir = commands.add_parser("tasks-dir", help="print the folder to pass to lmms-eval --include_path")
    tasks_dir.set_defaults(run=cmd_tasks_dir)

    tiny = commands.add_parser("make-tiny-model", help="write a tiny random checkpoint to smoke-test a setup")
    tiny.add_argument("dir")
    tiny.add_argument("--family", default="qwen2_5_vl")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(run=cmd_make_tiny_model)

    demo = commands.add_parser("demo", help="the main job: every regime on the embedded default, then the leaderboard")
    demo.add_argument("--output", default="out/demo", help="where models, results and the leaderboard go")
    demo.add_argument("--regimes", default=",".join(REGIMES), help="comma-separated regimes to run")
    demo.add_argument("--device", default="cpu")
    demo.add_argument("--limit", type=int, default=None, help="docs per task (default: all)")
    demo.set_defaults(run=cmd_demo)

    board = commands.add_parser("leaderboard", help="checkpoint x regime x task table from lmms-eval results JSONs")
    board.add_argument("results", nargs="+")
    board.set_defaults(run=cmd_leaderboard)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except ValueError as error:
        parser.exit(2, f"lmms-eval-flow {args.command}: error: {error}\n")
