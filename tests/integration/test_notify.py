"""notify against a real HTTP server on 127.0.0.1: webhooks get the JSON payload, Slack gets text
and mrkdwn, every failure (HTTP 500, a redirect, a closed port, a server that never answers)
is a Delivery with ok=False while the other targets still get theirs, and no secret URL path
is ever shown."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from reconciler.adapters import notify as notify_module
from reconciler.adapters.notify import Delivery, notify, redact
from reconciler.core.release import NotificationTarget

SECRET = "/services/T000/B000/XXXXsecretXXXX"
PAYLOAD: dict[str, object] = {
    "model": "chat-assistant", "environment": "prod", "decision": "rollback",
    "reason": "error_rate 0.081 > max 0.05 <!channel> & more",
    "at": datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc), "stage": 2,
}
SUMMARY = "prod: chat-assistant 1.3.0 rolled back to 1.2.0"
TIMEOUT = 0.5


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Recorder:
    port: int
    requests: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, prefix: str) -> list[Received]:
        return [r for r in self.requests if r.path.startswith(prefix)]


def _handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            recorder.requests.append(Received(self.path, dict(self.headers), json.loads(raw)))
            if self.path.startswith("/slow"):
                recorder.release.wait(10)
            status = 500 if self.path.startswith("/fail") else 302 if self.path.startswith("/moved") else 200
            answer = {500: b"internal failure: database is down", 302: b"", 200: b"ok"}[status]
            self.send_response(status)
            if status == 302:
                self.send_header("Location", recorder.url("/elsewhere"))
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the slow handler answers a client that has gone: expected here


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    recorder = Recorder(port=0)
    httpd = _QuietServer(("127.0.0.1", 0), _handler(recorder))
    recorder.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield recorder
    recorder.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def webhook(url: str) -> NotificationTarget:
    return NotificationTarget(kind="webhook", url=url)


def slack(url: str) -> NotificationTarget:
    return NotificationTarget(kind="slack", url=url)


def test_a_webhook_receives_the_payload_as_json(server: Recorder) -> None:
    [delivery] = notify([webhook(server.url("/hook?token=abc"))], SUMMARY, PAYLOAD)
    assert delivery == Delivery(f"http://127.0.0.1:{server.port}/…", True, "HTTP 200 OK: ok")
    [received] = server.requests
    assert received.headers["Content-Type"] == "application/json"
    assert received.body == {**PAYLOAD, "at": "2026-11-22T10:00:00+00:00"}


def test_slack_receives_the_summary_and_the_fields_as_mrkdwn(server: Recorder) -> None:
    [delivery] = notify([slack(server.url(SECRET))], SUMMARY, PAYLOAD)
    assert delivery.ok
    [received] = server.requests
    assert received.body["text"] == SUMMARY
    assert received.body["blocks"] == [
        {"type": "section", "text": {"type": "mrkdwn", "text": SUMMARY}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join([
            "*model:* chat-assistant", "*environment:* prod", "*decision:* rollback",
            "*reason:* error_rate 0.081 &gt; max 0.05 &lt;!channel&gt; &amp; more",
            "*at:* 2026-11-22T10:00:00+00:00", "*stage:* 2"])}}]


def test_a_slack_message_stays_short(server: Recorder) -> None:
    payload = {f"field{i}": "x" * 500 for i in range(12)}
    notify([slack(server.url(SECRET))], SUMMARY, payload)
    text = server.requests[0].body["blocks"][1]["text"]["text"]
    lines = text.splitlines()
    assert len(lines) == 11 and lines[-1] == "_…and 2 more fields_"
    assert all(len(line) <= 220 for line in lines)


def test_each_failure_is_a_delivery_and_the_other_targets_still_get_theirs(server: Recorder) -> None:
    targets = [webhook(server.url("/fail" + SECRET)), webhook(f"http://127.0.0.1:{closed_port()}{SECRET}"),
               slack(server.url("/slow" + SECRET)), webhook(server.url("/moved" + SECRET)),
               webhook(server.url("/first")), slack(server.url("/second"))]
    started = time.monotonic()
    deliveries = notify(targets, SUMMARY, PAYLOAD, timeout=TIMEOUT)
    elapsed = time.monotonic() - started
    assert [d.ok for d in deliveries] == [False, False, False, False, True, True]
    failed, refused, slow, moved = (d.detail for d in deliveries[:4])
    assert failed == "HTTP 500 Internal Server Error: internal failure: database is down"
    assert refused.startswith("connection failed:") and "refused" in refused
    assert slow == "no answer within 0.5 s (timed out)"
    assert moved.startswith("HTTP 302 Found") and "redirects are not followed" in moved
    assert [r.path for r in server.at("/first")] == ["/first"]
    assert [r.body["text"] for r in server.at("/second")] == [SUMMARY]
    assert elapsed < TIMEOUT + 1.0, "the slow target held up the call"
    assert all(SECRET not in d.target + d.detail and "secret" not in d.target + d.detail for d in deliveries)


def test_notify_gives_up_waiting_after_the_timeout_even_if_a_request_hangs(
        server: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib's timeout is per socket operation: a server that trickles bytes could exceed it."""
    monkeypatch.setattr(notify_module, "_post", lambda *args: time.sleep(5) or (True, "late"))
    started = time.monotonic()
    [delivery] = notify([webhook(server.url(SECRET))], SUMMARY, PAYLOAD, timeout=0.2)
    assert time.monotonic() - started < 2
    assert delivery == Delivery(f"http://127.0.0.1:{server.port}/…", False,
                                "no answer within 0.2 s (gave up waiting)")


def test_bad_input_is_a_failed_delivery_not_an_exception(server: Recorder) -> None:
    class Opaque:
        def __str__(self) -> str:
            return "opaque"

    unchecked = NotificationTarget.model_construct(kind="pager", url=server.url("/x"))
    odd_scheme = NotificationTarget.model_construct(kind="webhook", url="file:///etc/passwd")
    deliveries = notify([unchecked, odd_scheme, webhook(server.url("/ok"))], SUMMARY,
                        {"window": timedelta(minutes=5), "versions": {"1.2.0"}, "other": Opaque()})
    assert [(d.ok, d.detail) for d in deliveries[:2]] == [
        (False, "unknown notification kind 'pager'"), (False, "only http and https URLs are supported")]
    assert deliveries[2].ok
    assert server.at("/ok")[0].body == {"window": 300.0, "versions": ["1.2.0"], "other": "opaque"}
    assert notify([], SUMMARY, PAYLOAD) == []


@pytest.mark.parametrize(("url", "shown"), [
    ("https://hooks.slack.com/services/T000/B000/XXXX", "https://hooks.slack.com/…"),
    ("https://user:password@alerts.acme.example:8443/hook?token=abc#x", "https://alerts.acme.example:8443/…"),
    ("http://[::1]:9000/hook", "http://[::1]:9000/…"),
    ("https://example.com", "https://example.com/…"),
])
def test_redact_keeps_only_scheme_host_and_port(url: str, shown: str) -> None:
    assert redact(url) == shown
