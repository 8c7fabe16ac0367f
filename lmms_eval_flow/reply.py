"""A generated answer that carries its sample's attention-edge count to the task's scorer.

lmms-eval hands each model reply, as text, through its evaluator to the task's
``process_results(doc, results)``; it has no other per-sample channel from model to
scorer. A ``FlowReply`` is that text with the sample's edge counts attached, so every
flow task reports accuracy and attention edges side by side with no change to the harness,
on every rank of a distributed run.
"""

from __future__ import annotations


class FlowReply(str):
    """Reply text plus the attention edges its prefill used (summed over layers)."""

    edges: int
    full_edges: int

    def __new__(cls, text: str, edges: int, full_edges: int) -> "FlowReply":
        reply = super().__new__(cls, text)
        reply.edges = int(edges)
        reply.full_edges = int(full_edges)
        return reply

    def strip(self, chars: str | None = None) -> "FlowReply":
        """lmms-eval strips every reply before scoring; keep the counts through it."""
        return FlowReply(str.strip(self, chars), self.edges, self.full_edges)

    def __reduce__(self):
        return FlowReply, (str(self), self.edges, self.full_edges)

    @property
    def kept(self) -> float:
        return self.edges / self.full_edges if self.full_edges else 0.0


def attention_metrics(reply: str) -> dict[str, float]:
    """The edge metrics of one reply, or none when the model did not report them.

    A model without attention regimes (lmms-eval's own wrappers) returns plain text; its
    results then carry accuracy alone rather than a made-up edge count.
    """
    if not isinstance(reply, FlowReply):
        return {}
    return {"attention_edges": reply.edges, "attention_kept": reply.kept}
