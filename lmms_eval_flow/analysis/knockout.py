"""Attention knockout sweeps (SPEC "Knockout"): block one pathway in a window of layers slid over
the depth, and record how the probability of the model's answer changes.

A pathway is "target reads source", and a knockout is an ordinary regime: the model's own regime
(``full`` unless ``--model_args regime=...`` says otherwise) plus one ``Rule`` that blocks the
pathway in the window's layers. Pathways are spelled ``SOURCE_TARGET``:

- sources: ``prefix``, ``video``, ``frame<k>`` (one frame, 0-based), ``question``, ``options``,
  ``non_options``, ``template``, ``instruction`` (the task's instruction, part of template);
- targets: ``video``, ``question``, ``options``, ``non_options``, ``template``, ``instruction``,
  ``last``, ``query`` (question, template and last);
- and ``cross_frame``: a video token reads the tokens of earlier frames.

So ``video_question``, ``question_last``, ``video_last`` are the papers' pathways,
``video_options`` / ``non_options_options`` / ``options_last`` follow the option spans, and
``frame0_last`` asks what the first frame gives the last position.

Per window centre l (1-based) the sweep records each doc's probabilities of the token the
model predicted without knockout (``p_pred``) and of the ground-truth token (``p_true``). The
summary averages, over the selected docs (those answered correctly, by default), the relative
change (p_knockout - p_base) / p_base * 100 of the predicted token, as Map the Flow plots it,
and the absolute change p_knockout - p_base of the ground-truth token (Causality Matters' P_C).

Results go to one folder and are written as they come, so an interrupted sweep resumes where
it stopped: ``sweep.json`` (settings), ``base.csv`` (one row per doc), ``knockout.csv`` (one
row per pathway, window and doc), ``summary.csv`` and ``knockout.png``. The CSVs grow by whole
lines only (see ``SweepFolder.append``); the other files are replaced atomically.
"""

from __future__ import annotations

import io
import json
import os
import re
from dataclasses import replace
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from lmms_eval_flow.atomic import atomic_write_bytes, atomic_write_text
from lmms_eval_flow.engine.layers import format_layer_range
from lmms_eval_flow.engine.layout import QUERY, TokenLayout
from lmms_eval_flow.engine.regimes import Regime, Rule

SOURCES = ("prefix", "video", "question", "non_options", "options", "template", "instruction")
TARGETS = ("video", "question", "non_options", "options", "template", "instruction", "last", "query")
_PATHWAY = re.compile(rf"^(?:({'|'.join(SOURCES)})|frame(\d+))_({'|'.join(TARGETS)})$")
SAMPLES = ("correct", "all")
# Docs run per call and written together: an interrupted sweep loses at most this many passes.
CHUNK = 16


def pathway_rule(pathway: str, layers) -> Rule:
    """The rule that blocks ``pathway`` in ``layers`` (0-based)."""
    if pathway == "cross_frame":
        return Rule(pathway, ("video",), ("video",), frozenset(layers), frames="earlier")
    match = _PATHWAY.match(pathway)
    if not match:
        raise ValueError(
            f"pathway {pathway!r} is not one: write cross_frame or SOURCE_TARGET with SOURCE one of "
            f"{', '.join(SOURCES)}, frame<k> (0-based) and TARGET one of {', '.join(TARGETS)}; "
            f"e.g. video_question, question_last, video_last, options_last, frame0_last"
        )
    source, frame, target = match.groups()
    reader = QUERY if target == "query" else (target,)
    if frame is not None:
        return Rule(pathway, reader, ("video",), frozenset(layers), frames=int(frame))
    return Rule(pathway, reader, (source,), frozenset(layers))


def parse_pathways(text: str) -> tuple[str, ...]:
    """Comma-separated pathways, each checked."""
    pathways = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    if not pathways:
        raise ValueError("--pathway is empty; name at least one, e.g. --pathway question_last")
    for pathway in pathways:
        pathway_rule(pathway, ())
    return pathways


def window(centre: int, size: int, depth: int) -> range:
    """The 0-based layers of a ``size``-layer window centred on 0-based layer ``centre``:
    (size-1)//2 layers before it, size//2 after, cut at the first and last layer."""
    if not 0 <= centre < depth:
        raise ValueError(f"window centre {centre + 1} is not a layer of this {depth}-layer model")
    if size < 1:
        raise ValueError(f"--window {size} must be at least 1 layer")
    return range(max(0, centre - (size - 1) // 2), min(depth, centre + size // 2 + 1))


def knockout_regime(base: Regime, pathway: str, layers: range) -> Regime:
    """``base`` with ``pathway`` blocked in ``layers`` as well."""
    if not base.applies_rules:
        raise ValueError(
            f"a knockout adds one rule to the model's regime, and regime={base.name} ({base.describe()}) does not "
            f"apply rules as such; use regime=full (the papers' setting), effective, staged, or temporal_exit "
            f"with exit_by=mask"
        )
    settings = {**base.settings, "knockout": pathway, "knockout_layers": format_layer_range(layers)}
    return replace(base, name=f"{base.name}+knockout", rules=base.rules + (pathway_rule(pathway, layers),),
                   settings=settings)


def relative_change(p_knockout, p_base):
    """Map the Flow's measure: (p_knockout - p_base) / p_base * 100."""
    return (p_knockout - p_base) / p_base * 100


def selected_docs(base: pd.DataFrame, samples: str) -> pd.DataFrame:
    """The docs a summary averages over: those answered correctly, or all."""
    if samples not in SAMPLES:
        raise ValueError(f"--samples {samples!r} is not valid; valid: {', '.join(SAMPLES)}")
    return base[base["correct"]] if samples == "correct" else base


def summarize(base: pd.DataFrame, knocked: pd.DataFrame, samples: str = "correct") -> pd.DataFrame:
    """Per pathway and window centre: the mean changes over the selected docs."""
    docs = selected_docs(base, samples)[["doc_id", "p_pred", "p_true"]]
    rows = knocked.merge(docs, on="doc_id", suffixes=("", "_base"))
    rows = rows.assign(relative_change=relative_change(rows["p_pred"], rows["p_pred_base"]),
                       true_change=rows["p_true"] - rows["p_true_base"])
    summary = rows.groupby(["pathway", "layer", "first_layer", "last_layer"], sort=False).agg(
        relative_change=("relative_change", "mean"),
        true_change=("true_change", "mean"),
        docs=("doc_id", "nunique"),
    )
    return summary.reset_index().sort_values(["pathway", "layer"], kind="stable", ignore_index=True)


def plot(summary: pd.DataFrame, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    for pathway, rows in summary.groupby("pathway", sort=False):
        left.plot(rows["layer"], rows["relative_change"], marker="o", markersize=3, label=pathway)
        right.plot(rows["layer"], rows["true_change"], marker="o", markersize=3, label=pathway)
    for axis, label in [(left, "relative change of p(predicted token) [%]"),
                        (right, "change of p(ground-truth token)")]:
        axis.axhline(0, color="grey", linewidth=0.8)
        axis.set_xlabel("layer (centre of the knockout window)")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    left.legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=120)
    plt.close(figure)
    atomic_write_bytes(path, image.getvalue())


class SweepFolder:
    """The files of one sweep; rows are appended as they are computed."""

    def __init__(self, output: str | Path):
        self.root = Path(output)
        self.settings_path = self.root / "sweep.json"
        self.base_path = self.root / "base.csv"
        self.knockout_path = self.root / "knockout.csv"
        self.summary_path = self.root / "summary.csv"
        self.plot_path = self.root / "knockout.png"

    def settings(self) -> dict:
        if not self.settings_path.exists():
            raise ValueError(f"{self.root} holds no knockout sweep (no sweep.json); run lmms-eval-flow knockout first")
        return json.loads(self.settings_path.read_text())

    def begin(self, settings: dict, pathways: tuple[str, ...]) -> dict:
        """Record the settings, or check them against those of the sweep being resumed."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self.settings_path.exists():
            previous = json.loads(self.settings_path.read_text())
            changed = [key for key in settings if previous.get(key) != settings[key]]
            if changed:
                raise ValueError(
                    f"{self.root} holds a sweep with other settings ({', '.join(f'{k}={previous.get(k)!r}' for k in changed)}); "
                    f"resume it with the same settings or write to another --output"
                )
            settings = {**previous, "pathways": list(dict.fromkeys(previous["pathways"] + list(pathways)))}
        else:
            settings = {**settings, "pathways": list(pathways)}
        atomic_write_text(self.settings_path, json.dumps(settings, indent=2) + "\n")
        return settings

    def record(self, **facts) -> None:
        """Add what is known once the model is loaded (its depth, its regime) to the settings."""
        atomic_write_text(self.settings_path, json.dumps({**self.settings(), **facts}, indent=2) + "\n")

    def base(self) -> pd.DataFrame:
        return self.read(self.base_path, BASE_COLUMNS)

    def knocked(self) -> pd.DataFrame:
        return self.read(self.knockout_path, KNOCKOUT_COLUMNS)

    @staticmethod
    def read(path: Path, columns: list[str]) -> pd.DataFrame:
        """The whole rows of a sweep CSV: a line cut short by a kill mid-write is not a row yet."""
        text = _whole_lines(path).decode("utf-8")
        if not text:
            return pd.DataFrame(columns=columns)
        header = text.split("\n", 1)[0].split(",")
        if header != columns:
            raise ValueError(f"{path} is not a knockout sweep file: its header is {header}, expected {columns}; "
                             f"write the sweep to another --output")
        return pd.read_csv(io.StringIO(text))

    @staticmethod
    def append(path: Path, rows: list[dict], columns: list[str]) -> None:
        """Append rows in one write, synced. A torn last line left by an earlier kill is cut off first,
        so each line is a whole row; its row is still to do and is run again."""
        kept = _whole_lines(path)
        if path.exists() and path.stat().st_size != len(kept):
            os.truncate(path, len(kept))
        text = pd.DataFrame(rows, columns=columns).to_csv(index=False, header=not kept)
        with open(path, "a", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())


def _whole_lines(path: Path) -> bytes:
    """The file up to the end of its last whole row (empty when absent or without one): its last
    newline outside quotes, since a quoted field (a token's text) may hold a newline."""
    data = path.read_bytes() if path.exists() else b""
    end = data.rfind(b"\n")
    while end >= 0 and data.count(b'"', 0, end) % 2:
        end = data.rfind(b"\n", 0, end)
    return data[:end + 1]


BASE_COLUMNS = ["doc_id", "target", "true_token", "pred_token", "pred_text", "correct", "p_pred", "p_true", "layout"]
KNOCKOUT_COLUMNS = ["pathway", "layer", "first_layer", "last_layer", "doc_id", "p_pred", "p_true"]


def layout_json(layout: TokenLayout) -> str:
    """A layout as JSON (segments as [group, start, stop, frame, option, instruction]), kept with each doc."""
    return json.dumps([[s.group, s.start, s.stop, s.frame, s.option, s.instruction] for s in layout.segments])


def run_base(probe, folder: SweepFolder) -> pd.DataFrame:
    """The unmodified pass (the model's own regime) for every doc not yet in ``base.csv``."""
    base = folder.base()
    todo = [doc_id for doc_id in probe.docs if doc_id not in set(base["doc_id"])]
    if todo:
        print(f"base pass: {len(todo)} forward passes ({len(base)} docs done before)", flush=True)
        for chunk in _chunks(todo):
            rows = []
            for doc_id, prediction in probe.run(chunk).items():
                doc, probs = probe.docs[doc_id], prediction.probs
                pred = int(probs.argmax())
                rows.append(dict(doc_id=doc_id, target=doc.target, true_token=doc.true_token, pred_token=pred,
                                 pred_text=probe.token_text(pred), correct=pred == doc.true_token,
                                 p_pred=float(probs[pred]), p_true=float(probs[doc.true_token]),
                                 layout=layout_json(prediction.layout)))
            folder.append(folder.base_path, rows, BASE_COLUMNS)
        base = folder.base()
    return base[base["doc_id"].isin(list(probe.docs))]


def sweep(probe, pathways: tuple[str, ...], size: int, folder: SweepFolder, samples: str = "correct",
          centres: range | None = None) -> pd.DataFrame:
    """Run the knockout passes not yet in ``knockout.csv``; returns the summary (also written)."""
    depth = probe.depth
    centres = range(depth) if centres is None else centres
    windows = [window(centre, size, depth) for centre in centres]  # checks size before any pass
    for pathway in pathways:
        knockout_regime(probe.regime, pathway, windows[0])  # checks the model's regime takes a rule
    print(f"knockout sweep: {len(pathways)} pathway(s) x {len(centres)} window(s) of {size} layers x "
          f"{len(probe.docs)} doc(s) at most = {len(pathways) * len(centres) * len(probe.docs)} forward passes, "
          f"after a base pass of {len(probe.docs)}", flush=True)
    base = run_base(probe, folder)
    docs = selected_docs(base, samples)
    print(f"{int(base['correct'].sum())} of {len(base)} docs answered correctly (first token == ground-truth token); "
          f"sweeping {'those' if samples == 'correct' else 'all docs'}: {len(docs)}", flush=True)
    if docs.empty:
        raise ValueError("no doc answered correctly, so there is nothing to average; use --samples all to sweep every doc")
    _check_docs(pathways, docs)

    done = set(map(tuple, folder.knocked()[["pathway", "layer", "doc_id"]].itertuples(index=False)))
    steps = []
    for pathway in pathways:
        for centre, layers in zip(centres, windows):
            todo = [d for d in docs["doc_id"] if (pathway, centre + 1, d) not in done]
            if todo:
                steps.append((pathway, centre, layers, todo))
    total = sum(len(todo) for *_, todo in steps)
    planned = len(pathways) * len(centres) * len(docs)
    print(f"knockout passes: {total} to run, {planned - total} done before", flush=True)
    truth = dict(zip(base["doc_id"], base["true_token"]))
    predicted = dict(zip(base["doc_id"], base["pred_token"]))
    with tqdm(total=total, desc="knockout", unit="pass") as progress:
        for pathway, centre, layers, todo in steps:
            progress.set_postfix_str(f"{pathway} @ layer {centre + 1}")
            with probe.under(knockout_regime(probe.regime, pathway, layers)):
                for chunk in _chunks(todo):
                    rows = [dict(pathway=pathway, layer=centre + 1, first_layer=layers.start + 1,
                                 last_layer=layers.stop, doc_id=doc_id, p_pred=float(p.probs[predicted[doc_id]]),
                                 p_true=float(p.probs[truth[doc_id]]))
                            for doc_id, p in probe.run(chunk, quiet=True).items()]
                    folder.append(folder.knockout_path, rows, KNOCKOUT_COLUMNS)
                    progress.update(len(chunk))
    return write_summary(folder, samples)


def write_summary(folder: SweepFolder, samples: str) -> pd.DataFrame:
    """``summary.csv`` and ``knockout.png`` from everything the folder holds."""
    settings = folder.settings()
    summary = summarize(folder.base(), folder.knocked(), samples)
    atomic_write_text(folder.summary_path, summary.to_csv(index=False))
    docs = int(summary["docs"].max()) if len(summary) else 0
    which = "correctly answered docs" if samples == "correct" else "docs"
    title = f"{settings['model']} on {settings['task']}: knockout windows of {settings['window']} layers, {docs} {which}"
    plot(summary, folder.plot_path, title)
    return summary


def _chunks(doc_ids: list[int]) -> list[list[int]]:
    return [doc_ids[i:i + CHUNK] for i in range(0, len(doc_ids), CHUNK)]


def _check_docs(pathways: tuple[str, ...], docs: pd.DataFrame) -> None:
    """A single-frame pathway needs that frame, an option pathway option spans, an instruction pathway
    the instruction, in every swept doc."""
    layouts = {doc_id: json.loads(layout) for doc_id, layout in zip(docs["doc_id"], docs["layout"])}
    frames = min(sum(1 for s in segments if s[0] == "video") for segments in layouts.values())
    without_options = [doc_id for doc_id, segments in layouts.items() if not any(s[4] >= 0 for s in segments)]
    without_instruction = [doc_id for doc_id, segments in layouts.items() if not any(s[5:] == [True] for s in segments)]
    for pathway in pathways:
        rule = pathway_rule(pathway, ())
        if isinstance(rule.frames, int) and rule.frames >= frames:
            raise ValueError(f"pathway {pathway} names frame {rule.frames}, but a swept doc has only {frames} frames "
                             f"(0-{frames - 1})")
        if {"options", "non_options"} & set(rule.reader + rule.source) and without_options:
            raise ValueError(f"pathway {pathway} needs option spans, but no lettered options (A. / (A) ...) were found "
                             f"in the question of doc(s) {without_options}")
        if "instruction" in rule.reader + rule.source and without_instruction:
            raise ValueError(f"pathway {pathway} needs the task's instruction, but none was found in the prompt of "
                             f"doc(s) {without_instruction} (its task names no instruction, or the prompt does not open "
                             f"or close with it)")
