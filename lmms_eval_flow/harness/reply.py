"""A generated answer that carries its sample's attention-edge count to the task's scorer.

lmms-eval hands each model reply, as text, through its evaluator to the task's
``process_results(doc, results)``; it has no other per-sample channel from model to
scorer. A ``FlowReply`` is that text with the sample's edge counts and measured prefill cost
attached, so every flow task reports accuracy, attention edges and cost side by side with no
change to the harness, on every rank of a distributed run. The reply of a sample that could not run is empty and
carries the reason instead (``failure``), reported by the tasks as ``failed_samples``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lmms_eval_flow.harness.ledger import EdgeLedger


@dataclass(frozen=True)
class PrefillCost:
    """What one sample's prefill cost, measured as it ran rather than derived from the regime, so
    that a saving such as temporal exit's shorter KV cache is seen, not assumed (``flow_model``
    says how each is taken). ``attention_flops`` follows from the exact edge count."""

    prefill_seconds: float  # the text decoder's prefill forward, its batch's time shared by its rows
    kv_cache_bytes: int  # held by the row's positions in the KV cache right after the prefill
    attention_flops: int  # 4 x edges x head_dim x attention heads: QK^T and AV, a multiply-add each


COST_METRICS = tuple(field.name for field in fields(PrefillCost))


class FlowReply(str):
    """Reply text plus the attention edges its prefill used (summed over layers) and what the
    prefill cost (``cost``, None where it was not measured), or, for a sample that could not run,
    an empty reply with the ``failure`` that says why."""

    edges: int
    full_edges: int
    failure: str | None
    cost: PrefillCost | None

    def __new__(cls, text: str, edges: int, full_edges: int, failure: str | None = None,
                cost: PrefillCost | None = None) -> "FlowReply":
        reply = super().__new__(cls, text)
        reply.edges = int(edges)
        reply.full_edges = int(full_edges)
        reply.failure = failure
        reply.cost = cost
        return reply

    @classmethod
    def failed(cls, failure: str) -> "FlowReply":
        """The reply of a sample that did not run: scored as wrong, with no edges and no cost."""
        return cls("", 0, 0, failure)

    @classmethod
    def recorded(cls, record: dict) -> "FlowReply":
        """The reply an edge ledger record keeps (``ledger.EdgeLedger.append``); a record written
        before costs were measured has none."""
        measured = all(name in record for name in COST_METRICS)
        cost = PrefillCost(**{name: record[name] for name in COST_METRICS}) if measured else None
        return cls(record["reply"], record["edges"], record["full_edges"], cost=cost)

    def strip(self, chars: str | None = None) -> "FlowReply":
        """lmms-eval strips every reply before scoring; keep the counts through it."""
        return FlowReply(str.strip(self, chars), self.edges, self.full_edges, self.failure, self.cost)

    def __reduce__(self):
        return FlowReply, (str(self), self.edges, self.full_edges, self.failure, self.cost)

    @property
    def kept(self) -> float:
        return self.edges / self.full_edges if self.full_edges else 0.0


@dataclass
class LoadedFlowModel:
    """What this process must remember of its flow model for the scorer: lmms-eval hands
    ``process_results`` only the doc and the reply text, so once a flow model is loaded every reply
    must carry its edge counts, or find them in its ``edge_ledger`` (a reply that lmms-eval's
    response cache served as plain text). ``loaded_flow_model`` is the process's one instance."""

    loaded: bool = False
    edge_ledger: EdgeLedger | None = None


loaded_flow_model = LoadedFlowModel()


def note_flow_model_loaded(edge_ledger: EdgeLedger | None = None) -> None:
    """A flow model is loaded in this process (with its edge ledger, when given; an earlier one is kept otherwise)."""
    loaded_flow_model.loaded = True
    loaded_flow_model.edge_ledger = edge_ledger or loaded_flow_model.edge_ledger


def attention_metrics(reply: str, doc: dict | None = None) -> dict[str, float | None]:
    """The edge and cost metrics of one reply, or none when the model does not report them.

    A model without attention regimes (lmms-eval's own wrappers) returns plain text; its results
    then carry accuracy alone rather than a made-up edge count, as a reply without a measured cost
    (one made by hand, or recorded before costs were measured) carries no cost. A failed sample ran
    no attention: its edges and costs are None, left out of the means (``task_utils.mean_of_scored``).
    A flow model's reply that arrives as plain text was either served by lmms-eval's response cache
    (``--use_cache``), and its edges and costs are in the model's edge ledger under ``doc``, or lost
    its counts on the way (a filter or reasoning-tag stripping rewrote it): that is an error, not a
    sample to leave out of the mean.
    """
    if not isinstance(reply, FlowReply):
        if not loaded_flow_model.loaded:
            return {}
        reply = _served_reply(reply, doc)
    if reply.failure is not None:
        return dict.fromkeys(("attention_edges", "attention_kept", *COST_METRICS))
    return {"attention_edges": reply.edges, "attention_kept": reply.kept, **(asdict(reply.cost) if reply.cost else {})}


def _served_reply(reply: str, doc: dict | None) -> FlowReply:
    """The ledger's record of a reply that lmms-eval's response cache served as plain text."""
    if loaded_flow_model.edge_ledger is None or doc is None:
        raise ValueError(
            f"reply {str(reply)[:60]!r} reached the scorer without its attention-edge counts: something between "
            "the model and process_results rewrote it (a task filter, or --reasoning_tags; flow tasks set "
            "reasoning_tags: none and strip reasoning blocks in their own parser), or lmms-eval's response cache "
            "served it and the scorer was not given the doc to look its edges up in the edge ledger"
        )
    from lmms_eval_flow.harness.ledger import doc_key, scoring_task

    return FlowReply.recorded(loaded_flow_model.edge_ledger.record_of(scoring_task(), doc_key(doc), str(reply)))


def failure_of(reply: str) -> str | None:
    """Why the sample of this reply could not run, or None when it ran."""
    return getattr(reply, "failure", None)


def flow_metrics(reply: str, doc: dict | None = None) -> dict:
    """What a flow model adds to a doc's metrics: the attention edges, the prefill's cost and
    ``failed_samples`` (why the sample could not run, or None); nothing for a model without
    attention regimes."""
    edges = attention_metrics(reply, doc)
    return {**edges, "failed_samples": failure_of(reply)} if edges else {}
