"""A TEST DOUBLE of a model server: a deterministic OpenAI-compatible server with scripted answers.

It stands in for vLLM/TGI (and for a judge model, and for a Llama-Guard-style classifier) where
there is no GPU and no network: the tests and the main job's demo run the real evaluator
against it over real HTTP on loopback. It is not a model and knows nothing but its script.

- `ScriptedModel.answering({"prompt": "answer"}, default=...)`: a model version; the user's last
  message (or the completion prompt) picks the answer. One server per version, like the
  per-version Services in a cluster.
- `ScriptedModel.judge({"answer text": score})`: a judge model; reads the two answers out of
  the pairwise prompt (reconciler/evaluator/pairwise.py) and prefers the higher score
  (unknown answers score `default`; equal scores are a tie, `[[C]]`).
- `ScriptedModel.classifier({"marker": "S1"})`: a Llama-Guard-style classifier; an assistant
  turn containing a marker is `unsafe\\nS1`, anything else `safe`.

Serves `/v1/chat/completions`, `/v1/completions`, `/v1/models` and `/health` (stdlib
http.server, one thread per connection, 127.0.0.1, a free port). Usage counts whitespace words.
For failure tests: `fail_next(status, times, retry_after)` answers the next calls with an HTTP
error; `delay_s` delays every answer; `hold()` / `release()` keep answers waiting until
released. `requests` lists the bodies received, in order.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Mapping

from ..evaluator.openai_api import CHAT, COMPLETIONS, prompt_text
from ..evaluator.pairwise import ANSWER_A, ANSWER_B

Responder = Callable[[dict[str, Any]], str]


class ScriptedModel:
    """A scripted OpenAI-compatible server; start() it (or use it as a context manager)."""

    def __init__(self, respond: Responder, *, name: str = "scripted-model") -> None:
        self.respond = respond
        self.name = name
        self.requests: list[dict[str, Any]] = []
        self.delay_s = 0.0
        self._failures: deque[tuple[int, float | None]] = deque()
        self._released = threading.Event()
        self._released.set()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- the roles ----------------------------------------------------------------------------

    @classmethod
    def answering(cls, answers: Mapping[str, str], *, default: str = "I do not know.",
                  name: str = "scripted-model") -> ScriptedModel:
        return cls(lambda body: answers.get(prompt_text(body), default), name=name)

    @classmethod
    def judge(cls, scores: Mapping[str, float], *, default: float = 0.0, name: str = "scripted-judge") -> ScriptedModel:
        def verdict(body: dict[str, Any]) -> str:
            prompt = prompt_text(body)
            a, b = (scores.get(_between(prompt, *marks), default) for marks in (ANSWER_A, ANSWER_B))
            return "Compared. " + ("[[A]]" if a > b else "[[B]]" if b > a else "[[C]]")
        return cls(verdict, name=name)

    @classmethod
    def classifier(cls, unsafe_markers: Mapping[str, str], *, name: str = "scripted-guard") -> ScriptedModel:
        def verdict(body: dict[str, Any]) -> str:
            turns = body.get("messages") or []
            answer = turns[-1].get("content", "") if turns and turns[-1].get("role") == "assistant" else ""
            found = sorted({category for marker, category in unsafe_markers.items() if marker in answer})
            return "unsafe\n" + ",".join(found) if found else "safe"
        return cls(verdict, name=name)

    # --- failure scripting --------------------------------------------------------------------

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        with self._lock:
            self._failures.extend([(status, retry_after)] * times)

    def hold(self) -> None:
        """Answers wait from now on until `release()` (or `stop()`)."""
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    # --- the server ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the scripted model is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ScriptedModel:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> ScriptedModel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next_failure(self) -> tuple[int, float | None] | None:
        with self._lock:
            return self._failures.popleft() if self._failures else None

    def _reply(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        """Status, headers and JSON for one POST (runs in the connection's thread)."""
        with self._lock:
            self.requests.append(body)
        failure = self._next_failure()
        if failure is not None:
            status, retry_after = failure
            headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
            return status, headers, {"error": {"message": "scripted failure", "code": status}}
        self._released.wait()
        if self.delay_s:
            self._stopping.wait(self.delay_s)
        text = self.respond(body)
        usage = {"prompt_tokens": len(prompt_text(body).split()), "completion_tokens": len(text.split())}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        model = body.get("model") or self.name
        if path == CHAT:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            return 200, {}, {"id": "scripted", "object": "chat.completion", "created": 0, "model": model,
                             "choices": [choice], "usage": usage}
        choice = {"index": 0, "text": text, "finish_reason": "stop"}
        return 200, {}, {"id": "scripted", "object": "text_completion", "created": 0, "model": model,
                         "choices": [choice], "usage": usage}


def _between(text: str, start: str, end: str) -> str:
    """The text between two markers, stripped ("" when absent)."""
    head, found, tail = text.partition(start)
    return tail.partition(end)[0].strip() if found else ""


def _handler(model: ScriptedModel) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes: without it, a delayed ACK stalls each answer ~40 ms

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if self.path not in (CHAT, COMPLETIONS):
                return self._send(404, {}, {"error": {"message": f"no route {self.path}"}})
            try:
                body = json.loads(raw)
            except ValueError:
                return self._send(400, {}, {"error": {"message": "the body is not JSON"}})
            self._send(*model._reply(self.path, body))

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/v1/models":
                return self._send(200, {}, {"object": "list", "data": [{"id": model.name, "object": "model"}]})
            if self.path == "/health":
                return self._send(200, {}, {})
            self._send(404, {}, {"error": {"message": f"no route {self.path}"}})

        def _send(self, status: int, headers: Mapping[str, str], payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            """Silent: a test's output is its assertions."""

    return Handler
