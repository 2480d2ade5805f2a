"""How good are rollback decisions at canary traffic? Three judges on the same simulated histories.

    python bench/bench_judge.py                         # 1,000 rollouts per condition (a few minutes, 2 workers)
    python -m bench.bench_judge --rollouts 200 --json figures.json
    python bench/bench_judge.py --pass-every 1m --rollouts 200 --conditions aa,global_incident

Each rollout is one canary stage of a 70B chat model at 1, 2 or 5% of its traffic, simulated per
minute for both versions over the same clock (bench/traffic_sim.py: diurnal rate, bursts, a
heavy-tailed output-length-driven latency, 5xx blips), under one of seven conditions: `aa` (no
change), `latency_10/25/50` (the candidate's latency x1.1/1.25/1.5), `errors_0_5pp/2pp` (its 5xx
share +0.5/+2 pp) and `global_incident` (both versions degrade alike for 20-60 minutes).

Three judges read the same per-minute histories (requests, 5xx, latency histogram buckets):

  threshold     Flagger's analysis: every interval (1m) the candidate's p99 (histogram_quantile
                over the interval's buckets) and 5xx share against absolute maxima; an interval
                with no requests fails ("no values found"); rollback at `threshold` (5) failed
                checks, advance after `iterations` (10) passed ones.
  fixed_window  Kayenta's NetflixACAJudge: at the end of a fixed window (1h), per metric, a
                Mann-Whitney U test (scipy.stats.mannwhitneyu) on the per-minute values of
                candidate vs stable; "High" when the two-sided 98% interval of the shift lies
                above 0 (one-sided p < 0.01) and the effect exceeds the allowed increase (mean
                ratio > 1.10 for p99, mean difference > +0.5 pp for the 5xx share); any High
                metric rolls back, otherwise the candidate advances at the window's end.
  sluice        `reconciler.core.decide.decide`, the reconciler's own decision function, every
                `--pass-every` simulated minutes, fed `Observations` built from the same
                histories (evidence histories of 5m windows, request history, last samples, the
                instant metric values) for a release whose stage gates and triggers are
                sequential tests (confidence 0.95 / 0.99; see SLUICE_STAGE).

For each judge and condition: the false rollback rate (rollbacks where nothing regressed), the
detection rate (rollbacks where the candidate regressed), and the median and p95 time and
candidate requests to a decision. Then the issue's targets for Sluice's judge, PASS/MISS.
Exit 1 with --strict if a target is missed.

Beside them, where the correct decision is a latency one (`aa`, `global_incident`: not worse;
`latency_25/50`: worse), a bound that no valid judge can beat (`oracle`; `--no-oracle` leaves it
out): a clairvoyant that knows stable's true p99 and looks once, at minute t, with the uniformly
most powerful test on the candidate's requests so far. Its power is the most any valid judge's
share of correct decisions by t can be.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/bench_judge.py` puts bench/ first, not the root
    sys.path.insert(0, str(ROOT))

from bench.traffic_sim import (  # noqa: E402
    BUCKETS, CANDIDATE, CONDITIONS, ISTIO_HISTOGRAMS, STABLE, Condition, Histories, LatencyTable, TrafficModel, histogram_quantile,
    simulate)

JUDGES = ("threshold", "fixed_window", "sluice")
UNDECIDED, ROLLBACK, ADVANCE = 0, 1, 2

#: Flagger-like analysis (docs.flagger.app: `interval: 1m`, `threshold: 5`; `iterations: 10` as in
#: its A/B and blue/green examples). The maxima are what an operator reads off stable's dashboard:
#: p99 25% above stable's long-run p99 at mean load, and Flagger's canonical request-success-rate
#: of at least 99% (5xx share at most 1%).
THRESHOLD_FAILED_CHECKS = 5
THRESHOLD_ITERATIONS = 10
THRESHOLD_LATENCY_OVER_BASELINE = 1.25
THRESHOLD_MAX_ERROR_RATE = 0.01

#: Kayenta-like: NetflixACAJudge's MannWhitneyClassifier at confLevel 0.98; allowed increases as
#: Sluice's bounds, so all three judges are asked the same question.
FIXED_WINDOW_MIN = 60
FIXED_WINDOW_SWEEP_MIN = (60, 120, 240, 480)
MW_ONE_SIDED_ALPHA = 0.01  # the lower end of a two-sided 98% interval above 0
LATENCY_RATIO = 1.10
ERROR_INCREASE = 0.005

#: The Sluice stage: sequential gates at 95% (advance once "not worse" is established), sequential
#: triggers at 99% (roll back once "worse" is established), on the same effects.
LATENCY_METRIC = "e2e_latency_p99_seconds"  # vLLM's e2e histogram: the default catalog's evidence
ISTIO_LATENCY_METRIC = "latency_p99_ms"  # Istio's request duration histogram, in ms (--buckets istio, sluice)
GATE_CONFIDENCE, TRIGGER_CONFIDENCE = 0.95, 0.99
MIN_DURATION_MIN = 10  # like Flagger's 10 iterations of 1m
DEADLINE_MIN = 720  # 12h: the stage's progress deadline (hold and page): the simulated horizon
PASS_EVERY_MIN = 15
EVIDENCE_WINDOW_MIN = 5  # Metrics.window, Sluice's default

START = datetime(2026, 12, 1, tzinfo=UTC)
MODEL, STABLE_VERSION, CANDIDATE_VERSION = "chat-assistant", "1.2.0", "1.3.0"
STABLE_KEY, CANDIDATE_KEY = (MODEL, STABLE_VERSION), (MODEL, CANDIDATE_VERSION)


@dataclass
class Outcomes:
    """One judge's decisions on a set of rollouts: what, when (minutes) and after how many candidate requests."""

    decision: np.ndarray
    minutes: np.ndarray
    requests: np.ndarray

    @staticmethod
    def empty(n: int) -> Outcomes:
        return Outcomes(np.zeros(n, dtype=np.int8), np.full(n, np.nan), np.full(n, np.nan))


def _joined(parts: Iterable[Any]) -> Any:
    """Chunks of per-rollout arrays (`Outcomes`, `Bound`), concatenated in rollout order."""
    parts = list(parts)
    return type(parts[0])(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(parts[0])))


def _served_until(h: Histories, minutes: np.ndarray) -> np.ndarray:
    """Candidate requests in the first `minutes` minutes of each rollout (NaN stays NaN)."""
    cumulative = np.concatenate([np.zeros((h.rollouts, 1)), np.cumsum(h.requests[:, :, CANDIDATE], axis=1)], axis=1)
    index = np.nan_to_num(minutes, nan=0).astype(np.int64)
    return np.where(np.isnan(minutes), np.nan, cumulative[np.arange(h.rollouts), np.minimum(index, h.minutes)])


# --- (a) threshold, as Flagger applies it ----------------------------------------------------------

def threshold_judge(h: Histories, max_latency: float, max_error_rate: float = THRESHOLD_MAX_ERROR_RATE) -> Outcomes:
    """Every minute: the candidate's p99 and 5xx share over that minute against the maxima; no
    requests is a failed check (Flagger: "no values found"). Rollback at THRESHOLD_FAILED_CHECKS
    failures, advance after THRESHOLD_ITERATIONS passes, whichever comes first."""
    served = h.requests[:, :, CANDIDATE]
    p99 = histogram_quantile(0.99, h.boundaries, h.buckets[:, :, CANDIDATE, :])
    with np.errstate(invalid="ignore", divide="ignore"):
        error_rate = h.errors[:, :, CANDIDATE] / served
    failed = (served == 0) | (p99 > max_latency) | (error_rate > max_error_rate)
    failures, passes = np.cumsum(failed, axis=1), np.cumsum(~failed, axis=1)
    out = Outcomes.empty(h.rollouts)
    rollback_at = _first(failures >= THRESHOLD_FAILED_CHECKS)
    advance_at = _first(passes >= THRESHOLD_ITERATIONS)
    rolls = rollback_at < advance_at
    decided = np.minimum(rollback_at, advance_at) < h.minutes
    out.decision[decided] = np.where(rolls, ROLLBACK, ADVANCE)[decided]
    out.minutes[decided] = np.minimum(rollback_at, advance_at)[decided] + 1.0
    out.requests = _served_until(h, out.minutes)
    return out


def _first(mask: np.ndarray) -> np.ndarray:
    """Index of the first True along axis 1, or the length where there is none."""
    return np.where(mask.any(axis=1), np.argmax(mask, axis=1), mask.shape[1])


# --- (b) fixed window, as Kayenta applies it -------------------------------------------------------

def per_minute_metrics(h: Histories) -> tuple[np.ndarray, np.ndarray]:
    """(p99, 5xx share) per rollout, minute and version; NaN where a minute had no requests."""
    p99 = histogram_quantile(0.99, h.boundaries, h.buckets)
    with np.errstate(invalid="ignore", divide="ignore"):
        return p99, h.errors / h.requests


def mann_whitney_high(candidate: np.ndarray, stable: np.ndarray, *, ratio: float | None = None,
                      increase: float | None = None) -> bool:
    """Kayenta's "High": candidate significantly above stable (Mann-Whitney) by more than the
    allowed effect. NaN minutes are removed (Kayenta's nanStrategy remove); no data: not High."""
    from scipy.stats import mannwhitneyu

    candidate, stable = candidate[~np.isnan(candidate)], stable[~np.isnan(stable)]
    if len(candidate) == 0 or len(stable) == 0 or np.array_equal(np.sort(candidate), np.sort(stable)):
        return False
    if np.unique(np.concatenate([candidate, stable])).size == 1:
        return False
    p_value = mannwhitneyu(candidate, stable, alternative="greater").pvalue
    if p_value >= MW_ONE_SIDED_ALPHA:
        return False
    if ratio is not None:
        mean_stable = stable.mean()
        return bool(mean_stable <= 0 or candidate.mean() / mean_stable > ratio)
    return bool(candidate.mean() - stable.mean() > (increase or 0.0))


def fixed_window_judge(h: Histories, window_min: int, metrics: tuple[np.ndarray, np.ndarray] | None = None
                       ) -> Outcomes:
    """At the end of the window: roll back if any metric is High, otherwise advance."""
    p99, error_rate = metrics if metrics is not None else per_minute_metrics(h)
    out = Outcomes.empty(h.rollouts)
    if window_min > h.minutes:
        return out
    for i in range(h.rollouts):
        window = slice(0, window_min)
        high = (mann_whitney_high(p99[i, window, CANDIDATE], p99[i, window, STABLE], ratio=LATENCY_RATIO)
                or mann_whitney_high(error_rate[i, window, CANDIDATE], error_rate[i, window, STABLE],
                                     increase=ERROR_INCREASE))
        out.decision[i] = ROLLBACK if high else ADVANCE
        out.minutes[i] = window_min
    out.requests = _served_until(h, out.minutes)
    return out


# --- (c) Sluice: the reconciler's own decide ------------------------------------------------------

@dataclass(frozen=True)
class SluiceSetup:
    """What `decide` needs besides the observations: the environment's metrics, the release per
    canary weight, the deployment pointers."""

    metrics: Any
    releases: dict[int, Any]
    deployment: Any
    latency_metric: str = LATENCY_METRIC
    latency_unit_s: float = 1.0  # seconds per unit of the metric's bucket boundaries (0.001: ms)


def latency_metric(buckets: str) -> tuple[str, float]:
    """The catalog metric that reads a bucket set's histogram, and its unit in seconds: Istio's
    buckets are the mesh's `latency_p99_ms`, vLLM's its own e2e histogram."""
    return (ISTIO_LATENCY_METRIC, 0.001) if buckets in ISTIO_HISTOGRAMS else (LATENCY_METRIC, 1.0)


def sluice_stage(weight: int, metric: str = LATENCY_METRIC) -> dict[str, Any]:
    """The stage under test, in the release format (docs/formats.md)."""
    return {
        "weight": weight, "min_duration": f"{MIN_DURATION_MIN}m", "progress_deadline": f"{DEADLINE_MIN}m",
        "gates": [
            {"metric": metric, "max_ratio_to_stable": LATENCY_RATIO, "confidence": GATE_CONFIDENCE},
            {"metric": "error_rate", "max_increase_over_stable": ERROR_INCREASE, "confidence": GATE_CONFIDENCE},
        ],
    }


def sluice_triggers(metric: str = LATENCY_METRIC) -> list[dict[str, Any]]:
    return [
        {"metric": metric, "max_ratio_to_stable": LATENCY_RATIO, "confidence": TRIGGER_CONFIDENCE},
        {"metric": "error_rate", "max_increase_over_stable": ERROR_INCREASE, "confidence": TRIGGER_CONFIDENCE},
    ]


@cache
def sluice_setup(weights: tuple[int, ...], buckets: str = "vllm") -> SluiceSetup:
    """The example release (releases/chat-assistant/1.3.0.yaml) with the stage under test, then 100%."""
    from reconciler.adapters.repo_loader import load_repository
    from reconciler.core.environment import Metrics, ModelDeployment
    from reconciler.core.release import Rollout

    loaded = load_repository(ROOT)
    example = loaded.repository.release(MODEL, CANDIDATE_VERSION)
    if example is None:
        raise SystemExit(f"bench_judge: the example release {MODEL} {CANDIDATE_VERSION} is missing from {ROOT}")
    metric, unit_s = latency_metric(buckets)
    releases = {w: example.model_copy(update={"rollout": Rollout(
        strategy="canary", stages=[sluice_stage(w, metric), {"weight": 100}], rollback_triggers=sluice_triggers(metric),
        on_progress_deadline="hold")}) for w in weights}
    metrics = Metrics(prometheus_url="http://prometheus.monitoring:9090",
                      window=timedelta(minutes=EVIDENCE_WINDOW_MIN))
    deployment = ModelDeployment(stable=STABLE_VERSION, candidate=CANDIDATE_VERSION, stage=0,
                                 stage_started_at=START, pool="a100")
    return SluiceSetup(metrics, releases, deployment, metric, unit_s)


class ObservationBuilder:
    """`Observations` of one simulated rollout as Prometheus would answer at minute m: one range
    query per evidence query with step = window, ending at the pass (the adapter's contract)."""

    def __init__(self, h: Histories, i: int, window: int, metric: str = LATENCY_METRIC, unit_s: float = 1.0) -> None:
        from reconciler.core.observations import VersionCounts

        self._counts = VersionCounts
        self.window = window
        self.metric = metric
        self.boundaries = tuple(b / unit_s for b in h.boundaries)  # in the metric's unit (Istio: ms)
        zero = np.zeros((1, 2))
        self.requests = np.concatenate([zero, np.cumsum(h.requests[i], axis=0)])  # (T+1, 2): before minute j
        self.errors = np.concatenate([zero, np.cumsum(h.errors[i], axis=0)])
        self.buckets = np.concatenate([np.zeros((1, 2, h.buckets.shape[-1])), np.cumsum(h.buckets[i], axis=0)])
        self._points: dict[int, tuple] = {}

    def _window(self, end: int) -> tuple:
        """Both versions' counts over the window ending at minute `end` (the window that straddles
        the stage start counts only what the stage served: there is no earlier traffic here)."""
        found = self._points.get(end)
        if found is None:
            begin = max(end - self.window, 0)
            requests = self.requests[end] - self.requests[begin]
            errors = self.errors[end] - self.errors[begin]
            buckets = np.cumsum(self.buckets[end] - self.buckets[begin], axis=-1)
            at = START + timedelta(minutes=end)
            found = tuple(
                (at, float(requests[v]), self._counts(trials=float(requests[v]), events=float(errors[v])),
                 self._counts(buckets=tuple(zip((*self.boundaries, float("inf")), buckets[v].astype(float).tolist()))),
                 buckets[v])
                for v in (STABLE, CANDIDATE))
            self._points[end] = found
        return found

    def at(self, minute: int) -> Any:
        from reconciler.core.observations import EvidenceHistory, MetricValues, Observations, RequestHistory

        ends = list(range(minute, 0, -self.window))[::-1]
        windows = [self._window(end) for end in ends]
        keys = (STABLE_KEY, CANDIDATE_KEY)
        latest = windows[-1]
        p99 = {keys[v]: float(value) for v in (STABLE, CANDIDATE)
               if not np.isnan(value := histogram_quantile(0.99, self.boundaries, np.diff(latest[v][4], prepend=0)))}
        error_rate = {keys[v]: latest[v][2].events / latest[v][1] for v in (STABLE, CANDIDATE) if latest[v][1] > 0}
        now = START + timedelta(minutes=minute)
        return Observations(
            at=now,
            metrics={self.metric: MetricValues(self.metric, p99),
                     "error_rate": MetricValues("error_rate", error_rate)},
            requests=RequestHistory({keys[v]: tuple((w[v][0], w[v][1]) for w in windows) for v in (STABLE, CANDIDATE)}),
            last_sample={key: now - timedelta(seconds=15) for key in keys},  # both scraped every 15 s
            evidence={
                self.metric: EvidenceHistory("histogram", {keys[v]: tuple((w[v][0], w[v][3]) for w in windows)
                                                              for v in (STABLE, CANDIDATE)}),
                "error_rate": EvidenceHistory("proportion", {keys[v]: tuple((w[v][0], w[v][2]) for w in windows)
                                                             for v in (STABLE, CANDIDATE)}),
            },
            queries=6)


@contextmanager
def without_planning_reasons() -> Iterator[None]:
    """`decide` without the "about N more candidate requests would show it" sentence of a held
    gate: `requests_needed` answers None (decide then says no amount of traffic would; the action
    is the same). Planning re-solves the test by bisection on every held pass and took about half
    of a pass's time here; `--skip-plan-reasons` uses it (tests/unit/test_bench_judge.py checks
    that the decisions are the same)."""
    import reconciler.core.decide as decide_module

    real = decide_module.requests_needed
    decide_module.requests_needed = lambda *args, **kwargs: None
    try:
        yield
    finally:
        decide_module.requests_needed = real


def sluice_rollout(h: Histories, i: int, setup: SluiceSetup, pass_every: int, keep: bool = False
                   ) -> tuple[int, float, list[Any]]:
    """Run `decide` every `pass_every` minutes on rollout i until it rolls back, advances, or the
    stage's progress deadline pages (undecided). Returns (decision, minute, decisions kept)."""
    from reconciler.core import decide as decide_module
    from reconciler.core.decision import Action

    decide = decide_module.decide

    weight = int(round(h.weight[i] * 100))
    release = setup.releases[weight]
    builder = ObservationBuilder(h, i, EVIDENCE_WINDOW_MIN, setup.latency_metric, setup.latency_unit_s)
    kept = []
    for minute in range(pass_every, h.minutes + 1, pass_every):
        now = START + timedelta(minutes=minute)
        decisions = decide("bench", MODEL, setup.deployment, release, setup.metrics, builder.at(minute), now)
        decision = decisions[0]
        if keep:
            kept.append(decision)
        if decision.action is Action.ROLLBACK:
            return ROLLBACK, float(minute), kept
        if decision.action in (Action.ADVANCE, Action.PROMOTE):
            return ADVANCE, float(minute), kept
        if decision.action is Action.PAGE:  # past the progress deadline, still inconclusive
            return UNDECIDED, np.nan, kept
    return UNDECIDED, np.nan, kept


def sluice_judge(h: Histories, pass_every: int, plan_reasons: bool = True, buckets: str = "vllm") -> Outcomes:
    setup = sluice_setup(tuple(sorted({int(round(w * 100)) for w in h.weight})), buckets)
    out = Outcomes.empty(h.rollouts)
    with nullcontext() if plan_reasons else without_planning_reasons():
        for i in range(h.rollouts):
            out.decision[i], out.minutes[i], _ = sluice_rollout(h, i, setup, pass_every)
    out.requests = _served_until(h, out.minutes)
    return out


# --- (d) a bound for any valid judge: a clairvoyant's one look at the latency ---------------------
#
# "p99 worse than 1.10x stable's" is "more than 1% of the candidate's requests above 1.10x stable's
# p99". Knowing stable's p99 exactly, the count of requests above it is all a test needs, and the
# randomized binomial test on it is uniformly most powerful. A sequential judge stopped at minute t
# is a level-alpha test on the data up to t (and reads less: buckets, stable's p99 unknown), so its
# chance of a correct decision by t is at most this test's power at the candidate's requests by t.
# "Valid" as Sluice's judge is: an advance guarantees "not worse" at 95%, a rollback "worse" at 99%,
# whatever the traffic (the level holds given the request counts). The threshold and fixed-window
# judges are not: they advance or roll back by default, so they can beat the bound, being wrong.

ORACLE = "oracle"
TAIL_SHARE = 0.01  # 1 - q of the p99


@dataclass
class Bound:
    """The oracle per rollout and minute t (the end of minute t): the power of the best valid test
    on the candidate's requests so far, and those requests."""

    power: np.ndarray  # (R, T)
    requests: np.ndarray  # (R, T)


def latency_question(condition: Condition) -> bool | None:
    """Whether a correct decision needs "latency worse" (True: roll back) or "not worse" (False:
    advance) established; None where no latency decision is the correct one (a 5xx regression is
    rolled back for its errors; at exactly the tolerance neither decision is wrong)."""
    if condition.error_increase or condition.latency_factor == LATENCY_RATIO:
        return None
    return condition.regression


def tail_share(table: LatencyTable, latency_factor: float) -> float:
    """p*: the candidate's true share of requests above 1.10x stable's true p99. In every minute both
    versions' latencies are the table's sample times one multiplier (load, an incident), the
    candidate's times its factor too (traffic_sim.simulate), so p* is the same in every minute."""
    threshold = LATENCY_RATIO * table.quantile(1 - TAIL_SHARE) / latency_factor
    return 1.0 - np.searchsorted(table.sample, threshold, side="right") / len(table.sample)


def ump_power(n: np.ndarray, share: float, null: float, alpha: float) -> np.ndarray:
    """Power at a true `share` of the randomized exact binomial test of H0: share <= `null` on `n`
    requests (reject above the critical count, and at it with the probability that makes the size
    exactly alpha): uniformly most powerful (monotone likelihood ratio), so no level-alpha test on
    `n` requests has more."""
    from scipy.stats import binom

    critical = binom.isf(alpha, n, null)
    at_critical = (alpha - binom.sf(critical, n, null)) / binom.pmf(critical, n, null)
    return binom.sf(critical, n, share) + at_critical * binom.pmf(critical, n, share)


def oracle_alpha(worse: bool) -> float:
    """The release's levels: "worse" at 99% (a trigger), "not worse" at 95% (a gate)."""
    return round(1 - (TRIGGER_CONFIDENCE if worse else GATE_CONFIDENCE), 12)


def oracle_power(n: np.ndarray, share: float, worse: bool) -> np.ndarray:
    """The test of "worse" counts the requests above the threshold (against 1%), the test of "not
    worse" the ones at or below it (against 99%): the same test, mirrored."""
    if worse:
        return ump_power(n, share, TAIL_SHARE, oracle_alpha(worse))
    return ump_power(n, 1 - share, 1 - TAIL_SHARE, oracle_alpha(worse))


def oracle_bound(h: Histories, table: LatencyTable) -> Bound | None:
    """The oracle on these rollouts (None where no latency decision is correct): analytic, on the
    candidate's request counts of the same histories the judges read."""
    worse = latency_question(h.condition)
    if worse is None:
        return None
    served = np.cumsum(h.requests[:, :, CANDIDATE], axis=1).astype(float)
    return Bound(oracle_power(served, tail_share(table, h.condition.latency_factor), worse), served)


# --- running -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    rollouts: int = 1000
    conditions: tuple[str, ...] = tuple(CONDITIONS)
    judges: tuple[str, ...] = JUDGES
    pass_every: int = PASS_EVERY_MIN
    window: int = FIXED_WINDOW_MIN
    sweep: tuple[int, ...] = FIXED_WINDOW_SWEEP_MIN
    threshold_latency: float = THRESHOLD_LATENCY_OVER_BASELINE
    plan_reasons: bool = True
    oracle: bool = True
    buckets: str = "sluice"
    seed: int = 0
    chunk: int = 50
    workers: int = 2
    model: TrafficModel = field(default_factory=TrafficModel)


@cache
def latency_table(buckets: str, seed: int, model: TrafficModel) -> LatencyTable:
    return LatencyTable(model, BUCKETS[buckets], seed)


def run_chunk(settings: Settings, condition: str, chunk: int) -> dict[str, Outcomes | Bound]:
    """One chunk of rollouts of one condition, simulated from its own seed (so results do not
    depend on how chunks are spread over workers), judged by every judge."""
    table = latency_table(settings.buckets, settings.seed, settings.model)
    size = min(settings.chunk, settings.rollouts - chunk * settings.chunk)
    rng = np.random.default_rng([settings.seed, list(CONDITIONS).index(condition), chunk])
    h = simulate(CONDITIONS[condition], size, DEADLINE_MIN, table, settings.model, rng)
    results: dict[str, Outcomes | Bound] = {}
    if "threshold" in settings.judges:
        results["threshold"] = threshold_judge(h, settings.threshold_latency * table.quantile(0.99))
    if "fixed_window" in settings.judges:
        metrics = per_minute_metrics(h)
        results["fixed_window"] = fixed_window_judge(h, settings.window, metrics)
        for window in settings.sweep:
            if window != settings.window:
                results[f"fixed_window_{window}m"] = fixed_window_judge(h, window, metrics)
    if "sluice" in settings.judges:
        results["sluice"] = sluice_judge(h, settings.pass_every, settings.plan_reasons, settings.buckets)
    if settings.oracle and (bound := oracle_bound(h, table)) is not None:
        results[ORACLE] = bound
    return results


def run(settings: Settings, progress: bool = True) -> dict[str, dict[str, Any]]:
    """{judge: {condition: Outcomes}} over every chunk of every condition, and {ORACLE: {condition:
    Bound}} for the conditions it applies to."""
    jobs = [(c, k) for c in settings.conditions for k in range(-(-settings.rollouts // settings.chunk))]
    parts: dict[tuple[str, int], dict[str, Outcomes | Bound]] = {}
    started = time.perf_counter()
    if settings.workers > 1:
        with ProcessPoolExecutor(settings.workers) as pool:
            futures = {job: pool.submit(run_chunk, settings, *job) for job in jobs}
            for n, (job, future) in enumerate(futures.items(), 1):
                parts[job] = future.result()
                _progress(progress, n, len(jobs), started)
    else:
        for n, job in enumerate(jobs, 1):
            parts[job] = run_chunk(settings, *job)
            _progress(progress, n, len(jobs), started)
    names = dict.fromkeys(name for part in parts.values() for name in part)
    return {name: {c: _joined(parts[(c, k)][name] for (cc, k) in jobs if cc == c)
                   for c in settings.conditions if name in parts[(c, 0)]} for name in names}


def _progress(enabled: bool, done: int, total: int, started: float) -> None:
    if enabled:
        print(f"\r  {done}/{total} chunks, {time.perf_counter() - started:.0f} s", end="", file=sys.stderr, flush=True)
        if done == total:
            print(file=sys.stderr)


# --- figures -----------------------------------------------------------------------------------

def summary(outcomes: Outcomes, condition: Condition) -> dict[str, float | int | None]:
    """The issue's four figures (and requests, shares) for one judge under one condition."""
    n = len(outcomes.decision)
    rolled = float(np.mean(outcomes.decision == ROLLBACK)) if n else None
    decided = outcomes.decision != UNDECIDED
    correct = outcomes.decision == (ROLLBACK if condition.regression else ADVANCE)

    def pct(values: np.ndarray, q: float, scale: float = 1.0) -> float | None:
        return float(np.percentile(values, q) * scale) if len(values) else None

    return {
        "false_rollback_rate": None if condition.regression else rolled,
        "detection_rate": rolled if condition.regression else None,
        "median_decision_s": pct(outcomes.minutes[decided], 50, 60),
        "p95_decision_s": pct(outcomes.minutes[decided], 95, 60),
        "median_decision_requests": pct(outcomes.requests[decided], 50),
        "p95_decision_requests": pct(outcomes.requests[decided], 95),
        "median_correct_decision_s": pct(outcomes.minutes[correct], 50, 60),
        "median_correct_decision_all_s": _median_never_if_wrong(outcomes.minutes, correct),
        "correct_rate": float(np.mean(correct)) if n else None,
        "advance_rate": float(np.mean(outcomes.decision == ADVANCE)) if n else None,
        "undecided_rate": float(np.mean(~decided)) if n else None,
        "rollouts": n,
    }


def _median_never_if_wrong(minutes: np.ndarray, correct: np.ndarray) -> float | None:
    """Median time to a correct decision over all rollouts, a wrong or missing decision counting as
    never: a judge that is fast but often wrong gets no credit for its speed. None (JSON null) when
    half or more of the rollouts never get a correct decision."""
    if not len(minutes):
        return None
    median = float(np.median(np.where(correct, minutes * 60.0, math.inf)))
    return median if math.isfinite(median) else None


def figures(results: dict[str, dict[str, Outcomes]]) -> dict[str, dict[str, dict[str, Any]]]:
    return {judge: {c: summary(o, CONDITIONS[c]) for c, o in by_condition.items()}
            for judge, by_condition in results.items()}


def bound_summary(bound: Bound, condition: Condition, table: LatencyTable, window: int) -> dict[str, Any]:
    """The oracle's figures. Its mean power over the rollouts at minute t is the most any valid
    judge's expected share of correct decisions by t can be, so the first minute it reaches 1/2 is
    a lower bound on every valid judge's median time to a correct decision (wrong = never), and its
    power at half the fixed window bounds the share any valid judge gets right by then."""
    worse = latency_question(condition)
    mean = bound.power.mean(axis=0)
    reached = np.flatnonzero(mean >= 0.5)
    minute = int(reached[0]) + 1 if len(reached) else None
    return {
        "question": "worse" if worse else "not worse",
        "alpha": oracle_alpha(worse),
        "tail_share": tail_share(table, condition.latency_factor),
        "null_tail_share": TAIL_SHARE,
        "mean_power_at_s": {str(m * 60): float(mean[m - 1]) for m in (window // 2, window) if 0 < m <= len(mean)},
        "median_correct_decision_all_s": None if minute is None else minute * 60.0,
        "median_decision_requests": None if minute is None else float(np.median(bound.requests[:, minute - 1])),
        "rollouts": len(bound.power),
    }


def _rate(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f}%"


def _time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes = seconds / 60
    return f"{minutes:.0f}m" if minutes < 120 else f"{minutes / 60:.1f}h"


def _count(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def table(figs: dict[str, dict[str, dict[str, Any]]], judges: Iterable[str]) -> str:
    """The measured table, judges side by side per condition (Markdown)."""
    judges = [j for j in judges if j in figs]
    head = ("| condition | " + " | ".join(f"{j} rollback" for j in judges) + " | "
            + " | ".join(f"{j} median / p95 time (requests)" for j in judges) + " | sluice undecided |")
    lines = [head, "|" + "---|" * (2 * len(judges) + 2)]
    for c in next(iter(figs.values())):
        condition = CONDITIONS[c]
        kind = "detected" if condition.regression else "false"
        cells = []
        for j in judges:
            f = figs[j][c]
            cells.append(f"{_rate(f['detection_rate'] if condition.regression else f['false_rollback_rate'])} {kind}")
        for j in judges:
            f = figs[j][c]
            cells.append(f"{_time(f['median_decision_s'])} / {_time(f['p95_decision_s'])} "
                         f"({_count(f['median_decision_requests'])} / {_count(f['p95_decision_requests'])})")
        undecided = _rate(figs["sluice"][c]["undecided_rate"]) if "sluice" in figs else "-"
        lines.append(f"| {c} | " + " | ".join(cells) + f" | {undecided} |")
    return "\n".join(lines)


def fair_time_table(figs: dict[str, dict[str, dict[str, Any]]], judges: Iterable[str]) -> str:
    """Median time to a correct decision over all rollouts, wrong or undecided counting as never."""
    judges = [j for j in judges if j in figs]
    lines = ["| condition | " + " | ".join(f"{j} correct, median time (wrong = never)" for j in judges) + " |",
             "|---|" + "---|" * len(judges)]
    for c in next(iter(figs.values())):
        lines.append(f"| {c} | " + " | ".join(_correct(figs[j][c]) for j in judges) + " |")
    return "\n".join(lines)


def _correct(f: dict[str, Any]) -> str:
    median = f["median_correct_decision_all_s"]
    return f"{_rate(f['correct_rate'])}, {'never' if median is None else _time(median)}"


def bound_table(bounds: dict[str, dict[str, Any]], figs: dict[str, dict[str, dict[str, Any]]],
                judges: Iterable[str]) -> str:
    """The oracle beside each judge's median time to a correct decision (wrong = never)."""
    judges = [j for j in judges if j in figs]
    at = " / ".join(_time(float(s)) for s in next(iter(bounds.values()))["mean_power_at_s"])
    lines = [f"| condition | correct latency decision | p* | bound: mean power at {at} | bound: median time "
             "(requests) | " + " | ".join(f"{j} correct, median time" for j in judges) + " |",
             "|---|---|---|---|---|" + "---|" * len(judges)]
    for c, b in bounds.items():
        median = b["median_correct_decision_all_s"]
        lines.append(
            f"| {c} | {b['question']} at {1 - b['alpha']:.0%} | {b['tail_share']:.3%} | "
            + " / ".join(_rate(p) for p in b["mean_power_at_s"].values())
            + f" | {'never' if median is None else _time(median)} ({_count(b['median_decision_requests'])}) | "
            + " | ".join(_correct(figs[j][c]) for j in judges if c in figs[j]) + " |")
    return "\n".join(lines)


def sweep_table(figs: dict[str, dict[str, dict[str, Any]]], settings: Settings) -> str:
    lines = ["| fixed window | A/A false | incident false | latency_25 detected | errors_2pp detected |",
             "|---|---|---|---|---|"]
    for window in sorted(set(settings.sweep) | {settings.window}):
        name = "fixed_window" if window == settings.window else f"fixed_window_{window}m"
        if name not in figs:
            continue
        f = figs[name]
        lines.append(f"| {window}m | {_rate(f.get('aa', {}).get('false_rollback_rate'))} | "
                     f"{_rate(f.get('global_incident', {}).get('false_rollback_rate'))} | "
                     f"{_rate(f.get('latency_25', {}).get('detection_rate'))} | "
                     f"{_rate(f.get('errors_2pp', {}).get('detection_rate'))} |")
    return "\n".join(lines)


@dataclass(frozen=True)
class Target:
    name: str
    met: bool | None  # None: not measurable in this run
    detail: str


def targets(figs: dict[str, dict[str, dict[str, Any]]], settings: Settings,
            bounds: dict[str, dict[str, Any]] | None = None) -> list[Target]:
    """The issue's targets for Sluice's judge; a time target says what the oracle allows."""
    out: list[Target] = []
    s = figs.get("sluice")
    if s is None:
        return out

    def get(judge: str, condition: str, key: str) -> float | None:
        return figs.get(judge, {}).get(condition, {}).get(key)

    for c in ("aa", "global_incident"):
        rate = get("sluice", c, "false_rollback_rate")
        out.append(Target(f"false rollback <= 1% ({c})", None if rate is None else rate <= 0.01, _rate(rate)))
    for c in ("latency_25", "errors_2pp"):
        rate = get("sluice", c, "detection_rate")
        out.append(Target(f"detection >= 95% ({c})", None if rate is None else rate >= 0.95, _rate(rate)))

    # Median time to a correct decision vs the fixed-window judge's (the --window one, which
    # always decides at its end), where both roll back healthy candidates as rarely: A/A false
    # rollback rates within a point of each other, or the fixed window's worse.
    if "fixed_window" in figs:
        fixed = settings.window * 60
        a, b = get("sluice", "aa", "false_rollback_rate"), get("fixed_window", "aa", "false_rollback_rate")
        comparable = a is not None and b is not None and a <= b + 0.01
        for c in ("aa", "latency_25", "errors_2pp"):
            if c not in s:
                continue
            mine = get("sluice", c, "median_correct_decision_s")
            theirs = get("fixed_window", c, "detection_rate" if CONDITIONS[c].regression else "advance_rate")
            met = None if not comparable else mine is not None and mine <= 0.5 * fixed
            out.append(Target(f"median time to a correct decision <= 0.5x fixed window's ({c})", met,
                              f"Sluice {_time(mine)} vs fixed window {_time(fixed)} (which is right in "
                              f"{_rate(theirs)} of rollouts; A/A false rollbacks {_rate(a)} vs {_rate(b)})"
                              + _within_reach(bounds or {}, c, fixed / 2)))
    if "threshold" in figs:
        better = []
        for c in ("aa", "global_incident"):
            a, b = get("sluice", c, "false_rollback_rate"), get("threshold", c, "false_rollback_rate")
            if a is not None and b is not None:
                better.append((f"{c} false {_rate(a)} vs {_rate(b)}", a < b))
        for c in ("latency_25", "latency_50", "errors_2pp"):
            a, b = get("sluice", c, "detection_rate"), get("threshold", c, "detection_rate")
            if a is not None and b is not None:
                better.append((f"{c} detected {_rate(a)} vs {_rate(b)}", a > b))
        out.append(Target("better than threshold on both error kinds", all(ok for _, ok in better) if better else None,
                          "; ".join(text for text, _ in better)))
    return out


def _within_reach(bounds: dict[str, dict[str, Any]], condition: str, seconds: float) -> str:
    """"; any valid judge: right by 30m in at most 48.0% of rollouts (unreachable), median >= 33m"."""
    bound = bounds.get(condition)
    if bound is None:
        return ""
    parts = []
    power = bound["mean_power_at_s"].get(str(int(seconds)))
    if power is not None:
        unreachable = " (unreachable)" if power < 0.5 else ""
        parts.append(f"right by {_time(seconds)} in at most {_rate(power)} of rollouts{unreachable}")
    parts.append(f"median >= {_time(bound['median_correct_decision_all_s'])}")
    return "; any valid judge: " + ", ".join(parts)


def parse_minutes(text: str) -> int:
    text = text.strip()
    if text.endswith("h"):
        return int(float(text[:-1]) * 60)
    return int(float(text.removesuffix("m")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollouts", type=int, default=1000, help="rollouts per condition (default 1,000)")
    parser.add_argument("--json", type=Path, help="write {judge: {condition: {...}}} here")
    parser.add_argument("--oracle-json", type=Path,
                        help="write the oracle's bound here ({condition: {...}}; kept out of --json, whose "
                        "top-level keys are the judges)")
    parser.add_argument("--conditions", default=",".join(CONDITIONS), help="comma-separated subset")
    parser.add_argument("--judges", default=",".join(JUDGES), help="comma-separated subset")
    parser.add_argument("--pass-every", default=f"{PASS_EVERY_MIN}m", help="Sluice's pass interval (e.g. 1m, 5m, 10m)")
    parser.add_argument("--window", default=f"{FIXED_WINDOW_MIN}m", help="the fixed-window judge's window")
    parser.add_argument("--sweep", default=",".join(f"{w}m" for w in FIXED_WINDOW_SWEEP_MIN),
                        help="more fixed windows to compare with (the 0.5x target); empty: none")
    parser.add_argument("--threshold-latency", type=float, default=THRESHOLD_LATENCY_OVER_BASELINE,
                        help="the threshold judge's p99 maximum, x stable's long-run p99 (default 1.25)")
    parser.add_argument("--skip-plan-reasons", dest="plan_reasons", action="store_false",
                        help="faster: leave out the 'about N more requests' sentence decide plans for a held gate "
                        "(requests_needed answers None; the same decisions, tested)")
    parser.add_argument("--no-oracle", dest="oracle", action="store_false",
                        help="leave out the bound no valid judge can beat (analytic, adds about a second)")
    parser.add_argument("--buckets", choices=sorted(BUCKETS), default="sluice",
                        help="latency histogram boundaries: sluice (the Istio buckets Sluice sets on its serving "
                        "pods, the default) or istio (Istio's defaults), both judged as latency_p99_ms, or vllm "
                        "(vLLM's e2e histogram, judged as e2e_latency_p99_seconds)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--chunk", type=int, default=50, help="rollouts per unit of work (and per seed)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    conditions = tuple(c for c in args.conditions.split(",") if c)
    judges = tuple(j for j in args.judges.split(",") if j)
    unknown = [c for c in conditions if c not in CONDITIONS] + [j for j in judges if j not in JUDGES]
    if unknown:
        parser.error(f"unknown condition or judge: {', '.join(unknown)}")
    settings = Settings(rollouts=args.rollouts, conditions=conditions, judges=judges,
                        pass_every=parse_minutes(args.pass_every), window=parse_minutes(args.window),
                        sweep=tuple(parse_minutes(w) for w in args.sweep.split(",") if w),
                        threshold_latency=args.threshold_latency, plan_reasons=args.plan_reasons,
                        oracle=args.oracle, buckets=args.buckets, seed=args.seed, chunk=args.chunk,
                        workers=max(1, args.workers))
    table_ = latency_table(settings.buckets, settings.seed, settings.model)
    print(f"bench_judge: {settings.rollouts:,} rollouts x {len(conditions)} conditions, horizon {DEADLINE_MIN}m, "
          f"Sluice passes every {settings.pass_every}m, fixed window {settings.window}m, {settings.buckets} buckets, "
          f"seed {settings.seed}, {settings.workers} workers")
    print(f"  latency at nominal load: p50 {table_.quantile(0.5):.1f} s, p99 {table_.quantile(0.99):.1f} s; "
          f"threshold judge max p99 {settings.threshold_latency * table_.quantile(0.99):.1f} s, "
          f"max 5xx {THRESHOLD_MAX_ERROR_RATE:.0%}")
    started = time.perf_counter()
    results = run(settings)
    elapsed = time.perf_counter() - started
    bounds = {c: bound_summary(b, CONDITIONS[c], table_, settings.window) for c, b in results.pop(ORACLE, {}).items()}
    figs = figures(results)
    print()
    print(table(figs, JUDGES))
    print()
    print(fair_time_table(figs, JUDGES))
    if bounds:
        print("\nA bound no valid judge can beat (the oracle: one look with the most powerful test, "
              "knowing stable's p99):")
        print(bound_table(bounds, figs, JUDGES))
    if any(name.startswith("fixed_window_") for name in figs):
        print()
        print(sweep_table(figs, settings))
    found = targets(figs, settings, bounds)
    if found:
        print("\nTargets for Sluice's judge:")
        for t in found:
            status = "PASS" if t.met else "n/a " if t.met is None else "MISS"
            print(f"  {status}  {t.name}: {t.detail}")
    print(f"\n{elapsed:.0f} s on {settings.workers} workers, Python {platform.python_version()}, "
          f"numpy {np.__version__}")
    if args.json:
        args.json.write_text(json.dumps({j: figs[j] for j in JUDGES if j in figs}, indent=2) + "\n")
    if args.oracle_json and bounds:
        args.oracle_json.write_text(json.dumps(bounds, indent=2) + "\n")
    return 1 if args.strict and any(t.met is False for t in found) else 0


if __name__ == "__main__":
    raise SystemExit(main())
