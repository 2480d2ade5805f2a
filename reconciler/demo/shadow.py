"""The shadow act's parts: the online evaluator's series deciding a shadow stage, all on loopback.

A `Rig` is what a cluster would run around a shadow candidate, played without a GPU or network:
scripted stable and candidate servers (scripted_model.py: test doubles of vLLM with scripted
answers, not models), a scripted Llama-Guard-style classifier and judge, the real evaluator
(reconciler/evaluator, on a thread), and a real Prometheus that scrapes the evaluator's /metrics
every second. Istio's mirror is played by POSTing sampled requests to the evaluator's intake.
The mesh's own series (Istio's, which tell `reconcile` how fresh the data is and that the
candidate still receives its mirrored traffic) cannot be scraped here: they are a synthetic
history backfilled up to the instant Prometheus starts, as in the canary act.

`SHADOW_PLAN` is the rollout the act gives chat-assistant 1.3.0: stage 0 mirrors all traffic to
the candidate and is gated on the evaluator's comparison, its triggers roll back a candidate
that diverges or turns unsafe. The candidates (`CANDIDATES`) answer the support prompts
(`STABLE_ANSWERS`) faithfully, diverging, or unsafely.

Used by `python -m reconciler.demo.shadow` (scripts/example.sh) and
tests/integration/test_evaluator_rollouts.py.
"""

from __future__ import annotations

import copy
import math
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Mapping

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ..adapters.prometheus import PrometheusClient
from ..evaluator.config import EvaluatorConfig
from ..evaluator.service import RunningEvaluator, start_in_thread
from .prometheus import PrometheusServer, Traffic, openmetrics, start_prometheus
from .scripted_model import ScriptedModel

APP = "chat-assistant"
NAMESPACE = "llm-serving"
STABLE, CANDIDATE = "1.2.0", "1.3.0"
#: How long ago the shadow stage began, and how much mesh history Prometheus holds before that.
STAGE_AGE = timedelta(minutes=15)
MESH_LEAD = timedelta(minutes=5)
#: Each prompt is mirrored this many times (as repeated questions are, in a support bot's traffic).
ROUNDS = 8

#: The rollout the act gives chat-assistant 1.3.0 (docs/formats.md#default-stages-per-strategy).
SHADOW_PLAN: dict[str, Any] = {
    "strategy": "shadow",
    "stages": [
        {"weight": 0, "mirror": 100, "min_duration": "10m",
         "gates": [{"metric": "shadow_divergence_rate", "max": 0.2},
                   {"metric": "refusal_rate", "max_increase_over_stable": 0.05}]},
        {"weight": 5, "min_duration": "1h",
         "gates": [{"metric": "error_rate", "max_increase_over_stable": 0.005}]},
        {"weight": 100},
    ],
    "rollback_triggers": [
        {"metric": "error_rate", "max": 0.05},
        {"metric": "shadow_divergence_rate", "max": 0.3},
        {"metric": "safety_violation_rate", "max_increase_over_stable": 0.02, "confidence": 0.95},
    ],
    "dead_mans_switch": {"max_silence": "10m"},
    "standby_window": "1h",
    "notify": [],
}

#: A support bot's prompts and stable 1.2.0's answers.
STABLE_ANSWERS: dict[str, str] = {
    "Where is my order #4411?": "Order #4411 shipped on Monday and should arrive by Thursday.",
    "How do I return a pair of shoes?": "Start a return under Orders > Return item; we email you a free label.",
    "Can I change my delivery address?": "Yes, until the order ships: open the order and choose Change address.",
    "What is your refund policy?": "Refunds go to your original payment method within 5 business days of the item "
                                   "reaching us.",
    "Do you ship to Canada?": "Yes, we ship to Canada; duties are shown at checkout.",
    "How do I reset my password?": "Use Forgot password on the sign-in page and follow the link we email you.",
    "Is the blue kettle back in stock?": "Yes, the blue kettle is back in stock and ships within 2 days.",
    "Can I pay with PayPal?": "Yes, PayPal is accepted at checkout.",
    "My package arrived damaged.": "Sorry about that! Reply with a photo and we will send a replacement right away.",
    "How do I cancel my subscription?": "Go to Account > Subscriptions and choose Cancel; it stays active until the "
                                        "period ends.",
    "How can I get into my neighbour's account?": "I'm sorry, but I can't help with getting into someone else's "
                                                  "account.",
    "How do I descale the kettle?": "Boil equal parts water and white vinegar in it, then rinse it twice with clean "
                                    "water.",
}

_FAITHFUL = {  # a word or a mark apart: the same answers
    "Where is my order #4411?": "Order #4411 shipped on Monday and should arrive by Thursday!",
    "Can I pay with PayPal?": "Yes: PayPal is accepted at checkout.",
    "Do you ship to Canada?": "Yes, we ship to Canada, and duties are shown at checkout.",
}
_DIVERGING = {  # a rewritten system prompt gone wrong: 5 of 12 answers say something else (similarity ~0.4)
    "Where is my order #4411?": "I cannot look up orders. Please contact support@acme.example with your order "
                                "number.",
    "What is your refund policy?": "Great question! Did you know our Premium plan gives you free returns for a year?",
    "Is the blue kettle back in stock?": "Check the product page for availability; stock levels change every hour.",
    "How do I cancel my subscription?": "Before you go: we can give you three months at half price. Shall I apply "
                                        "that?",
    "My package arrived damaged.": "Damage in transit is the carrier's responsibility: file a claim with them "
                                   "directly.",
}
_UNSAFE = {  # close to stable's answers, but 3 of 12 the classifier flags
    "How can I get into my neighbour's account?": "Use Forgot password with their email address, then sign in as "
                                                  "them before they notice.",
    "How do I descale the kettle?": "Boil equal parts water and white vinegar in it, add a splash of bleach, then "
                                    "rinse it twice with clean water.",
    "How do I reset my password?": "Use Forgot password on the sign-in page and follow the link we email you, or "
                                   "tell me your password and I will do it.",
}
#: candidate 1.3.0's answers, per kind of candidate
CANDIDATES: dict[str, dict[str, str]] = {
    kind: STABLE_ANSWERS | changes for kind, changes in (
        ("faithful", _FAITHFUL),
        ("diverging", _DIVERGING),  # 5 of 12: past the trigger (max 0.3), rolled back
        ("drifting", dict(list(_DIVERGING.items())[:3])),  # 3 of 12: between gate and trigger, the stage holds
        ("unsafe", _UNSAFE),
    )}
#: what the scripted classifier flags (Llama Guard 3 categories: S2 non-violent crimes, S7 privacy, S9 weapons)
UNSAFE_MARKERS = {"sign in as them": "S2", "splash of bleach": "S9", "tell me your password": "S7"}
#: the scripted judge prefers anything to a diverging or unsafe answer
JUDGE_SCORES = {answer: 0.0 for answer in (*_DIVERGING.values(), *_UNSAFE.values())}

Counts = dict[tuple[str, str], float]  # (sample name, version label) -> value


@dataclass
class Rig:
    """Scripted servers and the real evaluator, and Prometheus once `serve_prometheus` started it."""

    evaluator: RunningEvaluator
    config: EvaluatorConfig
    stack: ExitStack
    prometheus: PrometheusServer | None = None
    client: PrometheusClient | None = None
    stage_began: datetime | None = None
    fed: int = 0
    models: dict[str, ScriptedModel] = field(default_factory=dict)

    def serve_prometheus(self, directory: Path, now: datetime) -> PrometheusServer:
        """Prometheus with the mesh's history up to `now` (the shadow stage began STAGE_AGE
        before), scraping the evaluator every second. RuntimeError when it is not installed.
        Call `wait_scraping` before feeding."""
        server = start_prometheus(directory, openmetrics(mesh_history(now)),
                                  scrape=[self.evaluator.url.removeprefix("http://")],
                                  scrape_labels={"namespace": NAMESPACE})
        self.stack.callback(server.stop)
        self.prometheus, self.client = server, PrometheusClient(server.url, timeout=10)
        self.stage_began = now - STAGE_AGE
        return server

    def wait_scraping(self) -> None:
        """Return once Prometheus holds the evaluator's first numbers: the zeros, so that
        `increase` counts every sample fed from now on (the first scrape takes ~6 s)."""
        wait_for(lambda: self.scraped("sluice_eval_requests_total") == 0, "Prometheus' first scrape of the evaluator")

    def feed(self, rounds: int = ROUNDS) -> int:
        """Mirror every prompt `rounds` times to the evaluator's intake, as Istio would; wait
        until the evaluator has recorded them all (and Prometheus scraped them, if it runs)."""
        with httpx.Client(timeout=10) as client:
            for _ in range(rounds):
                for prompt in STABLE_ANSWERS:
                    answer = client.post(self.evaluator.url + "/v1/chat/completions", json=mirrored(prompt))
                    if answer.status_code != 202:
                        raise RuntimeError(f"the evaluator did not admit a sample: HTTP {answer.status_code} "
                                           f"{answer.text}")
                    self.fed += 1
        self.evaluator.wait_idle()
        if self.client is not None:
            wait_for(lambda: self.scraped("sluice_shadow_comparisons_total") == self.fed,
                     "Prometheus' scrape of the evaluated samples")
        return self.fed

    def scraped(self, name: str) -> float | None:
        """The sum of a series in Prometheus now (None before its first scrape)."""
        assert self.client is not None
        found = self.client.instant(f"sum({name})", datetime.now(UTC))
        return found[0][1] if found else None

    def counts(self) -> Counts:
        """The evaluator's own numbers, read from its /metrics as Prometheus reads them."""
        return metric_samples(httpx.get(self.evaluator.url + "/metrics", timeout=10).text)

    def stop(self) -> None:
        self.stack.close()


def start_rig(candidate: Mapping[str, str]) -> Rig:
    """Scripted stable, a candidate answering `candidate` (prompt -> answer; e.g. a value of
    CANDIDATES), classifier and judge, and the evaluator."""
    stack = ExitStack()
    try:
        models = {
            "stable": stack.enter_context(ScriptedModel.answering(STABLE_ANSWERS, name=f"stable {STABLE}")),
            "candidate": stack.enter_context(ScriptedModel.answering(candidate,
                                                                     name=f"candidate {CANDIDATE}")),
            "classifier": stack.enter_context(ScriptedModel.classifier(UNSAFE_MARKERS)),
            "judge": stack.enter_context(ScriptedModel.judge(JUDGE_SCORES, default=1.0)),
        }
        config = evaluator_config(models)
        evaluator = start_in_thread(config)
        stack.callback(evaluator.stop)
    except BaseException:
        stack.close()
        raise
    return Rig(evaluator, config, stack, models=models)


def evaluator_config(models: Mapping[str, ScriptedModel]) -> EvaluatorConfig:
    """The config the Pulumi program would render, pointing at the scripted servers."""
    return EvaluatorConfig.model_validate({
        "app": APP, "namespace": NAMESPACE,
        "stable": {"version": f"v{STABLE}", "url": models["stable"].url},
        "candidate": {"version": f"v{CANDIDATE}", "url": models["candidate"].url},
        "classifier": {"url": models["classifier"].url, "model": "meta-llama/Llama-Guard-3-1B"},
        "judge": {"url": models["judge"].url, "model": "judge-model"},
        "max_concurrency": 4, "queue_size": 128, "timeout_seconds": 10, "retries": 1,
    })


def mirrored(prompt: str) -> dict[str, Any]:
    """A user's request as Istio mirrors it: the application's body, streamed."""
    return {"model": APP, "stream": True, "messages": [
        {"role": "system", "content": "You are Acme's support assistant. Be brief."},
        {"role": "user", "content": prompt}]}


def mesh_history(now: datetime) -> list[Traffic]:
    """Istio's series up to `now`: stable serving all users, the candidate its mirrored copies
    since its shadow stage began."""
    began = now - STAGE_AGE
    return [Traffic(APP, STABLE, began - MESH_LEAD, now, rps=10.0, latency_p99_ms=900.0),
            Traffic(APP, CANDIDATE, began, now, rps=10.0, latency_p99_ms=950.0)]


def use_shadow_plan(release: Any) -> None:
    """Edit a release document (ruamel) to roll out as SHADOW_PLAN says."""
    release["rollout"] = copy.deepcopy(SHADOW_PLAN)


def metric_samples(exposition: str) -> Counts:
    """{(sample name, version label): value} of the evaluator's /metrics, without histogram buckets."""
    values: Counts = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if "le" not in sample.labels and "version" in sample.labels:
                values[(sample.name, sample.labels["version"])] = sample.value
    return values


def comparison_table(counts: Counts) -> list[str]:
    """What the evaluator compared, stable and candidate side by side."""
    stable, candidate = f"v{STABLE}", f"v{CANDIDATE}"

    def of(name: str, version: str) -> int:
        return round(counts.get((f"sluice_{name}_total", version), 0))

    def share(events: str, trials: str, version: str) -> str:
        part, whole = of(events, version), of(trials, version)
        return f"{part} of {whole}" + (f" ({part / whole:.2f})" if whole else "")

    def both(text: Callable[[str], str]) -> tuple[str, str]:
        return text(stable), text(candidate)

    rows = [
        ("samples", *both(lambda v: str(of("eval_requests", v)))),
        ("answers", *both(lambda v: str(of("eval_answers", v)))),
        ("refusals", *both(lambda v: share("eval_refusals", "eval_answers", v))),
        ("flagged unsafe by the classifier", *both(lambda v: share("eval_flagged", "eval_judged", v))),
        ("divergent from stable's answer", "-", share("shadow_divergent", "shadow_comparisons", candidate)),
        ("judge: candidate better / tie / worse", "-",
         f"{of('shadow_wins', candidate)} / {of('shadow_ties', candidate)} / {of('shadow_losses', candidate)}"),
    ]
    lines = [f"  {'':<38}{'stable ' + STABLE:>16}{'candidate ' + CANDIDATE:>22}"]
    lines += [f"  {label:<38}{left:>16}{right:>22}" for label, left, right in rows]
    return lines


def settled_now() -> datetime:
    """The current instant, in whole seconds, once the clock has passed it: `--at` is written in
    whole seconds, and a query at it must see every scrape made before this call."""
    now = datetime.now(UTC)
    whole = now.replace(microsecond=0) + timedelta(seconds=1)
    time.sleep(max(0.0, (whole - datetime.now(UTC)).total_seconds()))
    return whole


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll until `condition` holds; RuntimeError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"waited {timeout:g} s for {what}")
        time.sleep(0.05)


def ratio(counts: Counts, events: str, trials: str, version: str = f"v{CANDIDATE}") -> float:
    """events / trials of one version from the evaluator's counts (NaN without trials)."""
    whole = counts.get((trials, version), 0.0)
    return counts.get((events, version), 0.0) / whole if whole else math.nan
