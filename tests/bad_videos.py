"""The ``flow_bad_videos`` test task: good clips among one bad video of every kind.

``build_task(folder)`` copies ``fixtures/bad_videos`` (task YAML and utils) into ``folder`` and
writes its videos and ``test.jsonl`` there; pass ``folder`` to lmms-eval as ``--include_path``.
With ``SMALL_VIDEO_ARGS`` a good 4-frame clip has 8 video tokens, the long 8-frame clip 16:
``BUDGET`` lets the first through and not the second.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np

from lmms_eval_flow.toy.clips import render_clip

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "bad_videos"
TASK = "flow_bad_videos"
BUDGET = 12
GOOD = "good"
# doc id -> (kind of video, what the failure says about it); None: a good clip.
DOCS = {
    0: (GOOD, None),
    1: ("missing", "no such file"),
    2: ("empty", "the file is empty (0 bytes)"),
    3: ("truncated", "the file cannot be read as a video (RuntimeError: Error reading"),
    4: (GOOD, None),
    5: ("one_frame", "the video has 1 frame, fewer than min_frames=2"),
    6: ("no_video", "the doc has no video"),
    7: ("long", f"its video has 16 tokens, over video_token_budget={BUDGET}"),
    8: ("too_wide", "generation failed (ValueError: absolute aspect ratio must be smaller than 200"),
    9: (GOOD, None),
}
FAILED = {doc_id: reason for doc_id, (_, reason) in DOCS.items() if reason}


def clip(frames: int, x: int) -> dict:
    return {"frames": frames, "size": 56, "fps": 4,
            "objects": [{"shape": "square", "color": "red", "start": [x, 28], "velocity": [4, 0], "size": 12}]}


def write_wide_clip(path: Path) -> None:
    """Four 1000x4 frames: decodable, but no model resizes an aspect ratio of 250."""
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=4)
        stream.width, stream.height, stream.pix_fmt = 1000, 4, "yuv420p"
        for shade in range(4):
            frame = np.full((4, 1000, 3), 60 * shade, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def write_video(kind: str, doc_id: int, folder: Path) -> str | None:
    path = folder / f"{doc_id}_{kind}.mp4"
    if kind == GOOD:
        render_clip(clip(4, 8 + 4 * doc_id), path)
    elif kind == "empty":
        path.touch()
    elif kind == "truncated":
        render_clip(clip(4, 10), path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "one_frame":
        render_clip(clip(1, 10), path)
    elif kind == "long":
        render_clip(clip(8, 10), path)
    elif kind == "too_wide":
        write_wide_clip(path)
    elif kind == "no_video":
        return None
    return str(path)  # "missing": a path with no file


def build_task(folder: Path) -> dict[int, str | None]:
    """Write the task into ``folder``; returns each doc's video path (None: no video)."""
    shutil.copytree(FIXTURE, folder / TASK)
    videos_folder = folder / TASK / "videos"
    videos_folder.mkdir()
    videos = {doc_id: write_video(kind, doc_id, videos_folder) for doc_id, (kind, _) in DOCS.items()}
    # questions of different lengths: every good doc has its own edge count
    docs = [{"id": f"doc{doc_id}", "question": f"Doc {doc_id}: in which direction does the red square move{' now' * doc_id}?",
             "options": ["right", "left", "up", "down"], "answer": "A", "video": videos[doc_id]} for doc_id in DOCS]
    (folder / TASK / "test.jsonl").write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    return videos


def failure_message(doc_id: int, videos: dict[int, str | None]) -> str:
    """How the failure of ``doc_id`` reads (its start: some reasons end with decoder details)."""
    where = videos[doc_id] or "no video"
    return f"{TASK} doc {doc_id} ({where}): {FAILED[doc_id]}"
