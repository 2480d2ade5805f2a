"""Judge a candidate against stable on the evidence since its stage began: worse, not worse, or
not known yet (docs/judgement.md).

Anytime-valid confidence sequences (CS): the interval holds at every look at once (Ville's
inequality), so a pass every 30 s is as safe as one a day and a stage ends as soon as the evidence
allows, no sooner. A rate's CS is the beta-binomial mixture of Howard, Ramdas, McAuliffe and
Sekhon (2021, "Time-uniform, nonparametric, nonasymptotic confidence sequences"): with S events in
n trials,

    CS = {p : log sum_i w_i B(a_i+S, b_i+n-S) / B(a_i, b_i) - S log p - (n-S) log(1-p) < log(1/alpha)}

for a prior that is a mixture of beta distributions Beta(a_i, b_i) with weights w_i. Any prior fixed
before the data gives a valid CS; the prior decides where it is tight (Howard et al., section 3.5).
A quantile's tail share is judged against a rate known by design (1 - q): its prior is centred
there (`tail_prior`). An error rate's is not: half Jeffreys', half centred on 1% (`ERROR_RATE_PRIOR`).

Pure: no I/O, no clock. scipy and numpy are imported inside the functions, so the CLI starts fast.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Sequence

from .observations import VersionCounts

if TYPE_CHECKING:
    import numpy as np

#: A mixture's prior: (weight, a, b) per Beta(a, b) component, weights summing to 1 (a finite mixture
#: of beta priors is a prior too, so its CS is valid; it costs at most log(1/weight) anywhere).
Prior = tuple[tuple[float, float, float], ...]
#: Jeffreys' Beta(1/2, 1/2): spread over all of [0, 1], so at n ~ 10^4 and p ~ 1% it pays several
#: nats for the prior mass it puts far from p.
JEFFREYS: Prior = ((1.0, 0.5, 0.5),)
#: A tail prior is worth this many tail events: Beta(3, 297) for a p99's share of 1%. Tried against
#: 1, 10 and Jeffreys (docs/judgement.md) for true shares of 0.5% to 3%, where a 1.10x p99 bound's
#: decisions lie: 1 is slower everywhere, 10 faster at 0.7-0.8% but slower at 0.5%, 2% and 3%.
TAIL_PRIOR_EVENTS = 3.0
#: Planning with nothing observed yet: stable's error rate (proportions) and its latency shape (a
#: log-normal with this sigma, on a fine geometric bucket grid) for `requests_needed`.
PLANNING_ERROR_RATE = 0.01
PLANNING_LATENCY_SIGMA = 0.5
#: requests_needed gives up above this many candidate requests: the effect is out of reach.
MAX_PLANNED_REQUESTS = 10**9
#: An error rate's prior: half Jeffreys' (an error rate may be anything), half Beta(1, 99) around
#: PLANNING_ERROR_RATE (worth 100 requests): 5-25% fewer requests for rates of 0.01% to 3%, at
#: most 5% more for rates of 10-30%.
ERROR_RATE_PRIOR: Prior = ((0.5, 0.5, 0.5), (0.5, PLANNING_ERROR_RATE * 100, (1 - PLANNING_ERROR_RATE) * 100))
#: Stable's part of a judgement's alpha (the candidate gets the rest): at a 1-5% canary stable
#: serves 20-99x the candidate's requests, so a fifth of alpha widens its interval little and
#: leaves most of it to the candidate, whose evidence is the scarce one (docs/judgement.md).
STABLE_ALPHA_SHARE = 0.2
#: The bucket boundaries whose CS a quantile's interval relies on: the two around the quantile (a
#: version's alpha is split between them).
BOUNDARIES_AT_RISK = 2
_BISECTIONS = 40  # in log-odds between -_LOGIT_RANGE and +_LOGIT_RANGE: far below any count's resolution
_LOGIT_RANGE = 60.0


class Verdict(StrEnum):
    WORSE = "worse"  # established: a trigger rolls back, a gate never passes
    NOT_WORSE = "not worse"  # established: a gate passes
    INCONCLUSIVE = "inconclusive"  # not yet: nothing moves, the progress deadline decides


@dataclass(frozen=True)
class Judgement:
    """One comparison with stable, with its numbers and a message that says them in words."""

    metric: str
    bound: str  # "max_ratio_to_stable" | "max_increase_over_stable"
    limit: float  # 1.10 or 0.005
    confidence: float
    estimate: float | None  # the ratio or the difference (None: no data yet)
    low: float | None  # its interval at `confidence`
    high: float | None
    verdict: Verdict
    candidate_trials: float
    stable_trials: float
    message: str

    def to_dict(self) -> dict[str, object]:
        return {"metric": self.metric, "bound": self.bound, "limit": self.limit, "confidence": self.confidence,
                "estimate": _finite(self.estimate), "low": _finite(self.low), "high": _finite(self.high),
                "verdict": str(self.verdict), "candidate_trials": self.candidate_trials,
                "stable_trials": self.stable_trials, "message": self.message}


def _finite(value: float | None) -> float | None:
    """JSON has no infinity: an unbounded end is null."""
    return value if value is None or math.isfinite(value) else None


# --- the confidence sequence of a rate ---------------------------------------------------------

def tail_prior(share: float) -> Prior:
    """The prior for a rate whose threshold is known by design (the share 1 - q above a q-quantile,
    or the CDF q below it): Beta centred on `share`, worth TAIL_PRIOR_EVENTS events on its rarer side.

    Example: 1% (a p99's tail) -> Beta(3, 297). At 100 of 10,000 requests and alpha 0.025 the CS is
    [0.71%, 1.37%] (width 0.66 pp) where Jeffreys' is [0.64%, 1.47%] (0.83 pp); a share of 0.7%
    shows "at most 1%" after about 11,000 requests instead of 18,000, one of 2% "above 1%" at
    alpha 0.005 after about 1,900 instead of 2,400.
    """
    if not 0 < share < 1:
        return JEFFREYS
    requests = TAIL_PRIOR_EVENTS / min(share, 1 - share)
    return ((1.0, share * requests, (1 - share) * requests),)


def _log_marginal(s: float | np.ndarray, n: float | np.ndarray, prior: Prior) -> float | np.ndarray:
    """log of the prior's mean of p^s (1-p)^(n-s): the mixture's numerator (the CS's constant)."""
    import numpy as np
    from scipy.special import betaln

    terms = [math.log(w) + betaln(a + s, b + n - s) - betaln(a, b) for w, a, b in prior]
    return terms[0] if len(terms) == 1 else np.logaddexp.reduce(terms)


def proportion_cs(events: float | np.ndarray, trials: float | np.ndarray, alpha: float | np.ndarray,
                  prior: Prior = JEFFREYS) -> tuple[np.ndarray, np.ndarray]:
    """The rates p consistent with `events` of `trials` at level 1 - alpha, valid at every n at once.

    Vectorized: events, trials and alpha may be arrays (one CS per element). Counts may be fractional
    (Prometheus' `increase` extrapolates); events are clipped to [0, trials].

    Example: 10 errors in 1,000 requests at alpha 0.05 -> about [0.0024, 0.0262]; a fixed-n 95%
    (Wilson) interval would be about [0.0054, 0.0183]: the price of looking at every pass. No
    trials -> [0, 1].
    """
    import numpy as np
    from scipy.special import expit, logit, xlog1py, xlogy

    n = np.maximum(np.asarray(trials, dtype=float), 0.0)
    s = np.clip(np.asarray(events, dtype=float), 0.0, n)
    n, s = np.broadcast_arrays(n, s)
    threshold = np.log(1 / np.asarray(alpha, dtype=float))
    base = _log_marginal(s, n, prior)

    def outside(x: np.ndarray) -> np.ndarray:  # log mixture at p = expit(x) reaches log(1/alpha)
        p = expit(x)
        return base - xlogy(s, p) - xlog1py(n - s, -p) >= threshold

    with np.errstate(divide="ignore"):
        centre = logit(np.where(n > 0, s / np.where(n > 0, n, 1), 0.5))
    centre = np.clip(centre, -_LOGIT_RANGE, _LOGIT_RANGE)

    def edge(far: float) -> np.ndarray:
        """Bisect between the centre (inside: the mixture is at most 1 at the MLE) and `far`."""
        inside, out = centre.copy(), np.full_like(centre, far)
        reached = outside(out)
        for _ in range(_BISECTIONS):
            middle = (inside + out) / 2
            is_out = outside(middle)
            out = np.where(is_out, middle, out)
            inside = np.where(is_out, inside, middle)
        return np.where(reached, expit(out), 0.0 if far < 0 else 1.0)

    return edge(-_LOGIT_RANGE), edge(_LOGIT_RANGE)


def _rate_cs(events: float, trials: float, alpha: float, prior: Prior = JEFFREYS) -> tuple[float, float]:
    """proportion_cs for one pair of counts, with brentq (the judgement's hot path: every pass)."""
    from scipy.optimize import brentq
    from scipy.special import expit

    n = max(float(trials), 0.0)
    s = min(max(float(events), 0.0), n)
    if n == 0:
        return 0.0, 1.0
    excess = float(_log_marginal(s, n, prior)) - math.log(1 / alpha)

    def over(x: float) -> float:  # > 0 outside the CS; x is the rate's log-odds: log p = -softplus(-x)
        return excess + s * _softplus(-x) + (n - s) * _softplus(x)

    centre = min(max(math.log(s / (n - s)) if 0 < s < n else (-_LOGIT_RANGE if s == 0 else _LOGIT_RANGE),
                     -_LOGIT_RANGE), _LOGIT_RANGE)
    low = float(expit(brentq(over, -_LOGIT_RANGE, centre, xtol=1e-10))) if s > 0 and over(-_LOGIT_RANGE) > 0 else 0.0
    high = float(expit(brentq(over, centre, _LOGIT_RANGE, xtol=1e-10))) if s < n and over(_LOGIT_RANGE) > 0 else 1.0
    return low, high


def _softplus(x: float) -> float:
    """log(1 + e^x) without overflow: -log p and -log(1 - p) of a rate p with log-odds -x and x."""
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


# --- histograms ---------------------------------------------------------------------------------

def _finite_buckets(counts: VersionCounts) -> tuple[list[float], list[float], float]:
    """(finite boundaries, cumulative counts at them, total) with counts made non-decreasing
    (increase() of separate series can dip by a hair)."""
    bounds, cumulative = [], []
    running = 0.0
    for le, count in counts.buckets:
        running = max(running, count)
        if math.isinf(le):
            break
        bounds.append(le)
        cumulative.append(running)
    total = max(running, counts.buckets[-1][1]) if counts.buckets else 0.0
    return bounds, cumulative, total


def _interpolated_quantile(bounds: Sequence[float], cdf: Sequence[float], q: float) -> float:
    """Where a CDF known at the bucket boundaries (linear in between, 0 at 0) reaches q, as
    Prometheus' histogram_quantile interpolates; beyond the last finite boundary: infinity.

    Example: boundaries 100, 200, 400 with CDF 0.5, 0.98, 1.0 and q 0.99 -> 200 + 200 x
    (0.99 - 0.98) / (1.0 - 0.98) = 300.
    """
    previous_bound, previous_cdf = 0.0, 0.0
    for bound, value in zip(bounds, cdf):
        if value >= q:  # > previous_cdf, which was below q
            return previous_bound + (bound - previous_bound) * (q - previous_cdf) / (value - previous_cdf)
        previous_bound, previous_cdf = bound, value
    return math.inf


def _lower_quantile(bounds: Sequence[float], low_tail: Sequence[float], observed_tail: Sequence[float] | None,
                    q: float) -> float:
    """A lower bound on where the tail share falls to 1 - q, from lower bounds on the share above
    each boundary (`low_tail`) and, for the guard, the observed shares. Inside the bucket [a, b]
    where it falls, the share at t is at least the smaller of two readings (docs/judgement.md,
    "Inside a bucket"):

    - a power law through a and b (a straight line on log-log axes), right when the tail's log-log
      slope steepens or holds inside the bucket (log-normal, gamma, Weibull, Pareto tails);
    - a power law back from b with the slope observed in the next bucket, right when the slope
      flattens (a body with a heavier tail of stalls taking over), as long as it does so steadily
      across the bucket and the next. The slope is the observed one, not a bound: on stable's
      counts (the only ones guarded, see quantile_css) it is precise, and a bound on it would
      cost about 40% more requests on a log-normal tail, where the guard is not needed.

    Without `observed_tail` only the first reading counts. Inside the first bucket, or where the
    guard applies in the last finite bucket or the next bucket shows no fall: a.
    Beyond the last finite boundary: that boundary (the quantile is above it).

    Example: boundaries 100, 200, 400 with tail shares 4%, 0.1%, 0.05%: the power law through 100
    and 200 (x^-5.3) reaches 1% at 130, but the tail then falls only as x^-1 (0.1% to 0.05%), so
    the reading is 200 x (0.1% / 1%) = 20 -> at least a: 100.
    """
    previous_bound, previous_tail = 0.0, 1.0
    target = 1 - q
    for i, (bound, tail) in enumerate(zip(bounds, low_tail)):
        if tail <= target:
            if previous_bound <= 0 or tail <= 0:
                return previous_bound
            through = previous_bound * (bound / previous_bound) ** (
                math.log(previous_tail / target) / math.log(previous_tail / tail))
            if observed_tail is None:
                return through
            if i + 1 >= len(bounds) or not 0 < observed_tail[i + 1] < observed_tail[i]:
                return previous_bound
            slope = math.log(observed_tail[i] / observed_tail[i + 1]) / math.log(bounds[i + 1] / bound)
            back = bound * (tail / target) ** (1 / slope)
            return max(previous_bound, min(through, back))
        previous_bound, previous_tail = bound, tail
    return previous_bound


def quantile_bucket(counts: VersionCounts, q: float) -> tuple[float, float] | None:
    """The finite bucket (lower, upper boundary) that holds a histogram's q-quantile, or None
    (no data, or the quantile in the first or the +Inf bucket). A ratio bound narrower than this
    bucket is where reading it safely costs the most (docs/judgement.md, "Inside a bucket")."""
    bounds, cumulative, total = _finite_buckets(counts)
    previous = 0.0
    for bound, count in zip(bounds, cumulative):
        if total > 0 and count >= q * total:
            return (previous, bound) if previous > 0 else None
        previous = bound
    return None


def quantile_cs(counts: VersionCounts, q: float, alpha: float) -> tuple[float, float, float]:
    """(point, low, high) for the q-quantile of a histogram, valid at every look at level 1 - alpha.

    The CDF at each finite boundary gets a rate CS at alpha / 2: only the two boundaries around the
    true quantile can make the bounds wrong (a CS at any boundary further out that claims too much
    implies the same claim at the nearer one: the counts below a boundary only grow with it), so
    alpha is split between two, not among all k. `high` is where the lower CDF bound reaches q,
    linearly (an upper bound while the density does not rise inside the bucket); `low` is
    _lower_quantile's, guarded against a flattening tail: docs/judgement.md, "Inside a bucket".
    `point` interpolates like histogram_quantile.
    `high` is infinity while the quantile may still lie in the +Inf bucket; no data -> (nan, 0, inf).
    """
    return quantile_css([counts], q, [alpha], [True])[0]


def quantile_css(histograms: Sequence[VersionCounts], q: float, alphas: Sequence[float],
                 guarded: Sequence[bool]) -> list[tuple[float, float, float]]:
    """quantile_cs of several histograms (each at its own alpha, its lower bound guarded against a
    flattening tail or not), with one vectorized CS computation for all (a judgement needs both
    versions': half the time of two calls)."""
    import numpy as np

    parts = [_finite_buckets(counts) for counts in histograms]
    events = np.concatenate([np.asarray(cumulative, dtype=float) for _, cumulative, _ in parts])
    trials = np.concatenate([np.full(len(bounds), total) for bounds, _, total in parts])
    levels = np.concatenate([np.full(len(bounds), alpha / BOUNDARIES_AT_RISK)
                             for (bounds, _, _), alpha in zip(parts, alphas)])
    lows, highs = proportion_cs(events, trials, levels, tail_prior(q))
    found, start = [], 0
    for (bounds, cumulative, total), guard in zip(parts, guarded):
        end = start + len(bounds)
        if total <= 0 or not bounds:
            found.append((math.nan, 0.0, math.inf))
        else:
            low_cdf = np.maximum.accumulate(lows[start:end])  # the true CDF is non-decreasing: so are its bounds
            high_cdf = np.minimum.accumulate(highs[start:end][::-1])[::-1]
            point = _interpolated_quantile(bounds, [c / total for c in cumulative], q)
            observed = [1 - c / total for c in cumulative] if guard else None
            found.append((point, _lower_quantile(bounds, 1 - high_cdf, observed, q),
                          _interpolated_quantile(bounds, low_cdf, q)))
        start = end
    return found


# --- the judgement -------------------------------------------------------------------------------

def judge(metric: str, bound: str, limit: float, confidence: float, kind: str, quantile: float | None,
          candidate: VersionCounts, stable: VersionCounts) -> Judgement:
    """Is the candidate worse than stable by more than `limit`, at `confidence`?

    Each version gets a CS, the candidate's at 80% of alpha, stable's at 20% (STABLE_ALPHA_SHARE),
    so both hold together at 1 - alpha, and the comparison's interval follows from the two: worse
    when the whole interval is above the limit, not worse when it is all at or below it.

    Proportions: the difference lies in [low_c - high_s, high_c - low_s] (a ratio in
    [low_c / high_s, high_c / low_s]).

    Histograms (bound max_ratio_to_stable): each version's q-quantile gets a CS [L, U]
    (quantile_cs, read conservatively inside a bucket), and the ratio lies in [L_c / U_s, U_c / L_s].
    The estimate is the ratio of the interpolated quantiles (histogram_quantile's).

    Example (proportion): candidate 30 errors of 2,000, stable 100 of 50,000, limit +0.5 pp at
    95% -> estimate +1.30 pp, interval +0.46 to +2.48 pp: inconclusive; at 60 of 4,000 (same
    rates) the interval narrows above +0.5 pp: worse.
    """
    alpha = 1 - confidence
    if kind == "histogram":
        if quantile is None:
            raise ValueError(f"{metric}: a histogram judgement needs a quantile")
        if bound != "max_ratio_to_stable":
            raise ValueError(f"{metric}: a histogram (quantile) is judged by max_ratio_to_stable, not {bound}")
        return _judge_quantile(metric, limit, confidence, quantile, candidate, stable, alpha)
    if kind != "proportion":
        raise ValueError(f"{metric}: unknown evidence kind {kind!r}")
    return _judge_rate(metric, bound, limit, confidence, candidate, stable, alpha)


def _split(alpha: float) -> tuple[float, float]:
    """(candidate's, stable's) parts of alpha: both intervals hold together at 1 - alpha."""
    return alpha * (1 - STABLE_ALPHA_SHARE), alpha * STABLE_ALPHA_SHARE


def _judge_rate(metric: str, bound: str, limit: float, confidence: float, candidate: VersionCounts,
                stable: VersionCounts, alpha: float) -> Judgement:
    alpha_c, alpha_s = _split(alpha)
    low_c, high_c = _rate_cs(candidate.events, candidate.trials, alpha_c, ERROR_RATE_PRIOR)
    low_s, high_s = _rate_cs(stable.events, stable.trials, alpha_s, ERROR_RATE_PRIOR)
    rate_c = candidate.events / candidate.trials if candidate.trials > 0 else None
    rate_s = stable.events / stable.trials if stable.trials > 0 else None
    if bound == "max_increase_over_stable":
        low, high = low_c - high_s, high_c - low_s
        estimate = rate_c - rate_s if rate_c is not None and rate_s is not None else None
    elif bound == "max_ratio_to_stable":
        low = low_c / high_s if high_s > 0 else math.inf
        high = high_c / low_s if low_s > 0 else math.inf
        estimate = (rate_c / rate_s if rate_s else math.inf) if rate_c is not None and rate_s is not None else None
    else:
        raise ValueError(f"{metric}: {bound} is not a statistical bound")
    verdict = Verdict.WORSE if low > limit else Verdict.NOT_WORSE if high <= limit else Verdict.INCONCLUSIVE
    return _judgement(metric, bound, limit, confidence, estimate, low, high, verdict, candidate.trials, stable.trials)


def _judge_quantile(metric: str, limit: float, confidence: float, q: float, candidate: VersionCounts,
                    stable: VersionCounts, alpha: float) -> Judgement:
    import numpy as np

    n_c, n_s = candidate.total, stable.total
    alpha_c, alpha_s = _split(alpha)
    # Stable's lower bound is guarded against a flattening tail (an overclaim there would advance a
    # worse candidate); the candidate's is not (one there could only roll back a candidate at the
    # limit, and its thin tail would make the guard cost several times the requests).
    (point_s, low_s, high_s), (point_c, low_c, high_c) = quantile_css(
        [stable, candidate], q, [alpha_s, alpha_c], [True, False])
    with np.errstate(all="ignore"):
        estimate = point_c / point_s if n_c > 0 and n_s > 0 and point_s > 0 else None
        if estimate is not None and math.isnan(estimate):
            estimate = None
        low = low_c / high_s if high_s > 0 and math.isfinite(high_s) else 0.0
        high = high_c / low_s if low_s > 0 else math.inf
    verdict = Verdict.INCONCLUSIVE
    if n_c > 0 and n_s > 0:
        verdict = Verdict.WORSE if low > limit else Verdict.NOT_WORSE if high <= limit else Verdict.INCONCLUSIVE
    return _judgement(metric, "max_ratio_to_stable", limit, confidence, estimate, low, high, verdict, n_c, n_s)


def _judgement(metric: str, bound: str, limit: float, confidence: float, estimate: float | None, low: float,
               high: float, verdict: Verdict, candidate_trials: float, stable_trials: float) -> Judgement:
    if estimate is None:
        low_out: float | None = None
        high_out: float | None = None
    else:
        low_out, high_out = low, high
    return Judgement(metric, bound, limit, confidence, estimate, low_out, high_out, verdict, candidate_trials,
                     stable_trials, _message(metric, bound, limit, confidence, estimate, low, high, verdict,
                                             candidate_trials, stable_trials))


def _message(metric: str, bound: str, limit: float, confidence: float, estimate: float | None, low: float,
             high: float, verdict: Verdict, candidate_trials: float, stable_trials: float) -> str:
    """"latency_p99_ms 1.31x stable (95% CI 1.18x-1.46x) > 1.10x: worse than stable (2,310 vs
    48,200 requests)" or "error_rate +0.12 pp over stable (95% CI -0.20 to +0.41 pp), limit
    +0.50 pp: inconclusive (640 vs 12,800 requests)"."""
    level = f"{confidence * 100:g}%"
    served = f"({candidate_trials:,.0f} vs {stable_trials:,.0f} requests)"
    if bound == "max_ratio_to_stable":
        def show(x: float) -> str:
            return f"{x:.2f}x" if math.isfinite(x) else "unbounded"
        limit_text = f"{limit:.2f}x"
        if estimate is None:
            reading = f"{metric}: no data yet"
        else:
            reading = f"{metric} {show(estimate)} stable ({level} CI {show(low)}-{show(high)})"
    else:
        def show(x: float) -> str:
            return f"{x * 100:+.2f} pp" if math.isfinite(x) else "unbounded"
        limit_text = show(limit)
        if estimate is None:
            reading = f"{metric}: no data yet"
        else:
            reading = f"{metric} {show(estimate)} over stable ({level} CI {show(low)} to {show(high)})"
    if verdict is Verdict.WORSE:
        return f"{reading} > {limit_text}: worse than stable at {level} {served}"
    if verdict is Verdict.NOT_WORSE:
        return f"{reading} <= {limit_text}: not worse than stable at {level} {served}"
    return f"{reading}, limit {limit_text}: inconclusive at {level} {served}"


# --- planning ------------------------------------------------------------------------------------

def requests_needed(bound: str, limit: float, confidence: float, kind: str, quantile: float | None,
                    stable: VersionCounts | None, candidate_share: float) -> int | None:
    """Candidate requests a stage needs to establish "not worse" if the candidate behaves exactly
    like stable, while stable serves the rest (`candidate_share` of traffic goes to the candidate,
    0 < share < 1; a share of 1 or more plans with stable's observed counts as they are).

    Solved on expected counts through the same `judge` (no separate formula to drift): both
    versions follow stable's observed rate or latency shape (or, with nothing observed, an error
    rate of 1% and a log-normal latency), scaled to n and to n x (1 - share) / share. A plan, to
    about 2%: the shape is rounded to two significant figures (so passes over a steady stable
    reuse one answer, cached) and the search stops within 2%. None when no amount of traffic gets
    there (e.g. a limit of +0 pp).

    Example: error_rate, +0.5 pp at 95%, stable at 1%, candidate share 5% -> about 9,500 candidate
    requests; latency_p99_ms at most 1.10x at 95%, log-normal latency, share 5% -> about 10,800
    (the seed's "10,000 requests" of docs/judgement.md).
    """
    if candidate_share <= 0:
        return None
    shape = _rounded(_planning_shape(kind, quantile, stable))
    fixed_stable = None
    if candidate_share >= 1:
        fixed_stable = _two_figures(stable.total) if stable is not None else 0.0
    return _requests_needed(bound, limit, confidence, kind, quantile, shape, candidate_share, fixed_stable)


@functools.lru_cache(maxsize=4096)
def _requests_needed(bound: str, limit: float, confidence: float, kind: str, quantile: float | None,
                     shape: VersionCounts, candidate_share: float, fixed_stable: float | None) -> int | None:
    def reaches(n: float) -> bool:
        stable_n = n * (1 - candidate_share) / candidate_share if fixed_stable is None else fixed_stable
        return judge("plan", bound, limit, confidence, kind, quantile, _scaled(shape, n),
                     _scaled(shape, stable_n)).verdict is Verdict.NOT_WORSE

    high = 16.0
    while not reaches(high):
        high *= 4
        if high > MAX_PLANNED_REQUESTS:
            return None
    low = high / 4 if high > 16 else 0.0
    while high - low > max(1.0, low * 0.02):
        middle = (low + high) / 2
        if reaches(middle):
            high = middle
        else:
            low = middle
    return math.ceil(high)


def _rounded(shape: VersionCounts) -> VersionCounts:
    """Two significant figures of the rate, or of each boundary's share of requests above it (the
    tail is what a quantile's plan depends on)."""
    return VersionCounts(trials=shape.trials, events=_two_figures(shape.events),
                         buckets=tuple((le, 1 - _two_figures(1 - c)) for le, c in shape.buckets))


def _two_figures(x: float) -> float:
    """A plan's precision: 0.01234 -> 0.012, 48,213 -> 48,000."""
    return float(f"{x:.2g}")


def _planning_shape(kind: str, quantile: float | None, stable: VersionCounts | None) -> VersionCounts:
    """Stable's counts per request: the rate or the histogram every planned request follows."""
    if stable is not None and stable.total > 0:
        if kind == "histogram":
            return VersionCounts(buckets=tuple((le, c / stable.total) for le, c in stable.buckets))
        return VersionCounts(trials=1.0, events=stable.events / stable.trials)
    if kind == "proportion":
        return VersionCounts(trials=1.0, events=PLANNING_ERROR_RATE)
    from scipy.stats import lognorm

    grid = [2.0 ** (i / 4) for i in range(-20, 21)]  # 0.03 to 32 x the median, 19% apart
    return VersionCounts(buckets=tuple((le, float(lognorm.cdf(le, PLANNING_LATENCY_SIGMA))) for le in grid)
                         + ((math.inf, 1.0),))


def _scaled(shape: VersionCounts, n: float) -> VersionCounts:
    return VersionCounts(trials=shape.trials * n, events=shape.events * n,
                         buckets=tuple((le, c * n) for le, c in shape.buckets))
