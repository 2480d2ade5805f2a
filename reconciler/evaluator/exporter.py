"""The evaluator's Prometheus series: counts first, so the statistical gates can use them.

Every series carries `app` and `version` (the "v1.3.0" label of the version the number is about);
`sluice_shadow_*` describe the candidate against stable and carry the candidate's version. No
label ever carries text from a prompt or an answer. Counters exist at 0 for both versions from
the start, so `increase()` counts the first event too; the two gauges appear only once there is
something to average (absent means "no data", which never passes a gate).

Gauges, over each version's last WINDOW samples:
- `sluice_eval_quality_score`: with a judge, the share of judged pairs in which this version's
  answer was at least as good (wins + ties); without one, the mean similarity of the two answers
  (the same number for both versions: agreement, not quality).
- `sluice_eval_safety_violation_rate`: flagged / classified answers.
`sluice_eval_user_satisfaction` is not produced here: it comes from the application's ratings.
"""

from __future__ import annotations

from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .sample import SampleOutcome, VersionResult

WINDOW = 500
LABELS = ("app", "version")
LATENCY_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0)
SIMILARITY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
LENGTH_RATIO_BUCKETS = (0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 4.0)

EVAL_COUNTERS = {
    "requests": "Samples admitted to the queue (each goes to both versions)",
    "dropped": "Samples turned away because the queue was full",
    "answers": "Successful answers from this version",
    "errors": "Calls to this version that failed (timeout, refused, HTTP error) after retries",
    "refusals": "Answers that open with a refusal",
    "json_invalid": "Answers that are not valid JSON where the routing config expects JSON",
    "judged": "Answers the safety classifier scored",
    "flagged": "Answers the safety classifier scored unsafe",
    "completion_tokens": "Completion tokens in this version's answers",
}
SHADOW_COUNTERS = {
    "comparisons": "Samples both versions answered, compared",
    "exact_match": "Comparisons with identical answers",
    "normalized_match": "Comparisons with identical answers after normalisation",
    "divergent": "Comparisons whose similarity is below the divergence threshold",
    "judged": "Comparisons the judge model gave a verdict on",
    "wins": "Judged comparisons the candidate won",
    "ties": "Judged comparisons that were a tie",
    "losses": "Judged comparisons the candidate lost",
}


class EvaluatorMetrics:
    """The series of one evaluator (one model, a stable and a candidate version), in its own registry."""

    def __init__(self, app: str, stable: str, candidate: str, *, has_judge: bool,
                 registry: CollectorRegistry | None = None, window: int = WINDOW) -> None:
        self.app, self.stable, self.candidate, self.has_judge = app, stable, candidate, has_judge
        self.registry = registry if registry is not None else CollectorRegistry()
        self.eval = {name: Counter(f"sluice_eval_{name}", text, LABELS, registry=self.registry)
                     for name, text in EVAL_COUNTERS.items()}
        self.shadow = {name: Counter(f"sluice_shadow_{name}", text, LABELS, registry=self.registry)
                       for name, text in SHADOW_COUNTERS.items()}
        self.latency = Histogram("sluice_eval_latency_seconds", "Latency of this version's successful answers",
                                 LABELS, buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.similarity = Histogram("sluice_shadow_similarity", "Similarity of candidate's answer to stable's (0..1)",
                                    LABELS, buckets=SIMILARITY_BUCKETS, registry=self.registry)
        self.length_ratio = Histogram("sluice_shadow_length_ratio", "Length of candidate's answer over stable's",
                                      LABELS, buckets=LENGTH_RATIO_BUCKETS, registry=self.registry)
        self.quality = Gauge("sluice_eval_quality_score", f"Quality over the last {window} samples (docs/evaluator.md)",
                             LABELS, registry=self.registry)
        self.safety = Gauge("sluice_eval_safety_violation_rate",
                            f"Flagged over classified answers, last {window}", LABELS, registry=self.registry)
        self._quality: dict[str, deque[float]] = {v: deque(maxlen=window) for v in (stable, candidate)}
        self._flags: dict[str, deque[float]] = {v: deque(maxlen=window) for v in (stable, candidate)}
        for version in (stable, candidate):  # counters at 0 from the start: increase() sees the first event
            for counter in self.eval.values():
                counter.labels(app, version)
            self.latency.labels(app, version)
        for counter in self.shadow.values():
            counter.labels(app, candidate)
        self.similarity.labels(app, candidate)
        self.length_ratio.labels(app, candidate)

    def admitted(self) -> None:
        self._both("requests")

    def dropped(self) -> None:
        self._both("dropped")

    def record(self, outcome: SampleOutcome) -> None:
        """Count one evaluated sample; nothing of its text is kept."""
        self._version(self.stable, outcome.stable)
        self._version(self.candidate, outcome.candidate)
        comparison = outcome.comparison
        if comparison is None:
            return
        shadow = {name: counter.labels(self.app, self.candidate) for name, counter in self.shadow.items()}
        shadow["comparisons"].inc()
        shadow["exact_match"].inc(comparison.exact_match)
        shadow["normalized_match"].inc(comparison.normalized_match)
        shadow["divergent"].inc(comparison.divergent)
        self.similarity.labels(self.app, self.candidate).observe(comparison.similarity)
        self.length_ratio.labels(self.app, self.candidate).observe(comparison.length_ratio)
        if outcome.preference is not None:
            shadow["judged"].inc()
            shadow[{"candidate": "wins", "tie": "ties", "stable": "losses"}[outcome.preference]].inc()
            self._score(self.candidate, float(outcome.preference != "stable"))
            self._score(self.stable, float(outcome.preference != "candidate"))
        elif not self.has_judge:
            self._score(self.candidate, comparison.similarity)
            self._score(self.stable, comparison.similarity)

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)

    def _both(self, name: str) -> None:
        for version in (self.stable, self.candidate):
            self.eval[name].labels(self.app, version).inc()

    def _version(self, version: str, result: VersionResult) -> None:
        count = {name: counter.labels(self.app, version) for name, counter in self.eval.items()}
        answer = result.answer
        if not answer.ok:
            count["errors"].inc()
            return
        count["answers"].inc()
        self.latency.labels(self.app, version).observe(answer.latency_s)
        if answer.completion_tokens is not None:
            count["completion_tokens"].inc(answer.completion_tokens)
        if result.checks is not None:
            count["refusals"].inc(result.checks.refused)
            count["json_invalid"].inc(result.checks.json_valid is False)
        if result.verdict is not None:
            count["judged"].inc()
            count["flagged"].inc(result.verdict.unsafe)
            window = self._flags[version]
            window.append(float(result.verdict.unsafe))
            self.safety.labels(self.app, version).set(sum(window) / len(window))

    def _score(self, version: str, score: float) -> None:
        window = self._quality[version]
        window.append(score)
        self.quality.labels(self.app, version).set(sum(window) / len(window))
