"""Shared test set-up: offline hubs, a private HF_HOME, the tiny model, and an lmms-eval CLI runner."""

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

# huggingface_hub and datasets read these once, at import: set them before anything imports them.
os.environ.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="lmms_eval_flow_tests_hf_")
# Tiny models gain nothing from intra-op threads, and on a shared, busy CPU two threads spinning at
# each op's barrier made the suite ~10x slower (torch reads this at import; subprocesses inherit it).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from family_cases import QUESTION, make_inputs  # noqa: E402
from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration  # noqa: E402

from lmms_eval_flow.harness import reply, runner  # noqa: E402
from lmms_eval_flow.engine import attention  # noqa: E402
from lmms_eval_flow.engine.attention import BatchPlan  # noqa: E402
from lmms_eval_flow.engine.layout import causal_edges  # noqa: E402

TASKS_DIR = Path(__file__).resolve().parents[1] / "tasks"
# Frames of 56x56 pixels: each temporal patch (2 frames) becomes 2x2 = 4 tokens.
SMALL_VIDEO_ARGS = "device=cpu,device_map=cpu,max_pixels=3136,min_pixels=3136,max_num_frames=8"


@pytest.fixture(autouse=True)
def forget_loaded_flow_models(monkeypatch):
    """A flow model loaded in a test marks the process as running one (reply.note_flow_model_loaded);
    other tests score plain replies, so each test leaves that mark as it found it."""
    for name, value in list(vars(reply.loaded_flow_model).items()):
        monkeypatch.setattr(reply.loaded_flow_model, name, value)


@pytest.fixture(autouse=True, scope="module")
def forget_flow_models_loaded_by_module_fixtures():
    """The same for a module's fixtures (test_clip_bounds' models, say): set up before the first
    test's own snapshot, so the mark is restored when the module is done, not after each test."""
    saved = dict(vars(reply.loaded_flow_model))
    yield
    vars(reply.loaded_flow_model).clear()
    vars(reply.loaded_flow_model).update(saved)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from lmms_eval_flow.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("models") / "qwen2_5_vl")


@pytest.fixture(scope="session")
def family_model_dir(tmp_path_factory):
    """``family_model_dir(family)``: a tiny checkpoint of any make-tiny-model family, built once."""
    from lmms_eval_flow.tiny import make_tiny_model

    built = {}

    def model_dir(family: str) -> Path:
        if family not in built:
            built[family] = make_tiny_model(tmp_path_factory.mktemp("models") / family, family=family)
        return built[family]

    return model_dir


def run_lmms_eval(out_dir: Path, model: str, model_args: str, tasks: str = "flow_synthetic", *extra: str,
                  processes: int = 1) -> tuple[dict, dict[str, list[dict]]]:
    """The real lmms-eval CLI on our tasks; results JSON and logged samples per task."""
    return runner.run_lmms_eval(model, model_args, tasks, TASKS_DIR, out_dir, *extra, processes=processes)


@dataclass
class AppliedMask:
    """One layer's call of the attention hook: the mask it handed to SDPA and the masks it held."""

    layer: int
    q_len: int
    mask: object  # a bool tensor, or None for SDPA's own causal path
    empty: object  # rows left with no key (given their own position to avoid NaN, then zeroed), or None
    masks_held: int

    @property
    def allowed_pairs(self) -> int:
        if self.mask is None:  # SDPA's causal path over the positions present
            return causal_edges(self.q_len)
        return int(self.mask.sum()) - (0 if self.empty is None else int(self.empty.sum()))


@pytest.fixture
def applied_masks(monkeypatch) -> list[AppliedMask]:
    """Every call of the attention hook's ``BatchPlan.attention_mask`` in the test, in order."""
    calls: list[AppliedMask] = []
    original = BatchPlan.attention_mask

    def spy(self, layer, q_len, kv_len, stock):
        mask, empty = original(self, layer, q_len, kv_len, stock)
        calls.append(AppliedMask(layer, q_len, mask, empty, len(self._masks)))
        return mask, empty

    monkeypatch.setattr(BatchPlan, "attention_mask", spy)
    return calls


def layers_calling(monkeypatch, path: str) -> list[int]:
    """The layer of every call of ``attention.<path>`` (a backend's path, as the attention hook calls
    it) in the test, in order."""
    layers: list[int] = []
    original = getattr(attention, path)

    def spy(module, *args, **kwargs):
        layers.append(module.layer_idx)
        return original(module, *args, **kwargs)

    monkeypatch.setattr(attention, path, spy)
    return layers


@pytest.fixture
def decomposed_layers(monkeypatch) -> list[int]:
    """The layers that ran group-decomposed (``blocks.decomposed_attention``): what shows that a
    ``blocks`` run decomposed."""
    return layers_calling(monkeypatch, "decomposed_attention")


@pytest.fixture
def flex_layers(monkeypatch) -> list[int]:
    """The layers that ran the flex path (``flex_attention_forward``)."""
    return layers_calling(monkeypatch, "flex_attention_forward")


# The tiny Qwen2.5-VL, its processor (as lmms-eval loads it) and one clip's inputs, for the tests
# that drive the model directly (tests/engine).
@pytest.fixture(scope="module")
def processor(tiny_model_dir):
    return AutoProcessor.from_pretrained(tiny_model_dir, max_pixels=3136, min_pixels=3136)  # as lmms-eval loads it


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def inputs(processor):
    return make_inputs(processor, [QUESTION])


# The longest test files, run first: under ``-n auto --dist loadfile --no-loadscope-reorder`` a worker
# takes whole files in collection order, and one of these collected last would run alone after the
# others finish (xdist's default reorder puts the files with the most tests first: these have one or few).
LONGEST_FILES = ("tests/toy/test_demo.py", "tests/toy/test_validate.py")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        path = Path(str(item.fspath)).relative_to(Path(__file__).resolve().parents[1]).as_posix()
        return LONGEST_FILES.index(path) if path in LONGEST_FILES else len(LONGEST_FILES)

    items.sort(key=rank)  # stable: the rest keep their order
