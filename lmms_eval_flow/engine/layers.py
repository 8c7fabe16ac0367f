"""Layer ranges as users write them: 1-based, inclusive, "6-15", "20-" (to the last layer) or "12".

Everything a user reads or types numbers layers 1..L, as the papers do ("L6-15"); code works
with 0-based ``range`` objects. This module is the one place that converts between the two.
"""

from __future__ import annotations

import re

_RANGE = re.compile(r"^\s*(\d+)\s*(?:(-)\s*(\d*))?\s*$")


def parse_layer_range(value: str | int, depth: int, name: str) -> range:
    """Parse a 1-based inclusive layer range into 0-based layer indices.

    ``name`` is the argument being parsed, so that an error says which one was wrong.
    """
    match = _RANGE.match(str(value))
    if not match:
        raise ValueError(
            f"{name}={value!r} is not a layer range: write 1-based inclusive layers such as '6-15', "
            f"'20-' (layer 20 to the last) or '12'"
        )
    first = int(match.group(1))
    if match.group(2) is None:
        last = first
    else:
        last = int(match.group(3)) if match.group(3) else depth
    if not 1 <= first <= last <= depth:
        raise ValueError(
            f"{name}={value!r} is outside the model: its language model has {depth} layers, "
            f"so ranges must lie within 1-{depth} with first <= last"
        )
    return range(first - 1, last)


def parse_layer(value: str | int, depth: int, name: str) -> int:
    """Parse a single 1-based layer number into a 0-based index."""
    text = str(value).strip()
    if not text.isdigit() or not 1 <= int(text) <= depth:
        raise ValueError(f"{name}={value!r} is not a layer of this model: give a number within 1-{depth}")
    return int(text) - 1


def format_layer_range(layers: range) -> str:
    """The 1-based inclusive spelling of a 0-based range, as users write it."""
    if len(layers) == 0:
        return "none"
    return f"{layers.start + 1}-{layers.stop}"
