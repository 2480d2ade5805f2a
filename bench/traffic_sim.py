"""Simulated LLM serving traffic for one canary stage: what Prometheus would hold per minute.

Used by bench/bench_judge.py. Every rollout is one canary stage of a 70B chat model: the stable
and the candidate serve over the same clock, the candidate at `weight` (1, 2 or 5%) of the
model's traffic, picked per request (Istio's weighted routing). Per simulated minute and version
it yields what the reconciler's queries would read: requests, 5xx responses and the latency
histogram's bucket counts (vLLM's `vllm:e2e_request_latency_seconds` buckets by default).

The model (every number is a `TrafficModel` field; bench/README.md says why each):

- Rate: the model serves `base_rps` requests per second (log-uniform per rollout), times a
  diurnal wave (sine, +-`diurnal_amplitude`, random phase) and bursts (a batch client or a
  retry storm: about one per `burst_every_min`, lasting 5-20 minutes at 1.5-3x the rate).
- Latency per request (output-length driven): time to first token (log-normal body; with
  probability `stall_probability` a queueing or preemption stall with a Pareto tail) plus output
  tokens x time per output token. Output tokens are log-normal, capped at `max_tokens`. The whole
  latency is scaled by the load (more requests, bigger batches, slower decoding) by
  (rate / mean rate) ** `load_latency_exponent`, for both versions alike.
- Errors: a 5xx share of `base_error_rate` that grows with load squared (overload: timeouts,
  rejected requests), and pod restarts: every pod restarts about once per `restart_every_h`,
  and for `restart_minutes` 10% of its share of its version's requests fail. The canary runs
  `canary_pods` pods and stable (1 - weight) / weight times as many, so both versions lose the
  same share of requests on average, but the canary's losses come in rare, large clumps.
- Conditions: the candidate's latency x (1 + effect), or its 5xx share + effect; a global
  incident degrades both versions exactly alike for 20-60 minutes from within the stage's first
  10 (latency x1.8, 5xx +5 pp), so it falls inside every judge's analysis.

Counts are drawn per minute, not per request: each minute's latencies are a multinomial draw
over the buckets with probabilities from the exact per-request model (a sorted sample of
`sample_size` requests, scaled by the minute's latency multiplier). Seeded and vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reconciler.core.serving_manifests import SERVING_LATENCY_BUCKETS_MS

#: vLLM's `vllm:e2e_request_latency_seconds` buckets (vllm/engine/metrics.py): made for LLM
#: latencies, 10 buckets between 5 s and 120 s where a 70B model's long answers end.
VLLM_E2E_BUCKETS_S: tuple[float, ...] = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
                                         60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)
#: Istio's default `istio_request_duration_milliseconds` buckets, in seconds: 30 s, 60 s, then 300 s,
#: so a p99 near a minute is interpolated across a 240 s bucket (`--buckets istio` shows the cost).
ISTIO_BUCKETS_S: tuple[float, ...] = tuple(ms / 1000 for ms in (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000))
#: The Istio buckets Sluice gives every serving pod (reconciler/core/serving_manifests.py), in
#: seconds: about 15% apart from 125 ms to 256 s (`--buckets sluice`).
SLUICE_BUCKETS_S: tuple[float, ...] = tuple(ms / 1000 for ms in SERVING_LATENCY_BUCKETS_MS)
BUCKETS = {"vllm": VLLM_E2E_BUCKETS_S, "istio": ISTIO_BUCKETS_S, "sluice": SLUICE_BUCKETS_S}
#: Which proxy or server records each bucket set: the release judges that one's catalog metric.
ISTIO_HISTOGRAMS = frozenset({"istio", "sluice"})

STABLE, CANDIDATE = 0, 1


@dataclass(frozen=True)
class TrafficModel:
    """The traffic of a 70B chat model (bench/README.md: the reasons for each value)."""

    rps_low: float = 20.0  # the model's mean requests per second, log-uniform per rollout between these
    rps_high: float = 100.0
    weights: tuple[float, ...] = (0.01, 0.02, 0.05)  # the canary's share, one per rollout
    diurnal_amplitude: float = 0.4
    burst_every_min: float = 180.0
    ttft_median_s: float = 0.35
    ttft_sigma: float = 0.5
    stall_probability: float = 0.02  # queueing / preemption: Pareto tail on the first token
    stall_scale_s: float = 1.0
    stall_shape: float = 1.5
    tokens_median: float = 220.0
    tokens_sigma: float = 0.9
    max_tokens: int = 2048
    tpot_median_s: float = 0.030
    tpot_sigma: float = 0.2
    load_latency_exponent: float = 0.3
    base_error_rate: float = 0.002
    restart_every_h: float = 48.0  # per pod: OOM, an NCCL error, a node drained
    restart_minutes: int = 2
    restart_error_rate: float = 0.10  # of the restarting pod's requests: the ones in flight
    canary_pods: int = 1  # stable runs (1 - weight) / weight times as many, sized to its traffic
    sample_size: int = 1_000_000


@dataclass(frozen=True)
class Condition:
    name: str
    latency_factor: float = 1.0  # the candidate's latency x this
    error_increase: float = 0.0  # the candidate's 5xx share + this
    incident: bool = False  # both versions degrade alike for a while
    regression: bool = False  # whether rolling back is the right decision

    @property
    def description(self) -> str:
        if self.incident:
            return "both versions degrade alike for 20-60 min (latency x1.8, 5xx +5 pp)"
        if self.latency_factor != 1.0:
            return f"candidate latency +{(self.latency_factor - 1) * 100:.0f}%"
        if self.error_increase:
            return f"candidate 5xx +{self.error_increase * 100:g} pp"
        return "candidate = stable (A/A)"


CONDITIONS: dict[str, Condition] = {c.name: c for c in (
    Condition("aa"),
    Condition("latency_10", latency_factor=1.10, regression=True),
    Condition("latency_25", latency_factor=1.25, regression=True),
    Condition("latency_50", latency_factor=1.50, regression=True),
    Condition("errors_0_5pp", error_increase=0.005, regression=True),
    Condition("errors_2pp", error_increase=0.02, regression=True),
    Condition("global_incident", incident=True),
)}
INCIDENT_LATENCY, INCIDENT_ERRORS = 1.8, 0.05


def request_latencies(model: TrafficModel, rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` end-to-end latencies (seconds) at nominal load: first token, then the answer's tokens."""
    ttft = rng.lognormal(np.log(model.ttft_median_s), model.ttft_sigma, n)
    stalled = rng.random(n) < model.stall_probability
    ttft[stalled] += model.stall_scale_s * (1 + rng.pareto(model.stall_shape, int(stalled.sum())))
    tokens = np.minimum(np.ceil(rng.lognormal(np.log(model.tokens_median), model.tokens_sigma, n)), model.max_tokens)
    tpot = rng.lognormal(np.log(model.tpot_median_s), model.tpot_sigma, n)
    return ttft + tokens * tpot


class LatencyTable:
    """Bucket probabilities of the latency model scaled by any multiplier, on a fine log grid
    (0.05% steps between x0.4 and x6): one sorted sample, looked up, never redrawn per minute."""

    GRID_LOW, GRID_HIGH, GRID_STEPS = 0.4, 6.0, 5500

    def __init__(self, model: TrafficModel, boundaries: tuple[float, ...], seed: int) -> None:
        self.sample = np.sort(request_latencies(model, np.random.default_rng([seed, 1]), model.sample_size))
        self.boundaries = np.asarray(boundaries)
        self.grid = np.geomspace(self.GRID_LOW, self.GRID_HIGH, self.GRID_STEPS)
        scaled = self.boundaries[None, :] / self.grid[:, None]
        cdf = np.searchsorted(self.sample, scaled, side="right") / len(self.sample)
        self.probabilities = np.diff(np.concatenate([np.zeros((len(self.grid), 1)), cdf, np.ones((len(self.grid), 1))],
                                                    axis=1), axis=1)  # (grid, buckets + 1), +Inf last

    def index(self, multiplier: np.ndarray) -> np.ndarray:
        steps = np.log(multiplier / self.GRID_LOW) / np.log(self.GRID_HIGH / self.GRID_LOW) * (self.GRID_STEPS - 1)
        return np.clip(np.rint(steps), 0, self.GRID_STEPS - 1).astype(np.int64)

    def quantile(self, q: float, multiplier: float = 1.0) -> float:
        """The true q-quantile of the latency at a multiplier (large sample)."""
        return float(np.quantile(self.sample, q) * multiplier)


@dataclass
class Histories:
    """Per rollout, per simulated minute, per version (STABLE, CANDIDATE): what Prometheus holds."""

    condition: Condition
    boundaries: tuple[float, ...]
    weight: np.ndarray  # (R,) the candidate's share
    requests: np.ndarray  # (R, T, 2)
    errors: np.ndarray  # (R, T, 2) 5xx responses
    buckets: np.ndarray  # (R, T, 2, K + 1) requests per bucket (not cumulative), +Inf last

    @property
    def rollouts(self) -> int:
        return self.requests.shape[0]

    @property
    def minutes(self) -> int:
        return self.requests.shape[1]


def simulate(condition: Condition, rollouts: int, minutes: int, table: LatencyTable, model: TrafficModel,
             rng: np.random.Generator) -> Histories:
    """`rollouts` independent canary stages of `minutes` each, under `condition`."""
    r, t = rollouts, minutes
    base = np.exp(rng.uniform(np.log(model.rps_low), np.log(model.rps_high), r))
    weight = rng.choice(np.asarray(model.weights), r)
    phase = rng.uniform(0, 1, r)
    clock = np.arange(t) / 1440.0
    diurnal = 1 + model.diurnal_amplitude * np.sin(2 * np.pi * (clock[None, :] + phase[:, None]))
    burst = np.ones((r, t))
    left = np.zeros(r, dtype=np.int64)
    level = np.ones(r)
    starts = rng.random((r, t)) < 1 / model.burst_every_min
    lengths = rng.integers(5, 21, (r, t))
    levels = rng.uniform(1.5, 3.0, (r, t))
    for minute in range(t):  # a burst lasts its minutes; a new one may start when none runs
        begin = (left == 0) & starts[:, minute]
        left = np.where(begin, lengths[:, minute], left)
        level = np.where(begin, levels[:, minute], level)
        burst[:, minute] = np.where(left > 0, level, 1.0)
        left = np.maximum(left - 1, 0)
    load = diurnal * burst
    total = rng.poisson(base[:, None] * load * 60)
    candidate = rng.binomial(total, weight[:, None])
    requests = np.stack([total - candidate, candidate], axis=-1)

    latency = np.repeat((load ** model.load_latency_exponent)[:, :, None], 2, axis=2)
    error_rate = np.repeat((model.base_error_rate * load ** 2)[:, :, None], 2, axis=2)
    pods = np.stack([np.maximum(np.rint(model.canary_pods * (1 - weight) / weight), 1),
                     np.full(r, model.canary_pods)], axis=-1)  # (R, 2)
    restarts = rng.binomial(np.broadcast_to(pods[:, None, :].astype(np.int64), (r, t, 2)),
                            1 / (model.restart_every_h * 60))
    restarting = restarts.copy()
    for shift in range(1, model.restart_minutes):
        restarting[:, shift:, :] += restarts[:, :-shift, :]
    error_rate = error_rate + np.minimum(restarting / pods[:, None, :], 1.0) * model.restart_error_rate
    latency[:, :, CANDIDATE] *= condition.latency_factor
    error_rate[:, :, CANDIDATE] += condition.error_increase
    if condition.incident:
        begin = rng.integers(0, 11, r)  # early: while every judge is still judging
        length = rng.integers(20, 61, r)
        during = (np.arange(t)[None, :] >= begin[:, None]) & (np.arange(t)[None, :] < (begin + length)[:, None])
        latency *= np.where(during, INCIDENT_LATENCY, 1.0)[:, :, None]
        error_rate += (during * INCIDENT_ERRORS)[:, :, None]
    errors = rng.binomial(requests, np.minimum(error_rate, 1.0))
    buckets = rng.multinomial(requests, table.probabilities[table.index(latency)])
    return Histories(condition, tuple(table.boundaries.tolist()), weight, requests, errors, buckets)


def histogram_quantile(q: float, boundaries: tuple[float, ...], counts: np.ndarray) -> np.ndarray:
    """Prometheus' histogram_quantile over the last axis of non-cumulative bucket counts (+Inf
    last): linear inside the bucket that holds rank q x total, the first bucket starting at 0, the
    +Inf bucket answering the highest finite boundary; NaN where there are no requests.

    Example: boundaries (1, 2), counts (60, 39, 1), q 0.9 -> rank 90 falls in bucket (1, 2] at
    (90 - 60) / 39 of its width -> 1.769; at q 0.995 it falls in +Inf -> 2.
    """
    cumulative = np.cumsum(counts, axis=-1).astype(float)
    total = cumulative[..., -1]
    rank = q * total
    index = np.argmax(cumulative >= rank[..., None], axis=-1)
    upper_bounds = np.asarray(boundaries + (np.inf,))
    lower_bounds = np.concatenate([[0.0], upper_bounds[:-1]])
    below = np.take_along_axis(np.concatenate([np.zeros(cumulative.shape[:-1] + (1,)), cumulative[..., :-1]], axis=-1),
                               index[..., None], axis=-1)[..., 0]
    inside = np.take_along_axis(counts, index[..., None], axis=-1)[..., 0].astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = lower_bounds[index] + (upper_bounds[index] - lower_bounds[index]) * (rank - below) / inside
    value = np.where(index == len(boundaries), boundaries[-1], value)
    return np.where(total > 0, value, np.nan)
