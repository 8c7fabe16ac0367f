"""README's "The engine as a library" snippet, run as written on the tiny checkpoint: a regime on a
model loaded by hand, per-sample and per-layer edges read from the session."""

import contextlib
import io
import re
from pathlib import Path

from lmms_eval_flow.engine.attention import FLOW_ATTENTION
from lmms_eval_flow.engine.layout import causal_edges
from lmms_eval_flow.toy.clips import clip_path

README = Path(__file__).resolve().parents[2] / "README.md"


def snippet() -> str:
    section = README.read_text().split("## The engine as a library", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_the_readme_snippet_puts_a_regime_on_a_model_loaded_by_hand(tiny_model_dir):
    clip = clip_path({"frames": 8, "size": 56, "fps": 4, "objects": [
        {"shape": "square", "color": "red", "start": [10, 28], "velocity": [4, 0], "size": 12}]})
    code = snippet()
    assert code.count('"Qwen/Qwen2.5-VL-7B-Instruct", "clip.mp4"') == 1
    namespace, printed = {}, io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(code.replace('"Qwen/Qwen2.5-VL-7B-Instruct", "clip.mp4"', f'"{tiny_model_dir}", "{clip}"'), namespace)
    plan, model = namespace["plan"], namespace["model"]
    depth = model.config.text_config.num_hidden_layers
    assert plan.regime.name == "effective" and len(plan.edges_per_layer) == depth
    assert sum(plan.edges_per_layer) == plan.edges < plan.full_edges == depth * causal_edges(plan.layout.length)
    assert plan.layout.length == namespace["inputs"]["input_ids"].shape[1] and plan.layout.num_frames == 4
    assert str(plan.edges) in printed.getvalue() and str(plan.edges_per_layer) in printed.getvalue()
    assert model.config.text_config._attn_implementation != FLOW_ATTENTION  # given back after the with block
