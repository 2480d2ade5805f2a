"""The one client Sluice uses to talk to models: the OpenAI-compatible API that vLLM and TGI serve.

`complete` never raises for a model's failure: a timeout, a refused connection, an HTTP error or
an answer that is not the API's shape comes back as an `Answer` whose `error` says what happened
(no prompt or answer text in it: errors may be logged, sampled prompts may not). A caller
counts errors instead of handling exceptions, so one sick version cannot stop an evaluation.

Retries: 429, any 5xx and connection errors (refused, reset, connect timeout) are retried up to
`retries` times with exponential backoff and full jitter (a random delay in [0, base * 2**n],
capped), honouring a `Retry-After` header when the server sends one. A read timeout is NOT
retried: the model was reached and was slow, and asking again would double the load on a version
that is already struggling. The latency reported is that of the successful attempt alone.

A mirrored body may ask for `stream: true`; the evaluator needs the whole answer, so each call
sends `stream: false`.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import httpx

from ..core.urls import without_credentials

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
PATHS = (CHAT, COMPLETIONS)

RETRIED_STATUSES = frozenset({429}) | frozenset(range(500, 600))
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 10.0
#: How long a Retry-After may make us wait before we give up on that attempt's advice (seconds).
RETRY_AFTER_CAP_S = 30.0


@dataclass(frozen=True)
class Endpoint:
    """Where a model answers. `model` overrides the body's `model` field when set (vLLM's
    --served-model-name); `headers` carry credentials, never logged."""

    url: str
    model: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def address(self, path: str) -> str:
        return self.url.rstrip("/") + path


def bearer_from_env(name: str, environ: Mapping[str, str]) -> dict[str, str] | None:
    """The `Authorization: Bearer <key>` header whose key is the environment variable `name`; None
    when it is unset or empty. Keys come from the environment (a Secret, a shell), never from argv
    or a file that is committed, and are never logged or recorded."""
    key = environ.get(name)
    return {"Authorization": f"Bearer {key}"} if key else None


@dataclass(frozen=True)
class Answer:
    """One model call's result. `error` is None on success; then `text` is the answer."""

    text: str
    latency_s: float
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def path_for(body: Mapping[str, Any]) -> str:
    """The API path a request body belongs to: chat when it has `messages`, else completions."""
    return CHAT if "messages" in body else COMPLETIONS


def prompt_text(body: Mapping[str, Any]) -> str:
    """The user's words in a request body: the last user message of a chat, or the prompt.

    Multi-part chat content ([{"type": "text", "text": ...}, {"type": "image_url", ...}]) keeps
    its text parts. Used to build classifier and judge prompts; never logged.
    """
    if "messages" in body:
        users = [m for m in body.get("messages") or [] if isinstance(m, Mapping) and m.get("role") == "user"]
        return _content_text(users[-1].get("content")) if users else ""
    prompt = body.get("prompt", "")
    if isinstance(prompt, list):  # a batch of prompts: the evaluator looks at the first
        prompt = prompt[0] if prompt else ""
    return prompt if isinstance(prompt, str) else ""


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, Mapping) and p.get("type") == "text")
    return ""


def request_body(endpoint: Endpoint, body: Mapping[str, Any]) -> dict[str, Any]:
    """The body as sent: the endpoint's model name when it has one, and never streamed."""
    sent = {k: v for k, v in body.items() if k != "stream_options"}
    sent["stream"] = False
    if endpoint.model is not None:
        sent["model"] = endpoint.model
    return sent


async def complete(client: httpx.AsyncClient, endpoint: Endpoint, path: str, body: Mapping[str, Any], *,
                   timeout: float, retries: int, backoff_s: float = BACKOFF_BASE_S,
                   rng: random.Random | None = None) -> Answer:
    """POST `body` to `endpoint` + `path` and return the answer, or an `Answer` with `error` set."""
    rng = rng or random.Random()
    sent = request_body(endpoint, body)
    address = endpoint.address(path)
    shown = without_credentials(address)  # errors reach logs and CI output: never a key in the URL
    error, retry_after = "not attempted", None
    for attempt in range(retries + 1):
        if attempt:
            await asyncio.sleep(_delay(attempt, backoff_s, rng, retry_after))
        retry_after = None
        started = time.monotonic()
        try:
            response = await client.post(address, json=sent, headers=dict(endpoint.headers), timeout=timeout)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as exc:
            error = f"{type(exc).__name__} calling {shown}"
            continue
        except httpx.TimeoutException:
            return Answer("", time.monotonic() - started, error=f"timeout after {timeout:g}s calling {shown}")
        except httpx.HTTPError as exc:
            return Answer("", time.monotonic() - started, error=f"{type(exc).__name__} calling {shown}")
        latency = time.monotonic() - started
        if response.status_code in RETRIED_STATUSES:
            error = f"HTTP {response.status_code} from {shown}"
            retry_after = _retry_after(response)
            continue
        if response.status_code != 200:
            return Answer("", latency, error=f"HTTP {response.status_code} from {shown}")
        return _parsed(response, path, latency, shown)
    return Answer("", 0.0, error=f"{error} (after {retries + 1} attempts)")


def _delay(attempt: int, base: float, rng: random.Random, retry_after: float | None) -> float:
    """Full jitter: uniform in [0, base * 2**(attempt-1)], capped; at least Retry-After if given."""
    jittered = rng.uniform(0, min(BACKOFF_CAP_S, base * 2 ** (attempt - 1)))
    return max(jittered, retry_after) if retry_after is not None else jittered


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (the delta form; an HTTP date is ignored), capped."""
    value = response.headers.get("retry-after", "")
    try:
        return min(max(float(value), 0.0), RETRY_AFTER_CAP_S)
    except ValueError:
        return None


def _parsed(response: httpx.Response, path: str, latency: float, address: str) -> Answer:
    try:
        data = response.json()
        choice = data["choices"][0]
        text = choice["message"]["content"] if path == CHAT else choice["text"]
        if text is None:  # a chat answer that is only a tool call has no content
            text = ""
        if not isinstance(text, str):
            raise TypeError("answer text is not a string")
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return Answer("", latency, error=f"not an OpenAI-compatible answer from {address} ({type(exc).__name__})")
    usage = data.get("usage") or {}
    return Answer(text, latency, _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens")))


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
