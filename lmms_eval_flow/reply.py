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


# Set when a flow model is loaded in this process: from then on every reply must carry its counts.
_flow_model_loaded = False


def note_flow_model_loaded() -> None:
    global _flow_model_loaded
    _flow_model_loaded = True


def attention_metrics(reply: str) -> dict[str, float]:
    """The edge metrics of one reply, or none when the model does not report them.

    A model without attention regimes (lmms-eval's own wrappers) returns plain text; its
    results then carry accuracy alone rather than a made-up edge count. A flow model's reply
    that arrives as plain text lost its counts on the way (a filter or reasoning-tag stripping
    rewrote it): that is an error, not a sample to leave out of the mean.
    """
    if isinstance(reply, FlowReply):
        return {"attention_edges": reply.edges, "attention_kept": reply.kept}
    if _flow_model_loaded:
        raise ValueError(
            f"reply {str(reply)[:60]!r} reached the scorer without its attention-edge counts: something between "
            "the model and process_results rewrote it (a task filter, or --reasoning_tags; flow tasks set "
            "reasoning_tags: none and strip reasoning blocks in their own parser)"
        )
    return {}
