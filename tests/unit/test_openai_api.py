"""The OpenAI-compatible client (reconciler/evaluator/openai_api.py) against the scripted model
server on loopback: answers, retries with backoff, timeouts, refused connections."""

from __future__ import annotations

import asyncio
import random
import socket
from typing import Any

import httpx
import pytest

from reconciler.demo.scripted_model import ScriptedModel
from reconciler.evaluator.openai_api import CHAT, COMPLETIONS, Answer, Endpoint, _delay, complete, path_for, prompt_text

CHAT_BODY = {"model": "chat-assistant", "messages": [{"role": "system", "content": "Be brief."},
                                                      {"role": "user", "content": "Capital of France?"}],
             "stream": True, "stream_options": {"include_usage": True}}
FAST = {"timeout": 5.0, "backoff_s": 0.01}


def call(url: str, body: dict[str, Any], *, model: str | None = None, retries: int = 2, **options: Any) -> Answer:
    async def run() -> Answer:
        async with httpx.AsyncClient() as client:
            return await complete(client, Endpoint(url, model=model), path_for(body), body,
                                  retries=retries, **(FAST | options))
    return asyncio.run(run())


@pytest.fixture
def model() -> Any:
    with ScriptedModel.answering({"Capital of France?": "Paris is the capital of France."}) as server:
        yield server


def test_a_chat_answer_with_its_usage(model: ScriptedModel) -> None:
    answer = call(model.url, CHAT_BODY)
    assert answer.ok and answer.text == "Paris is the capital of France."
    assert (answer.prompt_tokens, answer.completion_tokens) == (3, 6)
    assert answer.latency_s > 0


def test_a_completion_answer(model: ScriptedModel) -> None:
    answer = call(model.url, {"model": "m", "prompt": "Capital of France?", "max_tokens": 20})
    assert answer.text == "Paris is the capital of France."
    assert model.requests[0]["prompt"] == "Capital of France?"


def test_the_body_is_sent_unstreamed_with_the_endpoints_model(model: ScriptedModel) -> None:
    call(model.url, CHAT_BODY, model="served-name")
    sent = model.requests[0]
    assert sent["stream"] is False and "stream_options" not in sent
    assert sent["model"] == "served-name"
    assert sent["messages"] == CHAT_BODY["messages"]


def test_503_and_429_are_retried_until_an_answer(model: ScriptedModel) -> None:
    model.fail_next(503)
    model.fail_next(429, retry_after=0)
    answer = call(model.url, CHAT_BODY, retries=2)
    assert answer.ok and answer.text.startswith("Paris")
    assert len(model.requests) == 3


def test_retries_run_out_into_an_error_not_an_exception(model: ScriptedModel) -> None:
    model.fail_next(503, times=5)
    answer = call(model.url, CHAT_BODY, retries=2)
    assert not answer.ok and answer.text == ""
    assert answer.error == f"HTTP 503 from {model.url}{CHAT} (after 3 attempts)"
    assert len(model.requests) == 3


def test_a_client_error_is_not_retried(model: ScriptedModel) -> None:
    model.fail_next(400)
    answer = call(model.url, CHAT_BODY, retries=2)
    assert answer.error == f"HTTP 400 from {model.url}{CHAT}"
    assert len(model.requests) == 1


def test_a_slow_model_times_out_once_and_is_not_asked_again(model: ScriptedModel) -> None:
    model.delay_s = 30
    answer = call(model.url, CHAT_BODY, retries=2, timeout=0.3)
    assert answer.error is not None and answer.error.startswith("timeout after 0.3s")
    assert len(model.requests) == 1


def test_a_refused_connection_is_retried_then_reported() -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    answer = call(f"http://127.0.0.1:{port}", CHAT_BODY, retries=1)
    assert answer.error == f"ConnectError calling http://127.0.0.1:{port}{CHAT} (after 2 attempts)"


class OffShape(ScriptedModel):
    """Answers 200 with JSON that is not a chat completion."""

    def _reply(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        return 200, {}, {"result": "Paris"}


def test_an_answer_that_is_not_the_apis_shape_is_an_error() -> None:
    with OffShape(lambda body: "x") as server:
        answer = call(server.url, CHAT_BODY, retries=2)
    assert answer.error == f"not an OpenAI-compatible answer from {server.url}{CHAT} (KeyError)"


def test_backoff_has_full_jitter_and_honours_retry_after() -> None:
    rng = random.Random(3)
    delays = [_delay(3, 0.5, rng, None) for _ in range(200)]
    assert 0 <= min(delays) and max(delays) <= 2.0 and max(delays) > 1.0  # uniform in [0, 0.5 * 2**2]
    assert _delay(1, 0.5, rng, 4.0) == 4.0


def test_the_users_words_in_a_body() -> None:
    assert prompt_text(CHAT_BODY) == "Capital of France?"
    assert prompt_text({"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"},
                                                                   {"type": "image_url", "image_url": {}}]}]}) == "Hi"
    assert prompt_text({"prompt": ["first", "second"]}) == "first"
    assert (path_for(CHAT_BODY), path_for({"prompt": "x"})) == (CHAT, COMPLETIONS)


def test_an_error_never_shows_credentials_in_the_url(model: ScriptedModel) -> None:
    """Errors reach stderr and CI logs (`reconciler eval` prints the first one)."""
    model.fail_next(400)
    with_password = model.url.replace("http://", "http://evaluator:hunter2@")
    answer = call(with_password, CHAT_BODY, retries=0)
    assert answer.error == f"HTTP 400 from {model.url.replace('http://', 'http://***@')}{CHAT}"
    assert "hunter2" not in answer.error
