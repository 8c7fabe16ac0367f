"""An optional LLM judge for open-ended answers, on an OpenAI-compatible endpoint, asked through
lmms-eval's own judge client (``lmms_eval.llm_judge``: its retries and token-usage accounting).

Open-ended tasks score offline by rules (``answers.exact_match`` and ``answers.token_f1``).
A judge is used only when the user names one, with both variables:

- ``LMMS_EVAL_FLOW_JUDGE_URL``: the API's base URL, e.g. ``http://localhost:8000/v1``
  (``/chat/completions`` is appended), a vLLM or any OpenAI-compatible server;
- ``LMMS_EVAL_FLOW_JUDGE_MODEL``: the model name to ask for;
- ``LMMS_EVAL_FLOW_JUDGE_API_KEY`` (optional): sent as a bearer token (vLLM's ``EMPTY`` when unset).

The judge sees the question, the reference answer and the model's answer, and replies with
JSON ``{"correct": "yes"|"no", "score": 0-5}`` (the protocol of Video-ChatGPT's evaluation,
which upstream lmms-eval's ActivityNet-QA also follows). A verdict that cannot be read is an
error, not a guess.
"""

from __future__ import annotations

import json
import os
import re
from functools import cache

URL_VARIABLE = "LMMS_EVAL_FLOW_JUDGE_URL"
MODEL_VARIABLE = "LMMS_EVAL_FLOW_JUDGE_MODEL"
KEY_VARIABLE = "LMMS_EVAL_FLOW_JUDGE_API_KEY"

_INSTRUCTIONS = (
    "You check answers to questions about videos. Compare the predicted answer with the correct answer and decide "
    "whether they mean the same thing; synonyms and paraphrases count as the same. Reply with one JSON object and "
    'nothing else: {"correct": "yes" or "no", "score": an integer from 0 (no match) to 5 (same meaning)}.'
)


def configured_model() -> str | None:
    """The judge model the user named, or None when no judge is configured."""
    url, model = os.environ.get(URL_VARIABLE), os.environ.get(MODEL_VARIABLE)
    if bool(url) != bool(model):
        missing = MODEL_VARIABLE if url else URL_VARIABLE
        raise ValueError(f"an LLM judge needs both {URL_VARIABLE} and {MODEL_VARIABLE}; {missing} is not set")
    return model or None


def judge(question: str, answer: str, prediction: str) -> tuple[bool, int]:
    """The configured judge's verdict on ``prediction``: (correct, score 0-5)."""
    from lmms_eval.llm_judge import Request

    model = configured_model()
    if model is None:
        raise RuntimeError(f"no LLM judge is configured (set {URL_VARIABLE} and {MODEL_VARIABLE})")
    server = _server(os.environ[URL_VARIABLE], model, os.environ.get(KEY_VARIABLE) or "EMPTY")
    asked = f"Question: {question}\nCorrect answer: {answer}\nPredicted answer: {prediction}"
    return parse_verdict(server.evaluate(Request(messages=[{"role": "user", "content": asked}])).content)


@cache
def _server(url: str, model: str, key: str):
    """lmms-eval's ``openai`` judge provider on the endpoint our variables name.

    The provider reads its endpoint and key from ``OPENAI_API_URL`` and ``OPENAI_API_KEY`` when
    built (and fails without a key); those also configure upstream's judges and lmms-eval's
    ``openai`` model, so it is built from its base class and given a client on this endpoint
    instead. A server without keys gets vLLM's placeholder ``EMPTY``: the client needs one.
    Retries are the provider's (3, 2 s apart).
    """
    from lmms_eval.llm_judge import ServerConfig, ServerInterface
    from lmms_eval.llm_judge.providers import OpenAIProvider
    from openai import OpenAI

    config = ServerConfig(model_name=model, temperature=0, max_tokens=64, timeout=60, num_retries=3, retry_delay=2,
                          system_prompt=_INSTRUCTIONS)
    server = OpenAIProvider.__new__(OpenAIProvider)
    ServerInterface.__init__(server, config)
    server.api_key, server.base_url, server.use_client = key, url, True
    server.client = OpenAI(api_key=key, base_url=url, timeout=config.timeout, max_retries=0)
    return server


def parse_verdict(content: str) -> tuple[bool, int]:
    """(correct, score) from the judge's JSON reply; a reply in any other form is an error."""
    found = re.search(r"\{.*?\}", content, re.DOTALL)
    try:
        verdict = json.loads(found.group(0)) if found else None
        correct, score = str(verdict["correct"]).strip().lower(), int(verdict["score"])
    except (TypeError, KeyError, ValueError) as error:
        raise ValueError(f"the LLM judge's reply is not the JSON verdict asked for: {content!r}") from error
    if correct not in ("yes", "no") or not 0 <= score <= 5:
        raise ValueError(f"the LLM judge's verdict is out of range: {content!r}")
    return correct == "yes", score
