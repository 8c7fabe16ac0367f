"""Deterministic synthetic video clips, described by small JSON scene specs.

Offline tests and the ``flow_synthetic`` task need real mp4 files whose content is known
exactly (which way a shape moves, what appears first), without downloading a data set. A
clip is fully described by a JSON-serialisable spec, e.g.::

    {"frames": 8, "size": 56, "fps": 4, "background": "black",
     "objects": [{"shape": "square", "color": "red", "start": [14, 28],
                  "velocity": [4, 0], "size": 12}]}

Frame-level keys: ``frames`` (count), ``size`` (width = height in pixels, even, as
yuv420p needs), ``fps``, ``background`` (a colour). Each object may also set:

- ``velocity`` [dx, dy]: pixels per frame (x grows to the right, y grows downwards);
  ``[0, 0]`` (the default) gives a static object.
- ``growth``: pixels per frame added to ``size`` (negative shrinks; a shape whose size
  reaches 0 is not drawn).
- ``appear`` / ``disappear``: the first frame the object is drawn on, and the first frame
  it is gone again (``null``: never).
- ``color_changes``: ``[{"frame": 4, "color": "blue"}, ...]``; from that frame on the
  object has the new colour.

``start`` is the object's centre on frame 0 (it keeps moving while hidden, so ``appear``
does not shift its path); ``size`` is a square's side, a circle's diameter and a
triangle's base and height. Colours are names from ``COLORS`` or ``[r, g, b]``. Objects
are drawn in list order, later ones on top.

``null`` always means "the default", so a spec that went through a ``datasets`` table
(which fills keys missing from some rows with ``None``) renders the same clip and maps to
the same cache file as the original.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

COLORS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "gray": (128, 128, 128),
    "red": (230, 30, 30),
    "green": (30, 200, 30),
    "blue": (30, 60, 230),
    "yellow": (240, 220, 20),
    "orange": (250, 140, 0),
    "purple": (150, 40, 200),
    "cyan": (20, 220, 230),
    "magenta": (230, 30, 200),
}
SHAPES = ("square", "circle", "triangle")

CLIP_DEFAULTS = {"frames": 8, "size": 56, "fps": 4, "background": "black", "objects": []}
OBJECT_DEFAULTS = {
    "shape": "square",
    "color": "white",
    "start": [28, 28],
    "velocity": [0, 0],
    "size": 12,
    "growth": 0,
    "appear": 0,
    "disappear": None,
    "color_changes": [],
}

# Part of every cache key: bump it whenever a change here alters the pixels of a spec.
RENDER_VERSION = 1


def normalize_spec(spec: dict) -> dict:
    """The spec with every default filled in and numbers in one canonical type.

    Two specs that describe the same clip normalise to the same dict, which is what
    ``clip_path`` hashes; normalising twice changes nothing. Unknown keys are an error,
    so a typo cannot silently give a different clip than intended.
    """
    clip = _with_defaults(spec, CLIP_DEFAULTS, "clip")
    size = int(clip["size"])
    if size <= 0 or size % 2:
        raise ValueError(f"clip size must be a positive even number of pixels (yuv420p), got {size}")
    if int(clip["frames"]) <= 0:
        raise ValueError(f"a clip needs at least one frame, got {clip['frames']}")
    return {
        "frames": int(clip["frames"]),
        "size": size,
        "fps": float(clip["fps"]),
        "background": _rgb(clip["background"]),
        "objects": [_normalize_object(obj) for obj in clip["objects"]],
    }


def _normalize_object(obj: dict) -> dict:
    obj = _with_defaults(obj, OBJECT_DEFAULTS, "object")
    if obj["shape"] not in SHAPES:
        raise ValueError(f"unknown shape {obj['shape']!r}; valid shapes: {', '.join(SHAPES)}")
    changes = [_with_defaults(change, {"frame": None, "color": None}, "color change") for change in obj["color_changes"]]
    if any(change["frame"] is None or change["color"] is None for change in changes):
        raise ValueError(f"every colour change needs a frame and a color, got {obj['color_changes']!r}")
    return {
        "shape": obj["shape"],
        "color": _rgb(obj["color"]),
        "start": [float(v) for v in obj["start"]],
        "velocity": [float(v) for v in obj["velocity"]],
        "size": float(obj["size"]),
        "growth": float(obj["growth"]),
        "appear": int(obj["appear"]),
        "disappear": None if obj["disappear"] is None else int(obj["disappear"]),
        "color_changes": sorted(({"frame": int(c["frame"]), "color": _rgb(c["color"])} for c in changes), key=lambda c: c["frame"]),
    }


def _with_defaults(values: dict, defaults: dict, what: str) -> dict:
    unknown = set(values) - set(defaults)
    if unknown:
        raise ValueError(f"unknown {what} keys {sorted(unknown)}; valid keys: {sorted(defaults)}")
    return {**defaults, **{key: value for key, value in values.items() if value is not None}}


def _rgb(color) -> list[int]:
    if isinstance(color, str):
        if color not in COLORS:
            raise ValueError(f"unknown colour {color!r}; use [r, g, b] or one of: {', '.join(COLORS)}")
        return list(COLORS[color])
    rgb = [int(channel) for channel in color]
    if len(rgb) != 3 or not all(0 <= channel <= 255 for channel in rgb):
        raise ValueError(f"a colour needs three channels in 0..255, got {color!r}")
    return rgb


def render_frames(spec: dict) -> np.ndarray:
    """The clip's frames as a ``(frames, size, size, 3)`` uint8 RGB array."""
    clip = normalize_spec(spec)
    size = clip["size"]
    # Pixel centres, so a shape's edges fall where its geometry says.
    y, x = np.mgrid[0:size, 0:size] + 0.5
    frames = np.empty((clip["frames"], size, size, 3), dtype=np.uint8)
    for t in range(clip["frames"]):
        frames[t] = clip["background"]
        for obj in clip["objects"]:
            visible = obj["appear"] <= t and (obj["disappear"] is None or t < obj["disappear"])
            extent = obj["size"] + obj["growth"] * t
            if visible and extent > 0:
                cx = obj["start"][0] + obj["velocity"][0] * t
                cy = obj["start"][1] + obj["velocity"][1] * t
                frames[t][_shape_mask(obj["shape"], x - cx, y - cy, extent)] = _color_at(obj, t)
    return frames


def _shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, extent: float) -> np.ndarray:
    """Pixels covered by a shape of side/diameter ``extent`` centred at offset (0, 0)."""
    half = extent / 2
    if shape == "square":
        return (np.abs(dx) <= half) & (np.abs(dy) <= half)
    if shape == "circle":
        return dx**2 + dy**2 <= half**2
    # An upright isosceles triangle: apex at the top, base at the bottom, as wide as high.
    depth = dy + half  # 0 at the apex, ``extent`` at the base
    return (depth >= 0) & (depth <= extent) & (np.abs(dx) <= depth / 2)


def _color_at(obj: dict, t: int) -> list[int]:
    color = obj["color"]
    for change in obj["color_changes"]:
        if change["frame"] <= t:
            color = change["color"]
    return color


def render_clip(spec: dict, path: str | Path) -> Path:
    """Encode the spec's frames as an H.264 mp4 (yuv420p) at ``path`` and return the path."""
    clip = normalize_spec(spec)
    path = Path(path)
    # format="mp4" so that a temporary name without the .mp4 suffix still gets an mp4.
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(clip["fps"]).limit_denominator(1000))
        stream.width = stream.height = clip["size"]
        stream.pix_fmt = "yuv420p"
        # Near-lossless, so thin shapes and colours survive chroma subsampling; one
        # thread so the same spec gives the same bytes on every machine.
        stream.options = {"crf": "10", "threads": "1"}
        for pixels in render_frames(clip):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())  # flush the encoder's buffered frames
    return path


def clips_dir() -> Path:
    """The clip cache: ``$HF_HOME/lmms_eval_flow/clips``, read when called so tests can move it."""
    hf_home = os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface"
    return Path(hf_home).expanduser() / "lmms_eval_flow" / "clips"


def spec_hash(spec: dict) -> str:
    """A short stable name for the clip a spec describes (equal clips, equal names)."""
    canonical = json.dumps({"render_version": RENDER_VERSION, "clip": normalize_spec(spec)}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def clip_path(spec: dict) -> Path:
    """The cached mp4 for ``spec``, rendered on first use.

    The clip is written to a temporary file in the cache directory and renamed into place,
    so several processes (ranks of an accelerate run) may ask for the same clip at once:
    each sees either no file or a complete one, never a half-written mp4.
    """
    path = clips_dir() / f"{spec_hash(spec)}.mp4"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    os.close(fd)
    try:
        render_clip(spec, tmp_name)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path
