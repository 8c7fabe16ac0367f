"""Logit lens (Map the Flow): what each layer's hidden states would predict, read through the
model's own final norm and unembedding.

One pass per doc, under the model's regime and perturbations as loaded, gives two readings:

- answer probability: at the last position, per layer, the probability of the token the model
  finally predicts and of the ground-truth token (the paper's "ready to answer" curve);
- video tokens: per layer, the top-1 vocabulary token of every video position, and how often
  those are keywords (temporal and motion words by default, ``--keywords`` to change).

A top-1 token counts for a keyword when its text, stripped and lower-cased, equals it. Layers
where the regime has dropped the video (temporal exit) have no video reading.

Outputs in one folder: ``answer_probability.csv`` (doc, layer, p_pred, p_true, correct),
``video_top1.csv`` (layer, token, count: the most frequent top-1 tokens), ``keywords.csv`` (layer,
keyword, count, video_tokens read, share), ``answer_probability.png`` and ``keywords.png``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import torch

from lmms_eval_flow.engine.attention import ACTIVE_BATCH
from lmms_eval_flow.analysis.knockout import selected_docs

DEFAULT_KEYWORDS = ("before", "after", "first", "last", "then", "begin", "end", "start", "stop", "move", "moving",
                    "left", "right", "up", "down", "appear", "disappear", "grow", "shrink", "fast", "slow")
TOP_TOKENS = 10  # most frequent top-1 tokens kept per layer in video_top1.csv
_CHUNK = 256  # video positions projected at once, to bound memory on real vocabularies


class LayerReadings:
    """Forward hooks on every decoder layer keeping what the lens reads, per prompt in run order."""

    def __init__(self, hf_model):
        decoder = hf_model.get_decoder()
        self.norm, self.unembed = decoder.norm, hf_model.get_output_embeddings()
        self.depth = len(decoder.layers)
        # Per prompt run: "last", per layer the last position's hidden state; "video", per layer
        # the top-1 token of every video position.
        self.prompts: list[dict[str, list[torch.Tensor]]] = []
        self._batch: list[dict[str, list[torch.Tensor]]] = []
        self._handles = [layer.register_forward_hook(lambda module, args, hidden, i=i: self._read(i, hidden))
                         for i, layer in enumerate(decoder.layers)]

    @torch.no_grad()
    def _read(self, layer: int, hidden: torch.Tensor) -> None:
        batch = ACTIVE_BATCH.get()
        if batch is None or not batch.prefill:
            return
        if layer == 0:
            self._batch = [{"last": [], "video": []} for _ in batch.plans]
        for reading, plan, pad, row in zip(self._batch, batch.plans, batch.pads, hidden):
            reading["last"].append(row[-1].float().cpu())
            if len(row) == batch.prompt_length:
                positions = (plan.layout.positions("video") + pad).to(row.device)
                top1 = [self.project(row[chunk]).argmax(-1).cpu() for chunk in positions.split(_CHUNK)]
                reading["video"].append(torch.cat(top1) if top1 else torch.zeros(0, dtype=torch.long))
            else:
                reading["video"].append(torch.zeros(0, dtype=torch.long))  # video left the sequence (temporal exit)
        if layer == self.depth - 1:
            self.prompts.extend(self._batch)

    @torch.no_grad()
    def project(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits the model would give these hidden states were they its last layer's output."""
        return self.unembed(self.norm(hidden.to(self.unembed.weight.device, self.unembed.weight.dtype))).float()

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def keyword_of(text: str, keywords: tuple[str, ...]) -> str | None:
    word = text.strip().lower()
    return word if word in keywords else None


def logit_lens(probe, output: str | Path, samples: str = "correct",
               keywords: tuple[str, ...] = DEFAULT_KEYWORDS) -> dict[str, pd.DataFrame]:
    """Run the lens over the probe's docs and write its tables and figures to ``output``."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    keywords = tuple(k.strip().lower() for k in keywords)
    print(f"logit lens: {len(probe.docs)} forward passes, reading {probe.depth} layers each", flush=True)
    readings = LayerReadings(probe.lm.model)
    try:
        predictions = probe.run(list(probe.docs))
    finally:
        readings.remove()

    answer_rows, counts, totals = [], [Counter() for _ in range(probe.depth)], [0] * probe.depth
    if len(readings.prompts) != len(predictions):
        raise RuntimeError(f"read {len(readings.prompts)} prompts' layers for {len(predictions)} predictions")
    for (doc_id, prediction), reading in zip(predictions.items(), readings.prompts):
        doc = probe.docs[doc_id]
        pred = int(prediction.probs.argmax())
        lens = readings.project(torch.stack(reading["last"])).softmax(-1)  # [depth, vocab]
        for layer in range(probe.depth):
            answer_rows.append(dict(doc_id=doc_id, layer=layer + 1, p_pred=float(lens[layer, pred]),
                                    p_true=float(lens[layer, doc.true_token]), correct=pred == doc.true_token))
    answers = pd.DataFrame(answer_rows)
    chosen = set(selected_docs(answers.drop_duplicates("doc_id"), samples)["doc_id"])
    for (doc_id, _), reading in zip(predictions.items(), readings.prompts):
        if doc_id in chosen:
            for layer, top1 in enumerate(reading["video"]):
                counts[layer].update(top1.tolist())
                totals[layer] += len(top1)

    texts = {token: probe.token_text(token) for counter in counts for token in counter}
    top = pd.DataFrame([dict(layer=layer + 1, token=texts[token], token_id=token, count=n)
                        for layer, counter in enumerate(counts) for token, n in counter.most_common(TOP_TOKENS)],
                       columns=["layer", "token", "token_id", "count"])
    keyword_rows = []
    for layer, counter in enumerate(counts):
        hits = Counter()
        for token, n in counter.items():
            if word := keyword_of(texts[token], keywords):
                hits[word] += n
        keyword_rows += [dict(layer=layer + 1, keyword=word, count=hits[word], video_tokens=totals[layer],
                              share=hits[word] / totals[layer] if totals[layer] else float("nan")) for word in keywords]
    keyword_table = pd.DataFrame(keyword_rows)

    answers.to_csv(output / "answer_probability.csv", index=False)
    top.to_csv(output / "video_top1.csv", index=False)
    keyword_table.to_csv(output / "keywords.csv", index=False)
    _plot(answers[answers["doc_id"].isin(chosen)], keyword_table, output, f"{probe.task_name}, {len(chosen)} "
          f"{'correctly answered ' if samples == 'correct' else ''}docs")
    print(f"logit lens over {len(chosen)} of {len(predictions)} docs ({samples}) written to {output}")
    return {"answer_probability": answers, "video_top1": top, "keywords": keyword_table}


def _plot(answers: pd.DataFrame, keywords: pd.DataFrame, output: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.5, 4))
    means = answers.groupby("layer")[["p_pred", "p_true"]].mean()
    axis.plot(means.index, means["p_pred"], marker="o", markersize=3, label="predicted token")
    axis.plot(means.index, means["p_true"], marker="o", markersize=3, label="ground-truth token")
    axis.set(xlabel="layer", ylabel="probability at the last position", title=f"logit lens: {title}")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(output / "answer_probability.png", dpi=120)
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(6.5, 4))
    for word, rows in keywords.groupby("keyword", sort=False):
        if rows["count"].sum():
            axis.plot(rows["layer"], rows["share"], marker="o", markersize=3, label=word)
    total = keywords.groupby("layer")["share"].sum(min_count=1)
    axis.plot(total.index, total.values, color="black", linewidth=1.5, label="all keywords")
    axis.set(xlabel="layer", ylabel="share of video tokens whose top-1 token is the keyword",
             title=f"video tokens through the lens: {title}")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(output / "keywords.png", dpi=120)
    plt.close(figure)
