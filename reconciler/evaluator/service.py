"""The online evaluator as a service: mirror intake, bounded queue, workers, /metrics, /healthz.

Istio mirrors a share of a model's user requests here and discards the reply, so the user never
waits on the evaluator. The intake still answers at once: it parses the body, admits it into a
bounded queue if there is room (202) or counts a drop and answers 503 (the queue is full: a burst
is shed, never buffered without bound). `max_concurrency` workers take samples from the queue,
send each to stable and to candidate (sample.py), and record the outcome (exporter.py). So the
extra load on each version is at most the mirrored share, and at most `max_concurrency` samples
are in flight, each with bounded timeouts and retries.

Privacy: a sample's body lives in the queue and in one worker's call stack, in memory only;
nothing logs it, and only counts and scores leave, as series whose labels are app and version.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import threading
from dataclasses import dataclass
from typing import Any, Mapping

import httpx

from .config import EvaluatorConfig, model_endpoint, version_endpoint
from .exporter import EvaluatorMetrics
from .http_server import Request, Response, start_server
from .openai_api import PATHS
from .sample import Evaluation, evaluate

log = logging.getLogger(__name__)
EXPOSITION = "text/plain; version=0.0.4; charset=utf-8"


class EvaluatorService:
    """One model's evaluator. `start()` binds and spawns the workers; `stop()` ends them."""

    def __init__(self, config: EvaluatorConfig, *, rng: random.Random | None = None,
                 environ: Mapping[str, str] = os.environ) -> None:
        self.config = config
        self.metrics = EvaluatorMetrics(config.app, config.stable.version, config.candidate.version,
                                        has_judge=config.judge is not None)
        self._judge = model_endpoint(config.judge, environ) if config.judge else None
        self._classifier = model_endpoint(config.classifier, environ) if config.classifier else None
        self._rng = rng or random.Random()
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._server: asyncio.Server | None = None
        self._client: httpx.AsyncClient | None = None

    async def start(self, host: str = "0.0.0.0", port: int | None = None) -> int:
        """Serve on host:port (default: the config's listen_port; 0 picks a free one); returns the port."""
        config = self.config
        self._queue = asyncio.Queue(maxsize=config.queue_size)
        self._client = httpx.AsyncClient(limits=httpx.Limits(max_connections=4 * config.max_concurrency))
        evaluation = Evaluation(
            client=self._client, stable=version_endpoint(config.stable), candidate=version_endpoint(config.candidate),
            judge=self._judge, classifier=self._classifier, expects_json=config.expects_json,
            divergence_threshold=config.divergence_threshold, timeout=config.timeout_seconds,
            retries=config.retries, rng=self._rng,
        )
        self._workers = [asyncio.create_task(self._work(evaluation), name=f"evaluator-worker-{n}")
                         for n in range(config.max_concurrency)]
        self._server = await start_server(self.handle, host, config.listen_port if port is None else port)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop taking samples, cancel the workers (queued samples are dropped: they are samples)."""
        if self._server is not None:
            self._server.close()
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    async def idle(self) -> None:
        """Return once every admitted sample has been evaluated and recorded."""
        if self._queue is not None:
            await self._queue.join()

    async def handle(self, request: Request) -> Response:
        if request.path in PATHS:
            if request.method != "POST":
                return Response(405, b'{"error": "POST a mirrored OpenAI request here"}', headers={"allow": "POST"})
            return self._intake(request)
        if request.path == "/metrics" and request.method == "GET":
            return Response(200, self.metrics.exposition(), content_type=EXPOSITION)
        if request.path == "/healthz" and request.method == "GET":
            return Response(200, b'{"status": "ok"}')
        return Response(404, b'{"error": "not found"}')

    def _intake(self, request: Request) -> Response:
        """Admit a mirrored request or count it as dropped; never waits on a model."""
        try:
            body = json.loads(request.body)
        except ValueError:
            return Response(400, b'{"error": "the body is not JSON"}')
        if not isinstance(body, dict) or not ("messages" in body or "prompt" in body):
            return Response(400, b'{"error": "not an OpenAI completion request (no messages, no prompt)"}')
        assert self._queue is not None, "start() the service first"
        try:
            self._queue.put_nowait((request.path, body))
        except asyncio.QueueFull:
            self.metrics.dropped()
            return Response(503, b'{"sampled": false, "reason": "queue full"}')
        self.metrics.admitted()
        return Response(202, b'{"sampled": true}')

    async def _work(self, evaluation: Evaluation) -> None:
        assert self._queue is not None
        while True:
            path, body = await self._queue.get()
            try:
                outcome = await evaluate(body, path, evaluation)
                self.metrics.record(outcome)
                for name, result in (("stable", outcome.stable), ("candidate", outcome.candidate)):
                    if result.answer.error:  # no text in errors, only what failed where
                        log.debug("%s call failed: %s", name, result.answer.error)
            except Exception as exc:  # one bad sample must not stop a worker; its content is never logged
                log.error("a sample could not be evaluated: %s", type(exc).__name__)
            finally:
                self._queue.task_done()


@dataclass
class RunningEvaluator:
    """An evaluator serving from its own thread and event loop (tests and the demo)."""

    url: str
    service: EvaluatorService
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Block until every admitted sample is recorded (TimeoutError after `timeout`)."""
        asyncio.run_coroutine_threadsafe(self.service.idle(), self.loop).result(timeout)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.service.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


def start_in_thread(config: EvaluatorConfig, *, host: str = "127.0.0.1", port: int = 0,
                    rng: random.Random | None = None) -> RunningEvaluator:
    """Start an evaluator on a background thread; stop() it when done."""
    service = EvaluatorService(config, rng=rng)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name=f"evaluator-{config.app}", daemon=True)
    thread.start()
    bound = asyncio.run_coroutine_threadsafe(service.start(host, port), loop).result(30)
    return RunningEvaluator(f"http://{host}:{bound}", service, loop, thread)
