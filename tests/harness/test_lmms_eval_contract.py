"""What lmms-eval-flow relies on inside lmms-eval where lmms-eval offers no public hook: one test
per reach-in, each failing when an lmms-eval upgrade changes what that reach-in assumes.

The evaluator's tests run lmms-eval's own ``simple_evaluate`` in this process, on two probe
tasks written here and a model that answers "A"; no seeds are set, so later tests draw as before.
"""

import inspect
import json

import pytest
from lmms_eval import evaluator
from lmms_eval.api.model import lmms
from lmms_eval.llm_judge import ServerConfig
from lmms_eval.llm_judge.providers import OpenAIProvider
from lmms_eval.models.chat import huggingface
from lmms_eval.models.simple import qwen2_5_vl as lmms_eval_qwen2_5_vl
from lmms_eval.tasks import TaskManager
from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText

from lmms_eval_flow.harness.ledger import asked_by_response_cache, scoring_task
from lmms_eval_flow.harness.lmms_eval_compat import loading_as_one_process, loading_with_lm_head
from lmms_eval_flow.harness.many_runs import index_once
from lmms_eval_flow.scoring import judge

PROBE_TASKS = ("contract_probe_a", "contract_probe_b")

PROBE_TASK_YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: docs.jsonl
test_split: test
output_type: generate_until
doc_to_visual: !function probe.doc_to_visual
doc_to_text: !function probe.doc_to_text
doc_to_target: answer
doc_to_messages: !function probe.doc_to_messages
generation_kwargs:
  max_new_tokens: 4
  temperature: 0
  do_sample: false
process_results: !function probe.process_results
metric_list:
  - metric: scored_as
    aggregation: !function probe.tasks_named
    higher_is_better: true
metadata:
  version: 0.1
"""

# Each doc's score is the task lmms-eval-flow's scorer finds it is scoring (None: none).
PROBE_UTILS = '''from lmms_eval_flow.harness.ledger import scoring_task


def doc_to_visual(doc):
    return []


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return doc["question"]


def doc_to_messages(doc, lmms_eval_specific_kwargs=None):
    return [{"role": "user", "content": [{"type": "text", "text": doc["question"]}]}]


def process_results(doc, results):
    try:
        return {"scored_as": scoring_task()}
    except RuntimeError:  # scored outside lmms-eval's scoring phase, as far as lmms-eval-flow can tell
        return {"scored_as": None}


def tasks_named(items):
    return sorted(set(items))
'''


class _AnswersA(lmms):
    """A chat model that answers "A" and notes, for each call, whether lmms-eval's response cache asked."""

    is_simple = False

    def __init__(self):
        super().__init__()
        self.asked: list[bool] = []

    def generate_until(self, requests):
        self.asked.append(asked_by_response_cache())
        return ["A"] * len(requests)

    def loglikelihood(self, requests):
        raise NotImplementedError

    def generate_until_multi_round(self, requests):
        raise NotImplementedError


@pytest.fixture(scope="module")
def probe_tasks(tmp_path_factory) -> TaskManager:
    folder = tmp_path_factory.mktemp("contract_tasks")
    (folder / "docs.jsonl").write_text("".join(json.dumps({"question": f"q{i}", "answer": "A"}) + "\n" for i in range(3)))
    (folder / "probe.py").write_text(PROBE_UTILS)
    for name in PROBE_TASKS:
        (folder / f"{name}.yaml").write_text(PROBE_TASK_YAML.format(name=name))
    return TaskManager("WARNING", include_path=str(folder), include_defaults=False)


def evaluate(probe_tasks, use_cache=None) -> tuple[_AnswersA, dict]:
    """lmms-eval's evaluation of the probe tasks, as its CLI runs it (``--use_cache`` when given)."""
    model = _AnswersA()
    results = evaluator.simple_evaluate(model=model, tasks=list(PROBE_TASKS), task_manager=probe_tasks,
                                        use_cache=use_cache, random_seed=None, numpy_random_seed=None,
                                        torch_random_seed=None, fewshot_random_seed=None)
    return model, results


def test_huggingface_loads_its_fallback_class_through_the_name_AutoModel(tiny_model_dir):
    """Guards ``lmms_eval_compat.loading_with_lm_head``: lmms-eval's generic ``huggingface``
    wrapper still falls back to ``AutoModel`` for a video model on transformers 5.23 (else the
    reach-in is no longer needed), and loads that fallback through its module's name
    ``AutoModel`` (else the reach-in no longer gives it the LM head)."""
    arguments = {"pretrained": str(tiny_model_dir), "device": "cpu", "device_map": "cpu"}
    config_class = type(AutoConfig.from_pretrained(tiny_model_dir))

    assert type(huggingface.Huggingface(**arguments).model) is AutoModel._model_mapping[config_class]
    with loading_with_lm_head():
        loaded = huggingface.Huggingface(**arguments)
    assert type(loaded.model) is AutoModelForImageTextToText._model_mapping[config_class]
    assert huggingface.AutoModel is AutoModel


def test_qwen2_5_vl_loads_where_its_accelerator_says_and_only_single_processes_where_asked(tiny_model_dir):
    """Guards ``lmms_eval_compat.loading_as_one_process``: lmms-eval's Qwen2.5-VL wrapper builds its
    accelerator through its module's name ``Accelerator`` and sends a run of several processes to
    CUDA on its ``num_processes`` (else the reach-in no longer lets a CPU process load, or is no
    longer needed); under the reach-in it loads where its arguments say, and the name is restored."""
    source = inspect.getsource(lmms_eval_qwen2_5_vl.Qwen2_5_VL.__init__)
    assert "accelerator = Accelerator()" in source
    assert 'if accelerator.num_processes > 1:\n            self._device = torch.device(f"cuda:' in source
    real = lmms_eval_qwen2_5_vl.Accelerator
    with loading_as_one_process(lmms_eval_qwen2_5_vl):
        loaded = lmms_eval_qwen2_5_vl.Qwen2_5_VL(pretrained=str(tiny_model_dir), device="cpu", device_map="cpu")
    assert lmms_eval_qwen2_5_vl.Accelerator is real
    assert loaded.model.device.type == "cpu" and (loaded.rank, loaded.world_size) == (0, 1)
    assert loaded.accelerator.num_processes == 1 and loaded.accelerator.process_index == real().process_index


def test_the_qwen_chat_wrappers_sample_frames_through_their_modules_name_process_vision_info():
    """Guards ``lmms_eval_compat.sampling_inside_windows``: lmms-eval's Qwen2.5-VL and Qwen3-VL chat
    wrappers call qwen-vl-utils' ``process_vision_info`` through their module's name for it (else
    the cap at a window's frames is never applied)."""
    import qwen_vl_utils
    from lmms_eval.models.chat import qwen2_5_vl, qwen3_vl

    for module, wrapper in ((qwen2_5_vl, qwen2_5_vl.Qwen2_5_VL), (qwen3_vl, qwen3_vl.Qwen3_VL)):
        assert module.process_vision_info is qwen_vl_utils.process_vision_info
        assert "= process_vision_info(" in inspect.getsource(wrapper.generate_until)


def test_a_task_manager_builds_its_index_through_initialize_tasks_and_a_kept_index_is_a_copy(probe_tasks,
                                                                                            monkeypatch):
    """Guards ``many_runs``: ``TaskManager`` builds its task index by calling ``initialize_tasks``
    with ``include_path`` and ``include_defaults`` (else the kept index is never used, or the call
    fails); under ``index_once`` a second manager of the same folder parses nothing, holds the index
    a fresh one builds, and changing one manager's index leaves the other's as it was."""
    folder = probe_tasks.include_path
    built = []
    initialize_tasks = TaskManager.initialize_tasks

    def counted(manager, include_path=None, include_defaults=True):
        built.append((include_path, include_defaults))
        return initialize_tasks(manager, include_path=include_path, include_defaults=include_defaults)

    monkeypatch.setattr(TaskManager, "initialize_tasks", index_once(counted))
    first, second = (TaskManager("WARNING", include_path=folder, include_defaults=False) for _ in range(2))
    assert built == [(folder, False)]
    assert first._task_index == second._task_index == probe_tasks._task_index
    assert set(PROBE_TASKS) <= set(second.all_tasks)
    second._task_index[PROBE_TASKS[0]]["yaml_path"] = "elsewhere.yaml"
    assert first._task_index[PROBE_TASKS[0]]["yaml_path"] == probe_tasks._task_index[PROBE_TASKS[0]]["yaml_path"]


def test_the_evaluator_generates_through_response_cache_execute(probe_tasks, tmp_path):
    """Guards ``ledger.ResponseCacheCalls`` (``asked_by_response_cache``): with ``--use_cache``
    lmms-eval's evaluator asks the model for its replies from within ``ResponseCache.execute``,
    and without it not; a model is told nothing else about the cache."""
    without_cache, _ = evaluate(probe_tasks)
    with_cache, _ = evaluate(probe_tasks, use_cache=str(tmp_path / "cache"))
    assert without_cache.asked == [False]
    assert with_cache.asked == [True]
    assert asked_by_response_cache() is False


def test_the_evaluator_names_each_task_while_scoring_it(probe_tasks):
    """Guards ``ledger.scoring_task``: lmms-eval's evaluator sets
    ``usage_metrics._CURRENT_TASK_CONTEXT`` to each task's name around its ``process_results``
    calls and clears it after the last task."""
    _, results = evaluate(probe_tasks)
    for name in PROBE_TASKS:
        assert results["results"][name]["scored_as,none"] == [name]
    with pytest.raises(RuntimeError, match="outside lmms-eval's scoring phase"):
        scoring_task()


def test_the_judge_server_has_every_attribute_the_openai_provider_sets_itself(monkeypatch):
    """Guards ``judge._server``: it builds lmms-eval's ``OpenAIProvider`` without the provider's
    ``__init__`` (which reads ``OPENAI_API_URL``/``OPENAI_API_KEY``), from ``ServerInterface.__init__``
    and the four attributes that ``__init__`` sets itself: ``api_key``, ``base_url``, ``client``,
    ``use_client``. A provider that sets more, or others, would leave the judge's server without them."""
    monkeypatch.setenv("OPENAI_API_KEY", "secret")
    monkeypatch.setenv("OPENAI_API_URL", "http://127.0.0.1:9/v1")
    provider = OpenAIProvider(ServerConfig(model_name="judge-7b"))
    ours = judge._server("http://127.0.0.1:9/v1", "judge-7b", "secret")

    assert set(vars(provider)) == set(vars(ours)) == {"config", "api_key", "base_url", "client", "use_client"}
    assert ours.use_client is provider.use_client is True and ours.is_available()
    assert (ours.api_key, str(ours.client.base_url)) == (provider.api_key, str(provider.client.base_url))
