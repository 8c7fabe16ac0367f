"""What every flow model wrapper shares, whatever the family: regime arguments checked before
the model loads, replies that carry their sample's attention edges, samples that fail one by
one instead of ending the run, and runs that resume where they were interrupted.

A family wrapper subclasses ``FlowModel`` and lmms-eval's own wrapper for that family
(``class Qwen2_5_VLFlow(FlowModel, Qwen2_5_VL)``) and says which checkpoints it takes and how a
``RegimeSession`` (the family's layout function) goes on the loaded model; ``FlowModel.__init__``
checks the arguments before any weights load, loads through lmms-eval, then starts the regime.

How generation is followed. lmms-eval's chat wrappers build each prompt from the request's
``doc_to_messages`` right before running it, run a batch (one prefill), and report each answer
through ``self.cache_hook.add_partial``, all in the same order. Wrapping ``doc_to_messages`` and
taking that hook tells which request every prefill plan and every answer belongs to, as it
happens: the edges go with their answer, and under ``--use_cache`` each answer reaches the edge
ledger (``ledger.py``) before the next runs.

A task's instruction ("Only give the best option.") is drawn as template, not question: its
``doc_to_messages`` names it on the text (``task_utils.video_messages``), and each prompt built
adds the instructions it names to ``self.instructions``, which the layout reads at each prefill.
A task's answer primer ("Best option:(") is sent as the start of the assistant's turn
(``harness.primer``): lmms-eval's own wrappers cannot continue a turn, a flow model's processor can.

A bad video is refused when lmms-eval builds its prompt (``sample_checks``), not in a pass
before generation: that would build every prompt twice, and out of the order in which callers
that track ``doc_to_messages`` themselves (the analysis tools' probe) pair prompts with outputs.
A video over ``video_token_budget`` is refused at its prefill, before the text decoder runs,
where its token count is exact for every family. The refused sample stops lmms-eval's call;
the requests not yet answered go into the next one. An error that names no sample is pinned
on one by running the prompts it may have come from one at a time. A failed sample gets an
empty reply carrying the reason, which the tasks score as wrong and report in ``failed_samples``.

What is a sample's failure. One that comes from the sample's own data: its video (missing,
empty, unreadable, too short, over ``video_token_budget``) or its doc (no video, a prompt that
cannot be built). An error of generation may be the sample's (a video no processor can resize)
or not (no GPU, a frame count the wrapper cannot sample): when ``REPEATED_ERRORS`` samples in a
row that reach generation fail with the same error (type and message), its cause is not theirs,
and the run stops with ``RepeatedGenerationError`` naming it and, where known, its fix. Errors
that end a run are ``run_errors.RunStopped``: lmms-eval's CLI swallows any ``Exception``.
"""

from __future__ import annotations

import inspect
import os
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from typing import ClassVar

import torch
from lmms_eval.api.instance import GenerationResult, Instance, TokenCounts
from lmms_eval.api.model import CacheHook
from lmms_eval.utils import simple_parse_args_string
from loguru import logger
from transformers import AutoConfig

from lmms_eval_flow.engine.attention import ACTIVE_BATCH
from lmms_eval_flow.harness.ledger import EdgeLedger, asked_by_response_cache, cacheable, doc_key, request_key
from lmms_eval_flow.engine.plan import SamplePlan
from lmms_eval_flow.engine import families
from lmms_eval_flow.engine.regimes import PARAMETERS, Regime, build_regime
from lmms_eval_flow.harness.ledger import LedgerError
from lmms_eval_flow.harness.primer import ContinuingProcessor, named_on_text, primer_in, with_primer
from lmms_eval_flow.harness.reply import FlowReply, PrefillCost, note_flow_model_loaded
from lmms_eval_flow.harness.results_files import install_results_check
from lmms_eval_flow.harness.run_errors import REPEATED_ERRORS, ConfigurationError, RepeatedGenerationError, RunStopped, fix_for
from lmms_eval_flow.harness.sample_checks import (MIN_FRAMES, DocProblem, SampleFailure, check_sample, describe,
                                                  failure_message, problem_of)
from lmms_eval_flow.engine.session import BACKENDS, RegimeSession

# Model arguments of the run rather than of the model, taken out by ``create_from_arg_string``.
RUN_OPTIONS = ("strict", "video_token_budget", "min_frames", "edge_ledger")


def lmms_eval_arguments(upstream_init) -> tuple[str, ...]:
    """The named arguments of an lmms-eval wrapper's ``__init__``."""
    return tuple(p for p in inspect.signature(upstream_init).parameters if p not in ("self", "args", "kwargs"))


def checkpoint_config(pretrained: str, model_name: str, model_type: str):
    """The checkpoint's config (for its depth, before the weights load), checked to be of the
    family's ``model_type``: lmms-eval's generic wrappers would load another family silently."""
    config = AutoConfig.from_pretrained(pretrained)
    if config.model_type != model_type:
        raise ValueError(f"{model_name} needs a {model_type} checkpoint; {pretrained} is a {config.model_type} checkpoint")
    return config


@dataclass(frozen=True)
class FlowArguments:
    regime: Regime
    backend: str


def parse_flow_arguments(model_name: str, regime: str, depth: int, kwargs: dict, upstream_arguments,
                         own_arguments=(), model_type: str | None = None,
                         checkpoint: str | None = None) -> tuple[FlowArguments, dict]:
    """Split ``--model_args`` into our validated arguments and those for lmms-eval's wrapper.

    Runs before any weights load, so a typo costs seconds, not a model load. ``model_type`` and
    ``checkpoint`` tell which published ranges are this model's (``published_ranges``).
    """
    regime_args = {key: kwargs.pop(key) for key in PARAMETERS if key in kwargs}
    backend = kwargs.pop("attention_backend", "auto")
    misplaced = [key for key in RUN_OPTIONS if key in kwargs]
    if misplaced:
        raise ValueError(f"{', '.join(misplaced)} are options of an lmms-eval run: give them in --model_args "
                         f"(read by {model_name}.create_from_arg_string), or set the model's run_options")
    unknown = sorted(set(kwargs) - set(upstream_arguments))
    if unknown:
        raise ValueError(
            f"unknown model argument(s) {', '.join(unknown)} for {model_name}; valid: regime, attention_backend, "
            f"{', '.join((*PARAMETERS, *own_arguments))}, the run options {', '.join(RUN_OPTIONS)} and lmms-eval's arguments "
            f"{', '.join(upstream_arguments)}"
        )
    if backend not in BACKENDS:
        raise ValueError(f"attention_backend={backend!r} is not valid; valid: {', '.join(BACKENDS)}")
    built = build_regime(regime, depth, model_type=model_type, checkpoint=checkpoint, **regime_args)
    return FlowArguments(built, backend), kwargs


@dataclass(frozen=True)
class RunOptions:
    """How a run treats samples that cannot run, and where it keeps its edge ledger.

    ``strict``: stop at the first failed sample (default: score it as wrong and go on);
    ``video_token_budget``: fail a sample whose video has more tokens (default: no limit);
    ``min_frames``: fail a video with fewer frames (default 2); ``edge_ledger``: the folder of
    the ledger that resumes interrupted ``--use_cache`` runs (default under ``$HF_HOME``).
    """

    strict: bool = False
    video_token_budget: int | None = None
    min_frames: int = MIN_FRAMES
    edge_ledger: str | None = None

    @classmethod
    def take(cls, arguments: dict) -> "RunOptions":
        """Take the run options out of parsed ``--model_args``, checked."""
        given = {key: arguments.pop(key) for key in RUN_OPTIONS if key in arguments}
        strict = given.get("strict", False)
        if not isinstance(strict, bool):
            raise ValueError(f"strict={strict!r} is not valid; valid: true, false")
        budget = given.get("video_token_budget")
        if budget is not None and not _is_count(budget):
            raise ValueError(f"video_token_budget={budget!r} is not valid: give the most video tokens a sample "
                             f"may have, a whole number of at least 1")
        min_frames = given.get("min_frames", MIN_FRAMES)
        if not _is_count(min_frames):
            raise ValueError(f"min_frames={min_frames!r} is not valid: give the fewest frames a video may have, "
                             f"a whole number of at least 1")
        ledger = given.get("edge_ledger")
        return cls(strict, budget, min_frames, None if ledger is None else str(ledger))


def instructions_in(messages: list[dict]) -> set[str]:
    """The instruction texts a prompt's messages name on their text (``task_utils.video_messages``)."""
    return {instruction for named in named_on_text(messages, "instructions") for instruction in named}


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass
class _Attempt:
    """One call into lmms-eval's generation, as followed through its hooks."""

    built: list[int] = field(default_factory=list)  # requests whose prompts were built, in order
    plans: dict[int, SamplePlan] = field(default_factory=dict)  # the prefill plan of each request run
    answered: set[int] = field(default_factory=set)
    failures: dict[int, str] = field(default_factory=dict)  # why a request cannot be answered
    costs: dict[int, PrefillCost] = field(default_factory=dict)  # what the prefill of each request run cost
    steps: int = 0  # forward passes of the batch being generated: one per generated token
    prefill_started: float | None = None  # perf_counter when the running batch's prefill began

    def next_to_answer(self) -> int:
        """Answers come in the order the prompts were built."""
        waiting = [index for index in self.built if index not in self.answered]
        if not waiting:
            raise PairingError("an answer came for no prompt built; cannot pair answers with docs")
        return waiting[0]


class _AnswerHook(CacheHook):
    """lmms-eval's per-answer hook (``cache_hook``), which its chat wrappers call once per
    answer, in the order they built the prompts; it hands each answer to the flow model."""

    def __init__(self, model: "FlowModel"):
        super().__init__(None)
        self.model = model

    def add_partial(self, attr, request, answer) -> None:
        self.model._answered(answer)


class RunError(RunStopped):
    """An error that ends the run rather than one sample (and exits non-zero, see ``run_errors``)."""


class PairingError(RunError):
    """Prompts, prefills and answers did not line up: a family wrapper's fault, not a sample's."""


class FailedSampleError(RunError):
    """``strict=true``: the run stops at the first sample that cannot run; the message names it."""


class VideoTokenBudgetExceeded(RuntimeError):
    """Raised at a prefill to stop it; the samples over the budget are recorded as failed."""


class FlowModel:
    """Mixin for an lmms-eval chat wrapper: run its generation under ``self.session``'s regime.

    A family's wrapper (``class XFlow(FlowModel, LmmsEvalX)``) names itself and the checkpoints
    it takes, and says how to put a regime on the loaded model (``regime_session``); the
    arguments are checked before any weights load, then lmms-eval's wrapper loads the model.
    """

    model_name: ClassVar[str]  # the --model name, for messages
    checkpoint_type: ClassVar[str]  # config.model_type of the checkpoints it loads
    upstream_arguments: ClassVar[tuple[str, ...]]  # lmms-eval's own model arguments (lmms_eval_arguments)
    own_arguments: ClassVar[tuple[str, ...]] = ()  # the family's further named arguments, for messages
    processor_attribute: ClassVar[str] = "processor"  # where lmms-eval's wrapper keeps the processor it templates with
    frames_attribute: ClassVar[str] = "max_num_frames"  # lmms-eval's frame argument of the wrapper: the most frames a video gives

    regime: Regime
    session: RegimeSession
    instructions: set[str]  # the tasks' instruction and primer texts met so far, which the layout draws as template
    run_options: RunOptions = RunOptions()
    ledger: EdgeLedger | None = None  # set when lmms-eval builds the model (create_from_arg_string)

    def __init__(self, pretrained: str, regime: str = "full", **kwargs) -> None:
        config = checkpoint_config(pretrained, self.model_name, self.checkpoint_type)
        flow, kwargs = parse_flow_arguments(self.model_name, regime, config.text_config.num_hidden_layers, kwargs,
                                            self.upstream_arguments, self.own_arguments, config.model_type, pretrained)
        self.check_regime(config, flow.regime)
        self.regime, self.instructions = flow.regime, set()
        self.load_model(pretrained, **kwargs)
        setattr(self, self.processor_attribute, ContinuingProcessor(getattr(self, self.processor_attribute)))
        self.start_regime(self.regime_session(flow.backend))

    def check_regime(self, config, regime: Regime) -> None:
        """Refuse, before the weights load, what this family cannot run with ``regime`` (the
        family's own check, ``engine.families``)."""
        families.check_regime(config, regime)

    def load_model(self, pretrained: str, **kwargs) -> None:
        """Load through lmms-eval's wrapper (the next class after this mixin)."""
        super().__init__(pretrained=pretrained, **kwargs)

    def regime_session(self, backend: str) -> RegimeSession:
        """The family's ``apply_regime`` on the loaded model, reading ``self.instructions``."""
        raise NotImplementedError(f"{type(self).__name__} must say how a regime is put on its model")

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict | None = None):
        """How lmms-eval builds a model from ``--model_args``: the run options are taken out and
        checked before any weights load, the family's wrapper gets the rest (as lmms-eval's own
        ``create_from_arg_string`` gives them), the arguments name the run's edge ledger, and
        lmms-eval's results files will be checked once it writes them (``results_files``).

        This is lmms-eval's way in: a model that cannot be built from ``--model_args`` stops the
        run (``ConfigurationError``), since lmms-eval's CLI would log the error and exit 0."""
        arguments = simple_parse_args_string(arg_string)
        extra = {key: value for key, value in (additional_config or {}).items() if value is not None}
        everything = {**arguments, **extra}
        try:
            options = RunOptions.take(arguments)
            model = cls(**arguments, **extra)
        except Exception as error:
            raise ConfigurationError(f"{cls.model_name} cannot be built from --model_args {arg_string!r}: "
                                     f"{type(error).__name__}: {error}") from error
        model.run_options = options
        rank = int(os.environ.get("RANK", model.rank))  # the global rank, as lmms-eval's evaluator reads it
        model.ledger = EdgeLedger.for_model(cls.__name__, everything, options.edge_ledger, rank)
        note_flow_model_loaded(model.ledger)
        install_results_check()
        return model

    def start_regime(self, session: RegimeSession) -> None:
        """Run from now on under ``session`` (the family's ``apply_regime`` on the loaded model)."""
        self.session = session
        self._attempt: _Attempt | None = None
        self._same_errors: list[str] = []  # the samples that failed generation in a row with one error
        self._frame_counts_told: set[tuple[str, int]] = set()  # (task, stated frames) already warned about
        self._last_error: str | None = None
        self.cache_hook = _AnswerHook(self)
        decoder = self.model.get_decoder()
        decoder.register_forward_pre_hook(self._before_decoder)
        decoder.register_forward_hook(self._after_decoder, with_kwargs=True)
        self._decoder_gpus = {p.device for p in decoder.parameters() if p.device.type == "cuda"}
        text = self.model.config.get_text_config()
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
        self._flops_per_edge = 4 * head_dim * text.num_attention_heads
        note_flow_model_loaded()
        logger.info(f"{type(self).__name__}: regime {self.regime.describe()}")
        source = self.regime.settings.get("ranges_from", "")
        if source.startswith("a guess"):
            logger.warning(f"{type(self).__name__}: the effective ranges are {source}; give cross_frame, "
                           f"video_question and question_last, or ranges=FILE (lmms-eval-flow calibrate), to set them")

    def generate_until(self, requests: list[Instance]) -> list[GenerationResult]:
        """lmms-eval's generation, with each reply carrying its sample's attention edges, or,
        for a sample that cannot run, the reason (``FlowReply.failure``).

        Under lmms-eval's response cache, a request answered before an interruption is answered
        from the edge ledger, and every new answer is added to it as soon as it is made.
        """
        self._requests = requests
        self._replies: list[GenerationResult | None] = [None] * len(requests)
        self._videos: dict[int, list] = {}
        resuming = self.ledger is not None and asked_by_response_cache()
        if resuming:
            self.ledger.hold()  # one run at a time answers into a ledger
        self._ledger_keys = {i: self._ledger_key(r) for i, r in enumerate(requests)} if resuming else {}
        self._answer_from_ledger()
        pending = [i for i, reply in enumerate(self._replies) if reply is None]
        while pending:  # each pass answers or fails at least one request
            self._run(pending)
            pending = [i for i in pending if self._replies[i] is None]
        return self._replies

    # -- the edge ledger --------------------------------------------------------------------
    def _ledger_key(self, request: Instance) -> tuple[str, str, str] | None:
        context, _, gen_kwargs, doc_id, task, split = request.args
        if not cacheable(gen_kwargs):
            return None  # sampled replies are not reused, as lmms-eval caches none
        return task, doc_key(self.task_dict[task][split][doc_id]), request_key(context, gen_kwargs)

    def _answer_from_ledger(self) -> None:
        served = 0
        for index, key in self._ledger_keys.items():
            record = key and self.ledger.reply_for(*key)
            if record:
                reply = FlowReply.recorded(record)
                self._replies[index] = GenerationResult(text=reply, token_counts=None)
                served += 1
        if served:
            logger.info(f"edge ledger {self.ledger.directory}: {served} of {len(self._requests)} requests were "
                        f"answered before the run was interrupted; they are not run again")

    # -- one call into lmms-eval's generation -----------------------------------------------
    def generating(self) -> AbstractContextManager:
        """What holds while lmms-eval's wrapper generates (a family's reach-in, e.g. the Qwen
        wrappers' ``sampling_inside_windows``); nothing by default."""
        return nullcontext()

    def _run(self, indices: list[int]) -> None:
        """Generate the replies of ``indices`` through lmms-eval; a sample that fails is pinned
        down and recorded, and the others of the call are left for the next one."""
        attempt = self._attempt = _Attempt()
        self.session.take_records()
        try:
            with self.generating():
                results = super().generate_until([self._tracked(self._requests[i], i) for i in indices])
        except Exception as error:  # a RunStopped is no Exception: it ends the run
            self._after_error(indices, attempt, error)
            return
        finally:
            self._attempt = None
        for index, result in zip(indices, results):
            reply = self._replies[index]
            if reply is None:
                raise PairingError(f"{type(self).__name__} answered request {index} without reporting the answer "
                                   f"through cache_hook.add_partial, so its edges cannot be paired with it")
            if reply.text.failure is None:
                if str(reply.text) != str(result.text):
                    raise PairingError(f"{type(self).__name__} returned {result.text!r} but reported "
                                       f"{str(reply.text)!r} through cache_hook.add_partial")
                self._replies[index] = GenerationResult(text=reply.text, token_counts=result.token_counts)

    def _after_error(self, indices: list[int], attempt: _Attempt, error: Exception) -> None:
        """Record the failures an error came from; one that names no sample is pinned down by
        running the prompts it may have come from one at a time."""
        if attempt.answered:
            logger.warning(f"{describe(error)} ended a generation call after {len(attempt.answered)} answers: their "
                           f"replies, edges and token counts are kept, lmms-eval's throughput summary leaves them out")
        known = [i for i in attempt.failures if i not in attempt.answered]
        for index in known:
            self._fail(index, attempt.failures[index])
        if known:
            return  # the call's other requests go into the next call
        if len(indices) == 1:
            self._fail(indices[0], f"generation failed ({describe(error)})", generation_error=describe(error))
            return
        suspects = [i for i in attempt.built if i not in attempt.answered]
        for index in suspects or [i for i in indices if self._replies[i] is None]:
            self._run([index])

    def _tracked(self, request: Instance, index: int) -> Instance:
        """The request with its ``doc_to_messages`` wrapped: note the prompt being built and
        refuse a sample whose doc was found invalid when its task loaded or whose video cannot run.
        An invalid doc's prompt is its problem as text, with no video, for lmms-eval's own wrappers
        to answer; a flow model fails it unbuilt, with the reason a prompt that raised would give."""
        context, doc_to_messages, gen_kwargs, doc_id, task, split = request.args

        def messages(doc, **kwargs):
            attempt = self._attempt
            attempt.built.append(index)
            try:
                if problem_of(doc):  # its prompt would be the problem as text: never run it
                    raise DocProblem(problem_of(doc))
                built = with_primer(doc_to_messages(doc, **kwargs))
            except Exception as error:  # e.g. a benchmark's video lookup naming the paths it tried
                reason = f"its prompt could not be built ({describe(error)})"
            else:
                self._videos[index], reason = check_sample(built, self.run_options.min_frames)
                self.instructions.update(instructions_in(built) | {primer_in(built)} - {""})
                self._check_stated_frames(task, built)
            if reason:
                attempt.failures[index] = reason
                raise SampleFailure(reason, index)
            return built

        return replace(request, arguments=(context, messages, gen_kwargs, doc_id, task, split))

    def _check_stated_frames(self, task: str, messages: list[dict]) -> None:
        """Warn, once per task, when a prompt tells the model it is shown a frame count (TOMATO's
        "16 separate frames") other than the most this model samples (its lmms-eval frame argument)."""
        limit, fps = getattr(self, self.frames_attribute, None), getattr(self, "fps", None)
        for stated in set(named_on_text(messages, "stated_frames")):
            if (fps is None and stated == limit) or limit is None or (task, stated) in self._frame_counts_told:
                continue
            self._frame_counts_told.add((task, stated))
            sampled = f"samples {fps} frames a second (fps={fps})" if fps is not None else \
                f"samples up to {limit} ({self.frames_attribute}={limit})"
            logger.warning(f"{task}'s prompt tells the model it is shown {stated} frames, but {self.model_name} "
                           f"{sampled}: pass {self.frames_attribute}={stated}{' and no fps' if fps is not None else ''} "
                           f"to run the benchmark's protocol")

    def videos_being_built(self) -> list:
        """The videos of the batch lmms-eval is preparing: the prompts built since the last
        prefill that have not run yet (for a family wrapper that sets the batch's video arguments)."""
        attempt = self._attempt
        if attempt is None:
            return []
        waiting = [i for i in attempt.built if i not in attempt.plans and i not in attempt.answered]
        return [video for index in waiting for video in self._videos.get(index, [])]

    # -- hooks: prefill plans and answers ---------------------------------------------------
    def _claim_plans(self) -> None:
        """Give the prefills run since the last call their requests: a prefill's rows are the
        last prompts built that have no plan yet."""
        attempt, plans = self._attempt, self.session.take_records()
        if not plans:
            return
        waiting = [i for i in attempt.built if i not in attempt.plans and i not in attempt.answered]
        if len(plans) > len(waiting):
            raise PairingError(f"ran {len(plans)} prefills for {len(waiting)} prompts; cannot pair edges with docs")
        attempt.plans.update(zip(waiting[len(waiting) - len(plans):], plans))

    def _before_decoder(self, module, args) -> None:
        """Before each forward pass of the text decoder: count the batch's generated tokens
        (as lmms-eval counts them: one per pass, padding included), and at the prefill refuse a
        batch with a video over ``video_token_budget`` or else start its clock."""
        attempt, batch = self._attempt, ACTIVE_BATCH.get()
        if attempt is None or batch is None:
            return
        if not batch.prefill:
            attempt.steps += 1
            return
        attempt.steps = 1
        self._claim_plans()
        self._refuse_over_budget(attempt, batch)
        attempt.prefill_started = self._settled()

    def _refuse_over_budget(self, attempt: _Attempt, batch) -> None:
        """Stop a prefill whose batch holds a video over ``video_token_budget``, recording its samples as failed."""
        budget = self.run_options.video_token_budget
        if budget is None:
            return
        tokens_of = {i: plan.layout.size("video") for i, plan in attempt.plans.items()
                     if any(plan is row for row in batch.plans)}  # the requests of this batch
        over = {i: tokens for i, tokens in tokens_of.items() if tokens > budget}
        for index, tokens in over.items():
            attempt.failures[index] = f"its video has {tokens:,} tokens, over video_token_budget={budget:,}"
        if over:
            raise VideoTokenBudgetExceeded(f"{len(over)} sample(s) of this batch exceed video_token_budget={budget}")

    def _after_decoder(self, module, args, kwargs, output) -> None:
        """After the text decoder's prefill: what it cost each row of the batch (``PrefillCost``).

        ``prefill_seconds`` is the decoder's prefill forward (the vision encoder, which runs
        before it, is not included), its batch's time divided by the batch's rows, so a task's
        times add up to the time its prefills took. ``kv_cache_bytes`` is summed over the key and
        value tensors of every layer of the cache the decoder returns, counting of each row its
        own positions only (a row's left padding is the batch's, not the sample's): with one row,
        exactly every byte of the cache; under temporal exit, the late layers' shorter tensors."""
        attempt, batch = self._attempt, ACTIVE_BATCH.get()
        if attempt is None or batch is None or not batch.prefill or attempt.prefill_started is None:
            return
        seconds = (self._settled() - attempt.prefill_started) / len(batch.plans)
        attempt.prefill_started = None
        cache = getattr(output, "past_key_values", None)
        cache = kwargs.get("past_key_values") if cache is None else cache
        tensors = [tensor for layer in getattr(cache, "layers", []) for tensor in (layer.keys, layer.values)
                   if tensor is not None and tensor.numel()]
        row_of = {id(plan): row for row, plan in enumerate(batch.plans)}
        for index, plan in attempt.plans.items():
            row = row_of.get(id(plan))
            if row is None:
                continue  # a request of an earlier batch
            kv_bytes = sum(tensor[row, ..., batch.pads[row]:, :].numel() * tensor.element_size() for tensor in tensors)
            attempt.costs[index] = PrefillCost(seconds, kv_bytes, self._flops_per_edge * plan.edges)

    def _settled(self) -> float:
        """The time once the decoder's GPUs have run what was queued on them: CUDA runs kernels
        asynchronously, so a clock read without waiting would time the queueing only."""
        for device in self._decoder_gpus:
            torch.cuda.synchronize(device)
        return time.perf_counter()

    def _answered(self, text: str) -> None:
        """lmms-eval's wrapper has an answer: pair it with its request and plan."""
        attempt = self._attempt
        if attempt is None:
            return  # a generation outside generate_until: nothing to pair
        self._claim_plans()
        index = attempt.next_to_answer()
        attempt.answered.add(index)
        plan = attempt.plans.get(index)
        failure = attempt.failures.get(index)
        if failure is None and plan is None:
            failure = f"{type(self).__name__} answered without running the model (an error it caught and logged)"
            self._fail(index, failure, generation_error=failure)  # lmms-eval's wrapper went on after an error
            return
        if failure is not None:
            self._fail(index, failure)
            return
        self._last_error, self._same_errors = None, []
        reply = FlowReply(text, plan.edges, plan.full_edges, cost=attempt.costs.get(index))
        self._replies[index] = GenerationResult(text=reply, token_counts=TokenCounts(output_tokens=attempt.steps))
        key = self._ledger_keys.get(index)
        if key:
            task, doc, request = key
            try:
                self.ledger.append(task, self._requests[index].doc_id, doc, request, reply)
            except OSError as error:
                raise LedgerError(f"cannot write the edge ledger in {self.ledger.directory} ({describe(error)}); "
                                  f"give a writable folder with edge_ledger=DIR") from error

    def _fail(self, index: int, reason: str, generation_error: str | None = None) -> None:
        """Record a failed sample; ``generation_error`` (the error, for failures in generation rather
        than in the sample's own data) counts towards ``REPEATED_ERRORS``."""
        request = self._requests[index]
        message = failure_message(request.task_name, request.doc_id, self._videos.get(index), reason)
        if self.run_options.strict:
            raise FailedSampleError(message)
        logger.error(f"failed sample, scored as wrong: {message}")
        self._replies[index] = GenerationResult(text=FlowReply.failed(message), token_counts=None)
        if generation_error is not None:
            self._note_generation_error(f"{request.task_name} doc {request.doc_id}", generation_error)

    def _note_generation_error(self, sample: str, error: str) -> None:
        """Stop the run at the ``REPEATED_ERRORS``-th sample in a row to fail generation with the
        same error. An answered sample or another error starts the count again; a failure of a
        sample's own data (which never reaches generation) neither counts nor breaks the row."""
        if error != self._last_error:
            self._last_error, self._same_errors = error, []
        self._same_errors.append(sample)
        if len(self._same_errors) >= REPEATED_ERRORS:
            fix = fix_for(error)
            raise RepeatedGenerationError(
                f"{len(self._same_errors)} samples in a row ({', '.join(self._same_errors)}) failed in generation with "
                f"the same error, so its cause is the run's, not theirs: {error}. " + (f"Fix: {fix}." if fix else
                "Fix its cause (the model arguments, the machine) and run again."))
