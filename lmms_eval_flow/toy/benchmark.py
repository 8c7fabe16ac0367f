"""The ``flow_temporal_toy`` benchmark: generated clips whose questions need more than one frame.

Five question types, each a multiple-choice question with the same options in the same order
for every doc of the type:

- ``direction``: which way the named shape moves (left, right, up, down); a still shape may stand by.
- ``order``: which of a red, a green and a blue shape appears first (or last); they appear
  on different frames.
- ``size``: whether the shape grows, shrinks or stays the same; start sizes overlap, so no
  single frame tells.
- ``count``: how many times the shape changes colour (never .. three times); a colour may
  come back, so counting the colours seen is not enough.
- ``static``: the control, the colour of the named shape (red, green, blue or yellow), which
  any single frame shows; another shape of another colour may stand by.

Every doc is generated from ``random.Random(f"{seed}:{split}:{type}")``, so a split is the same
on every machine. Within a type the answer cycles through the options, so every answer, hence
every letter, is equally often right and a model that always gives one letter scores chance.
The options keep their order because a model this small, trained on two CPU cores, learns the
video part of the task within the budget but not, in addition, to look the answer up among
shuffled options (measured: still at chance after 125 steps).
Changes (appearing, colour) happen on even frames only: Qwen2.5-VL merges frames in pairs
(one temporal patch), so a change never falls inside a pair.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from string import ascii_uppercase

from lmms_eval_flow.harness.runner import TASKS_DIR

QUESTION_TYPES = ("direction", "order", "size", "count", "static")

# The committed test split (tasks/flow_temporal_toy/test.jsonl) and the training split's seed.
SEED = 0
TEST_PER_TYPE = 50

FRAMES, SIZE, FPS = 8, 56, 4
COLORS = ("red", "green", "blue", "yellow", "cyan", "magenta", "white")
SHAPES = ("square", "circle", "triangle")
ORDER_COLORS = ("red", "green", "blue")
STATIC_COLORS = ("red", "green", "blue", "yellow")  # the control's options
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
SIZE_CHANGES = ("it grows", "it shrinks", "it stays the same")
COUNTS = ("never", "once", "twice", "three times")
# The frames a change may happen on: the first frame of each temporal patch but the first.
CHANGE_FRAMES = (2, 4, 6)


def _clip(*objects: dict) -> dict:
    return {"frames": FRAMES, "size": SIZE, "fps": FPS, "background": "black", "objects": list(objects)}


def _name(obj: dict) -> str:
    return f"{obj['color']} {obj['shape']}"


def _direction(rng: random.Random, answer: str) -> tuple[str, dict]:
    speed = rng.choice((3, 4))
    color, other_color = rng.sample(COLORS, 2)
    shape, other_shape = rng.sample(SHAPES, 2)
    (dx, dy), travel, half = DIRECTIONS[answer], speed * (FRAMES - 1), 7

    def start(step: int) -> int:  # a start from which the whole path stays inside the frame
        low, high = half + 1, SIZE - half - 1
        return rng.randint(low, high - travel) if step > 0 else rng.randint(low + travel, high) if step < 0 else rng.randint(low, high)

    mover = {"shape": shape, "color": color, "start": [start(dx), start(dy)], "velocity": [dx * speed, dy * speed], "size": 14}
    objects = [mover]
    if rng.random() < 0.5:  # a still shape the question does not ask about
        objects.insert(0, {"shape": other_shape, "color": other_color, "start": [rng.randint(8, 48), rng.randint(8, 48)], "size": 12})
    return f"In which direction does the {_name(mover)} move?", _clip(*objects)


def _order(rng: random.Random, answer: str) -> tuple[str, dict]:
    which = rng.choice(("first", "last"))
    # The answer's colour takes the earliest (or latest) of three distinct appearance frames.
    frames = sorted(rng.sample((0, *CHANGE_FRAMES), 3), reverse=which == "last")
    others = [color for color in ORDER_COLORS if color != answer]
    rng.shuffle(others)
    cells = rng.sample([(14, 14), (42, 14), (14, 42), (42, 42)], 3)  # one quadrant each, no overlap
    objects = [{"shape": rng.choice(SHAPES), "color": color, "start": [x + rng.randint(-3, 3), y + rng.randint(-3, 3)],
                "size": 14, "appear": frame} for color, frame, (x, y) in zip([answer, *others], frames, cells)]
    rng.shuffle(objects)  # drawing order says nothing
    return f"Which colour appears {which}?", _clip(*objects)


def _size(rng: random.Random, answer: str) -> tuple[str, dict]:
    growth = rng.choice((2, 3))
    if answer == "it grows":
        size, rate = rng.randint(6, 12), growth
    elif answer == "it shrinks":
        size, rate = rng.randint(26, 34), -growth
    else:
        size, rate = rng.randint(10, 30), 0
    obj = {"shape": rng.choice(SHAPES), "color": rng.choice(COLORS), "start": [28 + rng.randint(-4, 4), 28 + rng.randint(-4, 4)],
           "size": size, "growth": rate}
    return f"Does the {_name(obj)} grow or shrink?", _clip(obj)


def _count(rng: random.Random, answer: str) -> tuple[str, dict]:
    changes = COUNTS.index(answer)
    color = rng.choice(COLORS)
    obj = {"shape": rng.choice(SHAPES), "color": color, "start": [rng.randint(14, 42), rng.randint(14, 42)], "size": 16,
           "color_changes": []}
    for frame in sorted(rng.sample(CHANGE_FRAMES, changes)):
        color = rng.choice([c for c in COLORS if c != color])
        obj["color_changes"].append({"frame": frame, "color": color})
    return f"How many times does the {obj['shape']} change colour?", _clip(obj)


def _static(rng: random.Random, answer: str) -> tuple[str, dict]:
    shape, other_shape = rng.sample(SHAPES, 2)
    obj = {"shape": shape, "color": answer, "start": [rng.randint(10, 46), rng.randint(10, 46)], "size": 14}
    objects = [obj]
    if rng.random() < 0.5:  # another shape of another colour, drawn below
        other_color = rng.choice([color for color in COLORS if color != answer])
        objects.insert(0, {"shape": other_shape, "color": other_color, "start": [rng.randint(8, 48), rng.randint(8, 48)], "size": 12})
    return f"What colour is the {shape}?", _clip(*objects)


# Per type: the generator (question and clip for a given answer) and the options, in order.
_GENERATORS = {
    "direction": (_direction, list(DIRECTIONS)),
    "order": (_order, list(ORDER_COLORS)),
    "size": (_size, list(SIZE_CHANGES)),
    "count": (_count, list(COUNTS)),
    "static": (_static, list(STATIC_COLORS)),
}


def _doc(kind: str, index: int, rng: random.Random, split: str) -> dict:
    generate, options = _GENERATORS[kind]
    position = index % len(options)  # cycles, so every answer and letter is right equally often
    question, clip = generate(rng, options[position])
    return {"id": f"{split}_{kind}_{index:05d}", "category": kind, "question": question, "options": options,
            "answer": ascii_uppercase[position], "clip": clip}


def generate_docs(split: str, per_type: int, seed: int = SEED) -> list[dict]:
    """``per_type`` docs of every question type, interleaved by type, the same on every call."""
    if per_type < 1:
        raise ValueError(f"per_type={per_type} must be at least 1")
    rngs = {kind: random.Random(f"{seed}:{split}:{kind}") for kind in QUESTION_TYPES}
    return [_doc(kind, index, rngs[kind], split) for index in range(per_type) for kind in QUESTION_TYPES]


def write_jsonl(docs: list[dict], path: str | Path) -> Path:
    path = Path(path)
    path.write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    return path


def committed_split_path() -> Path:
    """The committed test split the ``flow_temporal_toy`` task reads."""
    return TASKS_DIR / "flow_temporal_toy" / "test.jsonl"


if __name__ == "__main__":  # regenerate the committed test split
    print(write_jsonl(generate_docs("test", TEST_PER_TYPE), committed_split_path()))
