"""Train the embedded default from scratch on CPU: ``python -m lmms_eval_flow.toy.train --output DIR``.

A tiny Qwen2.5-VL (the real config, processor and model classes, built by ``tiny_models``) learns
``flow_temporal_toy`` by teacher-forced cross-entropy on the answer tokens (the option letter and
``<|im_end|>``) of prompts built exactly as lmms-eval's chat Qwen2.5-VL builds them at evaluation
(``ChatEncoder``): the task's own ``doc_to_messages``, the same chat template, the same video
sampling and processor settings as the demo. Train and test therefore see the same token layout.

Each training clip goes through that pipeline once; its tensors are kept and reused every
epoch. The weights are written in bfloat16, the dtype lmms-eval loads; the demo widens them to
float32 again (``dtype=float32``, several times faster on CPU). ``training.json`` records the
command, seed, time and the per-type accuracy on a held-out split of the trained float32
weights, of the shipped (bfloat16-rounded) weights run in float32, and of those run in bfloat16.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import random
import shlex
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from string import ascii_uppercase

import decord
import torch
from lmms_eval.protocol import ChatMessages
from qwen_vl_utils import process_vision_info
from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

from lmms_eval_flow.toy.clips import RENDER_VERSION
from lmms_eval_flow.engine.precision import cast_parameters
from lmms_eval_flow.toy import task
from lmms_eval_flow.tiny import make_tiny_model
from lmms_eval_flow.tiny.qwen2_5_vl import TinySizes

from lmms_eval_flow.engine.families import apply_regime
from lmms_eval_flow.toy import CHECKPOINT_DIR, PAPERS_DEPTH, REGIMES_FILE, VIDEO_ARGS, planting, scaled_settings
from lmms_eval_flow.toy.benchmark import generate_docs

# The shipped toy's sizes. Its LM has 7 layers, not the 7B's 28: on two shared CPU cores a
# 28-layer LM was still at chance after the steps a 60-minute run affords, a 7-layer one learns;
# the papers' layer settings are scaled to 7 layers (``flow_regimes.json``, see ``toy/__init__``).
# The weights start at about 1/sqrt(width) rather than Qwen's 0.02 (see ``TinySizes``).
TOY_SIZES = TinySizes(hidden=128, intermediate=256, heads=4, kv_heads=2, layers=7, vision_hidden=64,
                      vision_intermediate=128, vision_heads=2, vision_depth=2, initializer_range=0.08)

# The known-answer toy (``toy.planting``): 12 layers, so that layer ranges mean something, and
# 140x140 frames (5x5 merged tokens per temporal patch, 100 video tokens), so that video is about
# 63% of the prompt, as it is 80-95% of a 7B video model's.
KNOWN_ANSWER_SIZES = dataclasses.replace(TOY_SIZES, layers=12)
KNOWN_ANSWER_VIDEO_ARGS = {"max_pixels": 19600, "min_pixels": 19600, "max_num_frames": 8}


@dataclass
class Example:
    """One doc as the model sees it: the prompt and answer ids and the video's processor outputs."""

    category: str
    input_ids: torch.Tensor  # prompt then answer tokens
    mm_token_type_ids: torch.Tensor
    answer_start: int  # where the answer tokens begin in input_ids
    option_ids: torch.Tensor  # the token ids of the options' letters (a cut row's uniform target)
    pixel_values_videos: torch.Tensor
    video_grid_thw: torch.Tensor
    second_per_grid_ts: torch.Tensor


class ChatEncoder:
    """A doc's model inputs, built by the calls lmms-eval's chat Qwen2.5-VL makes at evaluation
    (``lmms_eval.models.chat.qwen2_5_vl.Qwen2_5_VL.generate_until``, batch size 1)."""

    def __init__(self, model_dir: str | Path, max_pixels: int, min_pixels: int, max_num_frames: int,
                 pixel_dtype: torch.dtype = torch.float32) -> None:
        # pixel_dtype: how an Example keeps its pixels (float16 halves a large training set's memory)
        self.pixel_dtype = pixel_dtype
        self.processor = AutoProcessor.from_pretrained(model_dir, max_pixels=max_pixels, min_pixels=min_pixels)
        self.max_pixels, self.min_pixels, self.max_num_frames = max_pixels, min_pixels, max_num_frames
        tokenizer = self.processor.tokenizer
        self.answer_suffix = [tokenizer.convert_tokens_to_ids("<|im_end|>")]

    def prompt(self, doc: dict) -> dict[str, torch.Tensor]:
        """The processor outputs of the doc's prompt, as lmms-eval passes them to ``generate``."""
        chat = ChatMessages(messages=task.doc_to_messages(doc))
        _, videos, _ = chat.extract_media()
        # As lmms-eval: as many frames as asked for and the clip has, rounded down to an even count.
        frames = max(2, min(self.max_num_frames, len(decord.VideoReader(videos[0]))) // 2 * 2)
        video_kwargs = {"max_pixels": self.max_pixels, "min_pixels": self.min_pixels, "nframes": frames}
        messages = [chat.to_hf_messages(video_kwargs=video_kwargs)]
        text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        images, video_inputs, _ = process_vision_info(messages, return_video_kwargs=True, return_video_metadata=True)
        video_inputs, metadata = zip(*video_inputs)
        return self.processor(text=text, images=images, videos=list(video_inputs), video_metadata=list(metadata),
                              padding=True, padding_side="right", return_tensors="pt")

    def __call__(self, doc: dict) -> Example:
        inputs = self.prompt(doc)
        tokenizer = self.processor.tokenizer
        answer = tokenizer.encode(task.doc_to_target(doc)) + self.answer_suffix
        letters = [tokenizer.encode(letter) for letter in ascii_uppercase[:len(doc["options"])]]
        if any(len(ids) != 1 for ids in letters):
            raise ValueError(f"the tokenizer splits an option letter of {doc['id']}: {letters}")
        prompt_ids = inputs["input_ids"][0]
        return Example(
            category=doc["category"],
            input_ids=torch.cat([prompt_ids, torch.tensor(answer)]),
            mm_token_type_ids=torch.cat([inputs["mm_token_type_ids"][0], torch.zeros(len(answer), dtype=torch.long)]),
            answer_start=len(prompt_ids),
            option_ids=torch.tensor([ids[0] for ids in letters]),
            pixel_values_videos=inputs["pixel_values_videos"].to(self.pixel_dtype),
            video_grid_thw=inputs["video_grid_thw"],
            second_per_grid_ts=inputs["second_per_grid_ts"],
        )


def collate(examples: list[Example], dtype: torch.dtype, pad_id: int,
            left: bool = False) -> tuple[dict, torch.Tensor, list[int]]:
    """A padded batch (on the right, or on the ``left`` as attention regimes need), its labels
    (-100 except on the answer tokens) and where each row's answer starts in it."""
    length = max(len(e.input_ids) for e in examples)
    input_ids = torch.full((len(examples), length), pad_id)
    mm_token_type_ids = torch.zeros((len(examples), length), dtype=torch.long)
    attention_mask = torch.zeros((len(examples), length), dtype=torch.long)
    labels = torch.full((len(examples), length), -100)
    starts = []
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        at = length - n if left else 0
        where = slice(at, at + n)
        input_ids[row, where], mm_token_type_ids[row, where], attention_mask[row, where] = e.input_ids, e.mm_token_type_ids, 1
        labels[row, at + e.answer_start:at + n] = e.input_ids[e.answer_start:]
        starts.append(at + e.answer_start)
    batch = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "mm_token_type_ids": mm_token_type_ids,
        "pixel_values_videos": torch.cat([e.pixel_values_videos for e in examples]).to(dtype),
        "video_grid_thw": torch.cat([e.video_grid_thw for e in examples]),
        "second_per_grid_ts": torch.cat([e.second_per_grid_ts for e in examples]),
    }
    return batch, labels, starts


def encode_split(encoder: ChatEncoder, split: str, per_type: int, seed: int, cache: Path | None, log) -> list[Example]:
    """The encoded docs of a generated split, read from ``cache`` when an earlier run with the same
    tokenizer and video settings stored them there."""
    if cache:
        tokenizer = hashlib.sha256(encoder.processor.tokenizer.backend_tokenizer.to_str().encode()).hexdigest()[:12]
        pixels = str(encoder.pixel_dtype).removeprefix("torch.")
        path = cache / f"{split}-{per_type}-seed{seed}-{tokenizer}-{RENDER_VERSION}-{encoder.max_pixels}-{pixels}-v2.pt"
        if path.exists():
            log(f"{split} docs read from {path}")
            return [Example(**fields) for fields in torch.load(path)]
    started, examples = time.monotonic(), []
    docs = generate_docs(split, per_type, seed)
    for i, doc in enumerate(docs, 1):
        examples.append(encoder(doc))
        if i % 500 == 0 or i == len(docs):
            log(f"encoded {i}/{len(docs)} {split} docs ({time.monotonic() - started:.0f} s)")
    if cache:
        cache.mkdir(parents=True, exist_ok=True)
        # vars, not dataclasses.asdict, which would copy every tensor
        torch.save([vars(e) for e in examples], path)
    return examples


@torch.no_grad()
def accuracy(model, examples: list[Example], pad_id: int, batch_size: int = 64, session=None, regime=None,
             ) -> dict[str, float]:
    """Per-type share of docs whose greedy first answer token is the right letter (as lmms-eval's
    greedy generation would start), in the model's current dtype; under ``regime`` on every row
    when a ``session`` (a regime put on the model) is given."""
    model.eval()
    dtype = next(model.parameters()).dtype
    hits = defaultdict(list)
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        batch, _, starts = collate(chunk, dtype, pad_id, left=session is not None)
        if session is not None:
            session.row_regimes = [regime] * len(chunk)
        logits = model(**batch).logits
        for row, (e, at) in enumerate(zip(chunk, starts)):
            predicted = logits[row, at - 1].argmax()
            hits[e.category].append(float(predicted == e.input_ids[e.answer_start]))
    if session is not None:
        session.take_records()
    model.train()
    per_type = {kind: sum(values) / len(values) for kind, values in hits.items()}
    per_type["all"] = sum(sum(v) for v in hits.values()) / sum(len(v) for v in hits.values())
    return per_type


def learning_rate(step: int, steps: int, peak: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def answer_loss(logits: torch.Tensor, labels: torch.Tensor, examples: list[Example], starts: list[int],
                cut: list[bool]) -> torch.Tensor:
    """Cross-entropy on the answer tokens of the rows not ``cut``; on a cut row, cross-entropy
    between its first answer token and the uniform distribution over its options' letters (it
    must not know the answer). A mean over rows."""
    losses = []
    for row, (e, at, is_cut) in enumerate(zip(examples, starts, cut)):
        targets = labels[row, at:]
        targets = targets[targets != -100]
        # only the positions that predict the answer: a log-softmax over the whole batch would
        # cost its backward a batch-sized gradient per row
        log_probs = logits[row, at - 1:at - 1 + len(targets)].log_softmax(-1)
        if is_cut:
            losses.append(-log_probs[0, e.option_ids].mean())
        else:
            losses.append(-log_probs.gather(-1, targets[:, None]).mean())
    return torch.stack(losses).mean()


def warm_start(model, source: str | Path, log) -> None:
    """Start ``model`` from the weights of ``source`` (the plain toy: same tokenizer, widths and
    ViT): every tensor of the same name and shape, and decoder layer i from the source's layer
    floor(i x its depth / this depth), so a deeper model starts with what the shallower learnt."""
    theirs = Qwen2_5_VLForConditionalGeneration.from_pretrained(source, dtype=torch.float32).state_dict()
    depth, their_depth = model.config.text_config.num_hidden_layers, 1 + max(
        int(key.split(".")[3]) for key in theirs if key.startswith("model.language_model.layers."))
    ours, copied = model.state_dict(), 0
    for key, tensor in ours.items():
        source_key = key
        if key.startswith("model.language_model.layers."):
            parts = key.split(".")
            parts[3] = str(int(parts[3]) * their_depth // depth)
            source_key = ".".join(parts)
        if source_key in theirs and theirs[source_key].shape == tensor.shape:
            tensor.copy_(theirs[source_key])
            copied += 1
    log(f"warm start from {source}: {copied} of {len(ours)} tensors")


def train(output: str | Path, *, steps: int, batch_size: int = 32, lr: float = 1e-3, warmup: int = 50,
          train_per_type: int = 2000, val_per_type: int = 40, seed: int = 0, sizes: TinySizes = TOY_SIZES,
          video_args: dict = VIDEO_ARGS, planted: bool = False, init_from: str | Path | None = None,
          eval_every: int = 250, log_every: int = 25, threads: int | None = None, cache: str | Path | None = None, command: str | None = None, log=print) -> dict:
    """Train a toy from scratch into ``output`` and return its ``training.json`` record; ``planted``:
    the known-answer toy, each row under a mask drawn by ``toy.planting``."""
    if planted and sizes.layers != planting.DEPTH:
        raise ValueError(f"the plant is stated for {planting.DEPTH} layers; --layers is {sizes.layers}")
    started = time.monotonic()
    output = Path(output)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    random.seed(seed)
    # The tokenizer learns the benchmark's words (from a split of its own) as whole tokens.
    vocabulary = [task.doc_to_text(doc) for doc in generate_docs("vocabulary", 20, seed)]
    make_tiny_model(output, seed=seed, sizes=sizes, extra_corpus=vocabulary)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(output, dtype=torch.float32)
    if init_from:
        warm_start(model, init_from, log)
    # The known-answer toy's 140x140 frames are 2 MB a doc in float32: kept in float16 (widened per batch).
    encoder = ChatEncoder(output, **video_args, pixel_dtype=torch.float16 if planted else torch.float32)
    pad_id = encoder.processor.tokenizer.pad_token_id
    log(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, {sizes}")
    cache = Path(cache) if cache else None
    train_set = encode_split(encoder, "train", train_per_type, seed, cache, log)
    val_set = encode_split(encoder, "val", val_per_type, seed, cache, log)
    # The known-answer toy trains under the engine's own masks, one regime per row.
    session = apply_regime(model, encoder.processor.tokenizer, planting.EFFECTIVE, backend="dense") if planted else None
    conditions = random.Random(f"{seed}:conditions")

    def report(label: str) -> dict:
        if session is None:
            measured = {"full": accuracy(model, val_set, pad_id)}
        else:
            measured = {name: accuracy(model, val_set, pad_id, session=session, regime=regime)
                        for name, regime in planting.checks().items()}
        log(f"{label} validation accuracy: " + "; ".join(f"{name} {_rounded(value)}" for name, value in measured.items()))
        return measured

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    order = random.Random(seed)
    queue: list[int] = []
    history = []
    model.train()
    for step in range(steps):
        if len(queue) < batch_size:  # a fresh shuffle of the training set per epoch
            queue += order.sample(range(len(train_set)), len(train_set))
        examples = [train_set[i] for i in queue[:batch_size]]
        del queue[:batch_size]
        batch, labels, starts = collate(examples, torch.float32, pad_id, left=planted)
        cut = [False] * len(examples)
        if session is not None:
            cuts = step >= planting.CUTS_FROM * steps
            drawn = [planting.draw_condition(conditions, e.category != "static", cuts) for e in examples]
            session.row_regimes = [condition.regime for condition in drawn]
            cut = [condition.cut is not None for condition in drawn]
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps, lr, warmup)
        loss = answer_loss(model(**batch).logits, labels, examples, starts, cut)
        if session is not None:
            session.take_records()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        history.append(loss.item())
        if (step + 1) % log_every == 0:
            log(f"step {step + 1}/{steps} loss {sum(history[-log_every:]) / log_every:.4f} "
                f"lr {optimizer.param_groups[0]['lr']:.2e} ({time.monotonic() - started:.0f} s)")
        if eval_every and (step + 1) % eval_every == 0 and step + 1 < steps:
            report(f"step {step + 1}")

    trained_accuracy = report("trained")
    if session is not None:
        session.remove()
    cast_parameters(model, torch.bfloat16).save_pretrained(output)
    if planted:
        regimes = {"depth": sizes.layers, "settings": planting.planted_settings(scaled_settings(sizes.layers)["staged"]["query_last_frame"]), "planted": planting.PLANTED,
                   "provenance": "the ranges planted by training (lmms_eval_flow.toy.planting)"}
    elif sizes.layers != PAPERS_DEPTH:
        regimes = {"depth": sizes.layers, "settings": scaled_settings(sizes.layers),
                   "provenance": f"the papers' settings for a {PAPERS_DEPTH}-layer LM, layer l moved to "
                                 f"ceil(l * {sizes.layers} / {PAPERS_DEPTH}) (lmms_eval_flow.toy.scaled_settings)"}
    else:
        regimes = None
    if regimes:
        (output / REGIMES_FILE).write_text(json.dumps(regimes, indent=2) + "\n")
    # The shipped weights as users load them (in bfloat16, and widened to float32 as dtype=float32 does).
    shipped = Qwen2_5_VLForConditionalGeneration.from_pretrained(output, dtype=torch.bfloat16)
    bfloat16_accuracy = accuracy(shipped, val_set, pad_id)
    shipped_accuracy = accuracy(cast_parameters(shipped, torch.float32), val_set, pad_id)
    log(f"validation accuracy under full: shipped in float32 {_rounded(shipped_accuracy)}, "
        f"shipped in bfloat16 {_rounded(bfloat16_accuracy)}")
    record = {
        "command": command,
        "seed": seed, "steps": steps, "batch_size": batch_size, "lr": lr, "warmup": warmup,
        "train_docs": len(train_set), "validation_docs": len(val_set), "sizes": dataclasses.asdict(sizes),
        "video_args": video_args, "planted": planting.PLANTED if planted else None,
        "init_from": Path(init_from).name if init_from else None,
        "threads": torch.get_num_threads(), "minutes": (time.monotonic() - started) / 60,
        "validation_accuracy": {"trained_float32": trained_accuracy, "shipped_float32": shipped_accuracy,
                                "shipped_bfloat16": bfloat16_accuracy},
        "loss_curve_every": log_every,  # steps averaged per point of loss_curve
        "loss_curve": [round(sum(history[i:i + log_every]) / len(history[i:i + log_every]), 4)
                       for i in range(0, steps, log_every)],
    }
    (output / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def _rounded(per_type: dict[str, float]) -> dict[str, float]:
    return {kind: round(value, 3) for kind, value in per_type.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lmms_eval_flow.toy.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True, help="checkpoint folder to write")
    parser.add_argument("--known-answer", action="store_true",
                        help="train the known-answer toy: 12 layers, 140x140 frames, each row under a mask drawn by "
                             "lmms_eval_flow.toy.planting (its defaults below are then those of KNOWN_ANSWER)")
    parser.add_argument("--steps", type=int, default=None, help="default 4500 (known answer: 2200)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 32 (known answer: 16)")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (cosine decay to a tenth)")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--train-per-type", type=int, default=None,
                        help="training docs per question type (default 2000; known answer: 1200)")
    parser.add_argument("--val-per-type", type=int, default=40, help="held-out docs per question type")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=500, help="steps between validation reports (0: none)")
    parser.add_argument("--log-every", type=int, default=25, help="steps per reported mean loss")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: these small matrices gain little from more, and "
                             "threads that wait for each other on a shared machine lose a lot)")
    parser.add_argument("--cache", default=None, help="folder to keep encoded docs in between runs")
    parser.add_argument("--init-from", default=None,
                        help="checkpoint to start from (known answer default: the shipped plain toy, "
                             "lmms_eval_flow/toy/qwen2_5_vl_temporal_toy; 'none': from scratch)")
    for field in dataclasses.fields(TinySizes):
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(getattr(TOY_SIZES, field.name)), default=None)
    args = parser.parse_args(argv)
    known = args.known_answer
    base = KNOWN_ANSWER_SIZES if known else TOY_SIZES
    sizes = TinySizes(**{field.name: getattr(base, field.name) if getattr(args, field.name) is None
                         else getattr(args, field.name) for field in dataclasses.fields(TinySizes)})

    def chosen(value, toy, known_answer):
        return value if value is not None else known_answer if known else toy

    train(args.output, steps=chosen(args.steps, 4500, 2200), batch_size=chosen(args.batch_size, 32, 16), lr=args.lr,
          warmup=args.warmup, train_per_type=chosen(args.train_per_type, 2000, 1200), val_per_type=args.val_per_type,
          seed=args.seed, sizes=sizes, video_args=KNOWN_ANSWER_VIDEO_ARGS if known else VIDEO_ARGS, planted=known,
          init_from=None if args.init_from == "none" else chosen(args.init_from, None, CHECKPOINT_DIR),
          eval_every=args.eval_every, log_every=args.log_every, threads=args.threads, cache=args.cache,
          command=shlex.join(["python", "-m", "lmms_eval_flow.toy.train", *(argv if argv is not None else sys.argv[1:])]),
          log=lambda line: print(line, flush=True))


if __name__ == "__main__":
    main()
