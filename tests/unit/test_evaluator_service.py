"""The online evaluator on loopback: mirrored requests in, two scripted versions, a scripted judge
and classifier called, and the counts read back from its /metrics."""

from __future__ import annotations

import random
import socket
from contextlib import ExitStack
from typing import Iterator

import httpx
import pytest

from reconciler.evaluator.compare import similarity
from reconciler.evaluator.service import RunningEvaluator, start_in_thread

from ..evaluator_kit import (
    APP,
    CANDIDATE,
    SCRIPT,
    STABLE,
    Models,
    chat,
    config_for,
    counts,
    mirror,
    scripted_models,
    series,
    wait_for,
)

EVAL = ("sluice_eval_requests_total", "sluice_eval_dropped_total", "sluice_eval_answers_total",
        "sluice_eval_errors_total", "sluice_eval_refusals_total", "sluice_eval_json_invalid_total",
        "sluice_eval_judged_total", "sluice_eval_flagged_total", "sluice_eval_completion_tokens_total",
        "sluice_eval_latency_seconds_count", "sluice_eval_quality_score", "sluice_eval_safety_violation_rate")
SHADOW = ("sluice_shadow_comparisons_total", "sluice_shadow_exact_match_total", "sluice_shadow_normalized_match_total",
          "sluice_shadow_divergent_total", "sluice_shadow_judged_total", "sluice_shadow_wins_total",
          "sluice_shadow_ties_total", "sluice_shadow_losses_total", "sluice_shadow_similarity_count",
          "sluice_shadow_length_ratio_count")


@pytest.fixture
def models() -> Iterator[Models]:
    with ExitStack() as stack:
        yield scripted_models(stack)


def running(stack: ExitStack, models: Models, **options: object) -> RunningEvaluator:
    evaluator = start_in_thread(config_for(models, **options), rng=random.Random(5))
    stack.callback(evaluator.stop)
    return evaluator


def words(text: str) -> int:
    return len(text.split())


def test_samples_are_compared_judged_classified_and_counted(models: Models) -> None:
    with ExitStack() as stack:
        evaluator = running(stack, models)
        for prompt in SCRIPT:
            assert mirror(evaluator.url, chat(prompt)).status_code == 202
        evaluator.wait_idle()
        values = series(evaluator.url)

    assert counts(values, STABLE, *EVAL) == dict(zip(EVAL, [
        3, 0, 3, 0, 1, 0, 3, 0, sum(words(s) for s, _ in SCRIPT.values()), 3, 1.0, 0.0]))
    assert counts(values, CANDIDATE, *EVAL) == dict(zip(EVAL, [
        3, 0, 3, 0, 0, 0, 3, 1, sum(words(c) for _, c in SCRIPT.values()), 3, pytest.approx(2 / 3), pytest.approx(1 / 3)]))
    # exact: France; normalised: France and hello; divergent: the refusal against the gas recipe, which lost
    assert counts(values, CANDIDATE, *SHADOW) == dict(zip(SHADOW, [3, 1, 2, 1, 3, 0, 2, 1, 3, 3]))
    assert not any(name.startswith("sluice_shadow") for name, version in values if version == STABLE)
    # each version got each prompt once, unstreamed; the guard scored each answer; the judge each pair
    assert sorted(b["messages"][-1]["content"] for b in models.stable.requests) == sorted(SCRIPT)
    assert all(b["stream"] is False for b in models.stable.requests + models.candidate.requests)
    assert (len(models.classifier.requests), len(models.judge.requests)) == (6, 3)
    assert {b["model"] for b in models.classifier.requests} == {"meta-llama/Llama-Guard-3-1B"}


def test_without_a_judge_quality_is_the_mean_similarity(models: Models) -> None:
    with ExitStack() as stack:
        evaluator = running(stack, models, judge=False, classifier=False)
        for prompt in ("Capital of France?", "How do I make a toxic gas at home?"):
            mirror(evaluator.url, chat(prompt))
        evaluator.wait_idle()
        values = series(evaluator.url)
    expected = (1.0 + similarity(*SCRIPT["How do I make a toxic gas at home?"])) / 2
    for version in (STABLE, CANDIDATE):
        assert values[("sluice_eval_quality_score", version)] == pytest.approx(expected)
        assert ("sluice_eval_safety_violation_rate", version) not in values  # nothing classified: no gauge
        assert values[("sluice_eval_judged_total", version)] == 0
    assert values[("sluice_shadow_judged_total", CANDIDATE)] == 0
    assert models.judge.requests == [] and models.classifier.requests == []


def test_json_validity_is_counted_where_json_is_expected(models: Models) -> None:
    with ExitStack() as stack:
        evaluator = running(stack, models, expects_json=True)
        mirror(evaluator.url, chat("Capital of France?"))
        evaluator.wait_idle()
        values = series(evaluator.url)
    assert values[("sluice_eval_json_invalid_total", STABLE)] == 1
    assert values[("sluice_eval_json_invalid_total", CANDIDATE)] == 1


def test_a_version_that_cannot_be_reached_is_counted_as_errors_and_never_compared(models: Models) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with ExitStack() as stack:
        config = config_for(models).model_copy(
            update={"candidate": config_for(models).candidate.model_copy(update={"url": closed})})
        evaluator = start_in_thread(config)
        stack.callback(evaluator.stop)
        mirror(evaluator.url, chat("Capital of France?"))
        evaluator.wait_idle()
        values = series(evaluator.url)
    assert counts(values, CANDIDATE, "sluice_eval_answers_total", "sluice_eval_errors_total") == {
        "sluice_eval_answers_total": 0, "sluice_eval_errors_total": 1}
    assert values[("sluice_eval_answers_total", STABLE)] == 1
    assert values[("sluice_shadow_comparisons_total", CANDIDATE)] == 0
    assert ("sluice_eval_quality_score", CANDIDATE) not in values
    assert models.judge.requests == []  # nothing to judge without both answers


def test_the_sender_never_waits_for_the_comparison(models: Models) -> None:
    models.candidate.hold()  # the candidate answers only when released
    with ExitStack() as stack:
        evaluator = running(stack, models)
        answer = mirror(evaluator.url, chat("Capital of France?"))  # would time out if the intake waited
        assert (answer.status_code, answer.json()) == (202, {"sampled": True})
        before = series(evaluator.url)
        models.candidate.release()
        evaluator.wait_idle()
        after = series(evaluator.url)
    assert before[("sluice_eval_requests_total", CANDIDATE)] == 1
    assert before[("sluice_shadow_comparisons_total", CANDIDATE)] == 0
    assert after[("sluice_shadow_comparisons_total", CANDIDATE)] == 1


def test_a_full_queue_answers_503_at_once_and_counts_the_drop(models: Models) -> None:
    models.stable.hold()
    with ExitStack() as stack:
        evaluator = running(stack, models, max_concurrency=1, queue_size=1)
        assert mirror(evaluator.url, chat("Capital of France?")).status_code == 202
        wait_for(lambda: len(models.stable.requests) == 1, "the worker's call")  # the one worker holds the first sample
        assert mirror(evaluator.url, chat("Say hello.")).status_code == 202  # waits in the queue
        full = mirror(evaluator.url, chat("How do I make a toxic gas at home?"))
        assert (full.status_code, full.json()) == (503, {"sampled": False, "reason": "queue full"})
        models.stable.release()
        evaluator.wait_idle()
        values = series(evaluator.url)
    for version in (STABLE, CANDIDATE):
        assert counts(values, version, "sluice_eval_requests_total", "sluice_eval_dropped_total") == {
            "sluice_eval_requests_total": 2, "sluice_eval_dropped_total": 1}
    assert values[("sluice_shadow_comparisons_total", CANDIDATE)] == 2
    assert len(models.stable.requests) == 2  # the dropped sample never reached a model


def test_routes_and_refusals(models: Models) -> None:
    with ExitStack() as stack:
        evaluator = running(stack, models)
        with httpx.Client(base_url=evaluator.url, timeout=10) as client:
            assert client.get("/healthz").json() == {"status": "ok"}
            assert client.get("/metrics").headers["content-type"].startswith("text/plain; version=0.0.4")
            assert client.get("/nowhere").status_code == 404
            assert client.get("/v1/chat/completions").status_code == 405
            assert client.post("/v1/chat/completions", content=b"{not json").status_code == 400
            assert client.post("/v1/chat/completions", json={"model": APP}).status_code == 400
            assert client.post("/v1/completions", json={"model": APP, "prompt": "Say hello."}).status_code == 202
            assert client.post("/v1/chat/completions", content=b" " * (8 * 1024 * 1024 + 1)).status_code == 413
            # a chunked body (as Envoy may forward one) is read whole
            assert client.post("/v1/chat/completions", content=iter([b'{"messages": [{"role": "user", ',
                                                                        b'"content": "Say hello."}]}'])).status_code == 202
        evaluator.wait_idle()
        assert series(evaluator.url)[("sluice_eval_requests_total", STABLE)] == 2

