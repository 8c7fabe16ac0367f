"""Synthetic clips: the pixels say what the spec says, and the cache is safe to share."""

from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import decord
import numpy as np
import pytest

from lmms_eval_flow.toy import clips
from lmms_eval_flow.toy.clips import COLORS, clip_path, normalize_spec, render_clip, render_frames, spec_hash


@pytest.fixture(autouse=True)
def clip_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))


def scene(**obj):
    """A one-object clip on black; ``obj`` overrides the object's keys."""
    return {"frames": 8, "size": 56, "fps": 4, "background": "black", "objects": [{"shape": "square", "color": "red", "size": 10, **obj}]}


def drawn(frames: np.ndarray) -> np.ndarray:
    """Per frame, which pixels are not background (black)."""
    return frames.max(axis=-1) > 40


def centroids(frames: np.ndarray) -> np.ndarray:
    return np.array([np.argwhere(mask).mean(axis=0)[::-1] for mask in drawn(frames)])  # (x, y)


def test_frames_are_rgb_on_the_background():
    frames = render_frames({"frames": 3, "size": 32, "background": "blue", "objects": []})
    assert frames.shape == (3, 32, 32, 3) and frames.dtype == np.uint8
    assert (frames == COLORS["blue"]).all()


@pytest.mark.parametrize("velocity", [[3, 0], [-3, 0], [0, 3], [0, -3], [2, 2]])
def test_objects_move_by_their_velocity(velocity):
    positions = centroids(render_frames(scene(start=[28, 28], velocity=velocity)))
    np.testing.assert_allclose(positions[-1] - positions[0], np.array(velocity) * 7, atol=0.5)


def test_static_scene_repeats_one_frame():
    frames = render_frames(scene(start=[20, 30]))
    assert drawn(frames[0]).any()
    assert (frames == frames[0]).all()


def test_objects_appear_and_disappear_on_their_frames():
    visible = drawn(render_frames(scene(appear=2, disappear=5))).any(axis=(1, 2))
    assert visible.tolist() == [False, False, True, True, True, False, False, False]


@pytest.mark.parametrize("shape", ["square", "circle", "triangle"])
def test_growth_changes_the_area(shape):
    growing = drawn(render_frames(scene(shape=shape, size=6, growth=4))).sum(axis=(1, 2))
    shrinking = drawn(render_frames(scene(shape=shape, size=30, growth=-4))).sum(axis=(1, 2))
    assert (np.diff(growing) > 0).all()
    assert (np.diff(shrinking) < 0).all()


def test_an_object_shrunk_to_nothing_is_not_drawn():
    visible = drawn(render_frames(scene(size=8, growth=-4))).any(axis=(1, 2))
    assert visible.tolist() == [True, True] + [False] * 6


def test_colour_changes_take_effect_on_their_frame():
    frames = render_frames(scene(start=[28, 28], color="red", color_changes=[{"frame": 5, "color": "green"}, {"frame": 3, "color": [10, 20, 250]}]))
    centre = frames[:, 28, 28].tolist()
    assert centre == [list(COLORS["red"])] * 3 + [[10, 20, 250]] * 2 + [list(COLORS["green"])] * 3


def test_later_objects_are_drawn_on_top():
    spec = scene(start=[28, 28], size=20)
    spec["objects"].append({"shape": "circle", "color": "yellow", "start": [28, 28], "size": 8})
    assert render_frames(spec)[0, 28, 28].tolist() == list(COLORS["yellow"])


def test_decord_reads_the_mp4_back(tmp_path):
    spec = scene(start=[10, 28], velocity=[5, 0], growth=1, color_changes=[{"frame": 4, "color": "blue"}])
    path = render_clip(spec, tmp_path / "clip.mp4")
    reader = decord.VideoReader(str(path))
    assert len(reader) == 8
    assert reader.get_avg_fps() == pytest.approx(4)
    decoded = reader.get_batch(list(range(8))).asnumpy().astype(int)
    assert np.abs(decoded - render_frames(spec)).mean() < 3  # lossy codec, same picture


@pytest.mark.parametrize("frames", [1, 2, 5, 16])
def test_every_frame_survives_encoding(frames):
    assert len(decord.VideoReader(str(clip_path(scene(velocity=[1, 1]) | {"frames": frames})))) == frames


def test_equivalent_specs_share_a_hash():
    spec = scene(start=[20, 30], velocity=[1, 0])
    assert spec_hash(spec) == spec_hash(normalize_spec(spec))
    assert spec_hash(spec) == spec_hash(scene(start=[20.0, 30.0], velocity=[1, 0], growth=0, disappear=None, color_changes=None))
    assert spec_hash(spec) == spec_hash({"objects": spec["objects"]})  # the clip-level defaults
    assert spec_hash(spec) != spec_hash(scene(start=[20, 30], velocity=[-1, 0]))


@pytest.mark.parametrize(
    "spec",
    [
        {"objects": [{"shape": "hexagon"}]},
        {"objects": [{"colour": "red"}]},  # a typo must not silently fall back to the default
        {"objects": [{"color": "mauve"}]},
        {"objects": [{"color": [300, 0, 0]}]},
        {"objects": [{"color_changes": [{"frame": 2}]}]},
        {"size": 55},  # yuv420p needs even sides
        {"frames": 0},
        {"speed": 3},
    ],
)
def test_invalid_specs_are_rejected(spec):
    with pytest.raises(ValueError):
        normalize_spec(spec)


def test_clip_path_caches_under_hf_home(tmp_path, monkeypatch):
    spec = scene(velocity=[2, 0])
    path = clip_path(spec)
    assert path.parent == tmp_path / "hf_home" / "lmms_eval_flow" / "clips"
    assert path.name == f"{spec_hash(spec)}.mp4"
    monkeypatch.setattr(clips, "render_clip", lambda *args: pytest.fail("a cached clip was rendered again"))
    assert clip_path(spec) == path
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary files left behind


def test_a_failed_render_leaves_no_file(monkeypatch):
    def broken_render(spec, path):
        Path(path).write_bytes(b"half an mp4")
        raise RuntimeError("encoder died")

    monkeypatch.setattr(clips, "render_clip", broken_render)
    with pytest.raises(RuntimeError):
        clip_path(scene())
    assert list(clips.clips_dir().iterdir()) == []


def test_concurrent_processes_get_one_complete_clip():
    spec = scene(velocity=[3, 1]) | {"frames": 12}
    with ProcessPoolExecutor(max_workers=4, mp_context=get_context("spawn")) as pool:
        paths = set(pool.map(clip_path, [spec] * 8))
    [path] = paths
    assert len(decord.VideoReader(str(path))) == 12
    assert [p.name for p in path.parent.iterdir()] == [path.name]
