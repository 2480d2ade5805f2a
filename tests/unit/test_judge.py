"""The judgement's statistics (core/judge.py): anytime-valid coverage checked by simulation with a
look at every step, the numbers of the worked examples, monotonicity, and the edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from reconciler.core.judge import (ERROR_RATE_PRIOR, JEFFREYS, Verdict, _log_marginal, _rate_cs, judge, proportion_cs,
                                  quantile_cs, requests_needed, tail_prior)
from reconciler.core.observations import VersionCounts

INF = math.inf
INCREASE = "max_increase_over_stable"
RATIO = "max_ratio_to_stable"
#: A coarse latency histogram (ms), as Istio's buckets are.
BOUNDS = (100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0)


def rates(events: float, trials: float) -> VersionCounts:
    return VersionCounts(trials=trials, events=events)


def histogram(counts_per_bucket: list[float], bounds: tuple[float, ...] = BOUNDS) -> VersionCounts:
    """Per-bucket counts (the last is the +Inf bucket) -> cumulative (le, count) pairs."""
    cumulative = np.cumsum(counts_per_bucket).tolist()
    return VersionCounts(buckets=tuple(zip((*bounds, INF), cumulative)))


def error_judgement(candidate: VersionCounts, stable: VersionCounts, limit: float = 0.005, confidence: float = 0.95):
    return judge("error_rate", INCREASE, limit, confidence, "proportion", None, candidate, stable)


def latency_judgement(candidate: VersionCounts, stable: VersionCounts, limit: float = 1.10, confidence: float = 0.95,
                      q: float = 0.99):
    return judge("latency_p99_ms", RATIO, limit, confidence, "histogram", q, candidate, stable)


# --- the confidence sequence of a rate ---------------------------------------------------------

def test_worked_example_of_the_docstring():
    low, high = proportion_cs(10, 1000, 0.05)
    assert (round(float(low), 4), round(float(high), 4)) == (0.0024, 0.0262)


def test_a_rate_cs_misses_the_true_rate_in_at_most_alpha_of_sequences_looked_at_every_step():
    """2,000 sequences of 200 requests, an error rate of 5%, the CS checked after every request:
    the share of sequences it ever misses is at most alpha. The same looks at a fixed-n (Wilson)
    interval miss far more often: the check can fail, and it is what anytime validity buys."""
    rng = np.random.default_rng(15)
    true_rate, alpha, length = 0.05, 0.05, 200
    events = np.cumsum(rng.random((2000, length)) < true_rate, axis=1)
    trials = np.arange(1, length + 1)
    low, high = proportion_cs(events, trials, alpha)
    missed = ((low > true_rate) | (high < true_rate)).any(axis=1).mean()
    assert missed <= alpha

    z, share = norm.ppf(1 - alpha / 2), events / trials
    centre, spread = share + z * z / (2 * trials), z * np.sqrt(share * (1 - share) / trials + z * z / (4 * trials ** 2))
    wilson_low, wilson_high = (centre - spread) / (1 + z * z / trials), (centre + spread) / (1 + z * z / trials)
    assert ((wilson_low > true_rate) | (wilson_high < true_rate)).any(axis=1).mean() > 3 * alpha


@pytest.mark.parametrize("events, trials, expected_low, expected_high", [
    (0, 0, 0.0, 1.0),  # nothing seen: nothing known
    (0, 100, 0.0, None),  # no errors: the low end is 0 exactly
    (100, 100, None, 1.0),  # all errors: the high end is 1 exactly
    (150, 100, None, 1.0),  # events above trials (increase() extrapolation) are clipped
])
def test_rate_cs_edges(events, trials, expected_low, expected_high):
    low, high = (float(x) for x in proportion_cs(events, trials, 0.05))
    assert 0.0 <= low < high <= 1.0
    if expected_low is not None:
        assert low == expected_low
    if expected_high is not None:
        assert high == expected_high


@pytest.mark.parametrize("prior", [JEFFREYS, tail_prior(0.01), tail_prior(0.99), ERROR_RATE_PRIOR],
                         ids=["jeffreys", "tail 1%", "cdf 99%", "error rate"])
@pytest.mark.parametrize("events, trials", [(10, 1000), (0, 100), (100, 100), (0, 0), (0.01, 5), (3.3, 1e7)])
def test_the_one_pair_path_agrees_with_the_vectorized_one(events, trials, prior):
    """The judgement's brentq path and the vectorized bisection (histograms, simulations) are one CS."""
    assert _rate_cs(events, trials, 0.05, prior) == pytest.approx(
        [float(x) for x in proportion_cs(events, trials, 0.05, prior)], rel=1e-8, abs=1e-12)


@pytest.mark.parametrize("true_rate, prior", [(0.01, tail_prior(0.01)), (0.003, ERROR_RATE_PRIOR), (0.03, tail_prior(0.01))],
                         ids=["tail prior at its centre", "error-rate prior at 0.3%", "tail prior 3x off centre"])
def test_a_tuned_prior_keeps_the_cs_valid_at_every_look_up_to_20000(true_rate, prior):
    """Any prior fixed before the data gives a valid CS. 400 sequences of 20,000 requests, looked
    at after every request: the CS ever misses the true rate in at most alpha of them. A look
    misses exactly when the mixture at the true rate reaches 1/alpha (checked against the interval
    itself every 500 requests), which is cheap enough to evaluate at all 20,000 looks."""
    rng = np.random.default_rng(20)
    alpha, length = 0.05, 20_000
    trials = np.arange(1, length + 1, dtype=float)
    missed = 0
    for _ in range(4):  # 100 sequences at a time: a few tens of MB
        events = np.cumsum(rng.random((100, length)) < true_rate, axis=1).astype(float)
        mixture = (_log_marginal(events, trials, prior) - events * math.log(true_rate)
                   - (trials - events) * math.log1p(-true_rate))
        outside = mixture >= math.log(1 / alpha)
        missed += int(outside.any(axis=1).sum())
        low, high = proportion_cs(events[:, 499::500], trials[499::500], alpha, prior)
        assert np.array_equal((low > true_rate) | (high < true_rate), outside[:, 499::500])
    assert missed / 400 <= alpha


def test_the_tail_prior_is_narrower_than_jeffreys_where_p99_decisions_are_made():
    """tail_prior's worked example: 100 of 10,000 requests above the threshold, alpha 0.025 (a 95%
    gate's candidate side): [0.70%, 1.37%] instead of Jeffreys' [0.64%, 1.47%]."""
    tuned = [round(float(x), 4) for x in proportion_cs(100, 10_000, 0.025, tail_prior(0.01))]
    jeffreys = [round(float(x), 4) for x in proportion_cs(100, 10_000, 0.025)]
    assert tuned == [0.0071, 0.0137] and jeffreys == [0.0064, 0.0147]
    assert tuned[1] - tuned[0] < 0.8 * (jeffreys[1] - jeffreys[0])


def test_fractional_counts_give_an_interval_between_their_integer_neighbours():
    widths = [float(np.subtract(*proportion_cs(e, 1000.0, 0.05)[::-1])) for e in (10, 10.5, 11)]
    assert widths[0] < widths[1] < widths[2]


def test_the_interval_narrows_with_evidence_and_widens_with_confidence():
    widths = [float(np.subtract(*proportion_cs(n / 100, n, 0.05)[::-1])) for n in (100, 1_000, 10_000, 100_000)]
    assert widths == sorted(widths, reverse=True)
    assert widths[-1] < 0.003
    loose, strict = (proportion_cs(10, 1000, alpha) for alpha in (0.1, 0.01))
    assert strict[0] < loose[0] and strict[1] > loose[1]


# --- the quantile of a histogram --------------------------------------------------------------

def test_quantile_interpolates_inside_the_bucket_like_histogram_quantile():
    """CDF 0.5 at 100, 0.9 at 200, 0.98 at 400, 0.995 at 800: the p99 is 400 + 400 x 0.01/0.015."""
    point, low, high = quantile_cs(histogram([500, 400, 80, 15, 4, 1, 0]), 0.99, 0.05)
    assert point == pytest.approx(666.67, abs=0.01)
    assert 100 < low < point < high <= 3200


def test_quantile_cs_covers_the_true_quantile_at_every_look():
    """Latencies uniform inside each bucket (the interpolation assumption holds exactly), 200
    sequences looked at after 50, 100, ... 6,400 requests: the p90's CS misses in at most alpha."""
    rng = np.random.default_rng(7)
    shares = np.array([0.4, 0.3, 0.15, 0.08, 0.04, 0.03])  # no +Inf bucket: the quantile is finite
    edges = np.array((0.0, *BOUNDS))
    cdf = np.cumsum(shares)
    q, alpha = 0.9, 0.05
    i = int(np.searchsorted(cdf, q))
    true_quantile = edges[i] + (edges[i + 1] - edges[i]) * (q - (cdf[i - 1] if i else 0)) / shares[i]
    looks = [50 * 2 ** k for k in range(8)]
    missed = 0
    for _ in range(200):
        buckets = rng.choice(len(shares), size=looks[-1], p=shares)
        for n in looks:
            _, low, high = quantile_cs(histogram([*np.bincount(buckets[:n], minlength=len(shares)), 0]), q, alpha)
            if not low <= true_quantile <= high:
                missed += 1
                break
    assert missed / 200 <= alpha


def test_inside_a_bucket_each_bound_reads_the_tail_the_way_that_cannot_overclaim():
    """A p99 inside (400, 800] with tail shares 2% and 0.5% at the two edges: the upper bound reads
    the bucket linearly (667: right for any density that falls inside the bucket), the lower bound
    as a power law (400 x 2^(1/2) = 566: right for any tail at least as steep as one), and with a
    million requests the CS is all but the two readings."""
    point, low, high = quantile_cs(histogram([x * 1_000_000 for x in STABLE_SHAPE]), 0.99, 0.05)
    assert point == pytest.approx(666.67, abs=0.01)
    assert low == pytest.approx(566, rel=0.03) and high == pytest.approx(667, rel=0.03)


def test_a_steep_tail_in_a_wide_bucket_is_not_called_worse_at_the_tolerance():
    """The defect bench_judge found (bench/README.md): a candidate whose p99 is exactly 1.10x
    stable's, both tails falling steeply inside a wide (60, 120] s bucket (an output-length cap),
    and the p99s either side of 60 s. Spreading the bucket evenly read the candidate's share above
    1.1 x stable's p99 as 0.60% for 0.39% and called it worse; each bound read the safe way never does."""
    from scipy.stats import lognorm

    bounds = (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0)
    shape = lognorm(s=0.25, scale=38.0)  # p99 = 38 x e^(2.326 x 0.25) = 67.8 s: steep above 60
    for scale in (0.8, 0.88):  # stable's p99 54 s or 60 s; the candidate's 1.10x that
        stable_cdf = [shape.cdf(b / scale) for b in bounds]
        candidate_cdf = [shape.cdf(b / (scale * 1.10)) for b in bounds]
        stable = VersionCounts(buckets=tuple(zip((*bounds, INF), [c * 10**7 for c in (*stable_cdf, 1.0)])))
        candidate = VersionCounts(buckets=tuple(zip((*bounds, INF), [c * 10**6 for c in (*candidate_cdf, 1.0)])))
        assert latency_judgement(candidate, stable, confidence=0.99).verdict is not Verdict.WORSE


VLLM_E2E_BOUNDS_S = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
                     480.0, 960.0, 1920.0, 7680.0)


def _expected(cdf, bounds: tuple[float, ...], scale: float, n: float) -> VersionCounts:
    """Expected cumulative counts of n requests whose latency is `scale` x a draw from `cdf`."""
    return VersionCounts(buckets=tuple(zip((*bounds, INF), [*(cdf(np.asarray(bounds) / scale) * n), n])))


@pytest.mark.xfail(strict=True, reason="the candidate's lower bound is not guarded against a tail that flattens "
                   "inside its bucket (the guard would cost several times the requests on its thin tail): such a "
                   "candidate exactly at the limit can be rolled back (docs/judgement.md, 'Inside a bucket')")
def test_a_tail_that_flattens_inside_a_bucket_is_not_called_worse_at_the_tolerance():
    """98.5% of requests around 40 s, 1.5% stalled with a Pareto(1.5) tail: stable's p99 60.3 s, the
    candidate's exactly 1.10x (66.3 s) in vLLM's (60, 120] bucket, where the power law reads it as at
    least 77.6 s. In simulation (multinomial counts, 30 looks) 100 of 100 such stages were called worse."""
    from scipy.stats import lognorm

    def cdf(x):
        return 0.985 * lognorm.cdf(x, 0.12, scale=40.0) + 0.015 * np.where(x > 40, 1 - (np.maximum(x, 40) / 40) ** -1.5, 0)

    stable = _expected(cdf, VLLM_E2E_BOUNDS_S, 1.05, 19 * 50_000)
    candidate = _expected(cdf, VLLM_E2E_BOUNDS_S, 1.05 * 1.10, 50_000)
    assert latency_judgement(candidate, stable).verdict is not Verdict.WORSE


def test_a_worse_candidate_is_not_passed_when_stables_tail_flattens_inside_its_bucket():
    """The same body-plus-stalls shape, stable's p99 in vLLM's (40, 50] and (50, 60] s buckets and
    the candidate's 1.15x it: read as a power law through the bucket, stable's lower bound sat
    above its true p99 and 81 of 100 simulated stages were passed as "not worse" than 1.10x.
    Stable's lower bound is guarded by the slope its next bucket shows."""
    from scipy.stats import lognorm

    def cdf(x):
        return 0.985 * lognorm.cdf(x, 0.12, scale=40.0) + 0.015 * np.where(x > 40, 1 - (np.maximum(x, 40) / 40) ** -1.5, 0)

    for scale in (0.45, 0.7, 0.85):
        stable = _expected(cdf, VLLM_E2E_BOUNDS_S, scale, 19 * 200_000)
        candidate = _expected(cdf, VLLM_E2E_BOUNDS_S, scale * 1.15, 200_000)
        assert latency_judgement(candidate, stable).verdict is not Verdict.NOT_WORSE, scale


@pytest.mark.xfail(strict=True, reason="review: the linear reading of U assumes the density does not rise inside "
                   "the bucket; a p50 in a bucket that holds the peak breaks it (docs/judgement.md, 'Inside a bucket')")
def test_a_median_in_the_bucket_that_holds_the_peak_is_not_called_worse_within_the_limit():
    """A p50 gate on Sluice's serving buckets (5, 25, 125, 144, ... ms): stable's median 118 ms
    (log-normal, sigma 0.2) lies in (25, 125], which also holds the density's peak; linear reading
    gives U 106.5 ms. A candidate 1.06x slower (within 1.10x) has L 125 ms: called worse."""
    from scipy.stats import lognorm

    from reconciler.core.serving_manifests import SERVING_LATENCY_BUCKETS_MS

    bounds = tuple(float(b) for b in SERVING_LATENCY_BUCKETS_MS)
    stable = _expected(lambda x: lognorm.cdf(x, 0.2, scale=118.0), bounds, 1.0, 19 * 50_000)
    candidate = _expected(lambda x: lognorm.cdf(x, 0.2, scale=118.0), bounds, 1.06, 50_000)
    assert latency_judgement(candidate, stable, q=0.5).verdict is not Verdict.WORSE


def test_quantile_edges():
    assert math.isnan(quantile_cs(histogram([0] * 7), 0.99, 0.05)[0])  # empty buckets: no quantile
    assert quantile_cs(VersionCounts(), 0.99, 0.05)[1:] == (0.0, INF)  # no buckets at all
    only_inf = quantile_cs(histogram([0, 0, 0, 0, 0, 0, 500]), 0.99, 0.05)
    assert only_inf[0] == INF and only_inf[2] == INF  # all above the last finite boundary: unbounded above


# --- the judgement: proportions ----------------------------------------------------------------

def test_error_rate_worse_inconclusive_and_not_worse():
    stable = rates(100, 50_000)  # 0.2%
    assert error_judgement(rates(30, 2_000), stable).verdict is Verdict.INCONCLUSIVE  # +1.3 pp, too few yet
    worse = error_judgement(rates(60, 4_000), stable)
    assert worse.verdict is Verdict.WORSE
    assert worse.estimate == pytest.approx(0.013)
    assert worse.low > 0.005 and worse.high > worse.estimate
    assert worse.message == ("error_rate +1.30 pp over stable (95% CI +0.63 pp to +2.14 pp) > +0.50 pp: "
                             "worse than stable at 95% (4,000 vs 50,000 requests)")
    same = error_judgement(rates(40, 20_000), rates(200, 100_000))
    assert same.verdict is Verdict.NOT_WORSE
    assert same.high <= 0.005


def test_error_rate_as_a_ratio():
    assert judge("error_rate", RATIO, 2.0, 0.95, "proportion", None, rates(300, 10_000),
                 rates(500, 100_000)).verdict is Verdict.WORSE  # 3% vs 0.5%: 6x
    assert judge("error_rate", RATIO, 2.0, 0.95, "proportion", None, rates(200, 40_000),
                 rates(2_000, 400_000)).verdict is Verdict.NOT_WORSE


def test_no_data_is_inconclusive_with_no_estimate():
    for candidate, stable in [(rates(0, 0), rates(10, 1000)), (rates(5, 100), rates(0, 0)), (rates(0, 0), rates(0, 0))]:
        judgement = error_judgement(candidate, stable)
        assert judgement.verdict is Verdict.INCONCLUSIVE
        assert (judgement.estimate, judgement.low, judgement.high) == (None, None, None)
        assert "no data yet" in judgement.message


def test_a_global_incident_is_not_the_candidate_being_worse():
    """Both versions at 5% errors: the candidate is not worse than stable, however bad both are."""
    assert error_judgement(rates(500, 10_000), rates(5_000, 100_000)).verdict is Verdict.INCONCLUSIVE
    assert error_judgement(rates(5_000, 100_000), rates(50_000, 1_000_000)).verdict is Verdict.NOT_WORSE


def test_a_rate_judge_in_a_a_never_says_worse_more_often_than_alpha():
    """A/A at 1% errors, 5% candidate share, 400 sequences judged after every 300 candidate requests."""
    rng = np.random.default_rng(3)
    worse = 0
    for _ in range(400):
        candidate = np.cumsum(rng.binomial(100, 0.01, 60))
        stable = np.cumsum(rng.binomial(1900, 0.01, 60))
        for k in range(0, 60, 3):
            if error_judgement(rates(candidate[k], 100 * (k + 1)), rates(stable[k], 1900 * (k + 1)),
                               confidence=0.9).verdict is Verdict.WORSE:
                worse += 1
                break
    assert worse / 400 <= 0.1


# --- the judgement: histograms -----------------------------------------------------------------

STABLE_SHAPE = [0.5, 0.4, 0.08, 0.015, 0.004, 0.001, 0.0]


def test_latency_worse_not_worse_and_inconclusive():
    stable = histogram([x * 400_000 for x in STABLE_SHAPE])
    same = histogram([x * 200_000 for x in STABLE_SHAPE])  # coarse buckets: p99 inside 400-800 ms
    assert latency_judgement(same, stable, limit=1.3).verdict is Verdict.NOT_WORSE
    # a 2x bucket cannot resolve 10%: read both ways the shape allows, the same p99 may be 1.18x
    undecidable = latency_judgement(same, stable)
    assert undecidable.verdict is Verdict.INCONCLUSIVE and undecidable.high > 1.1
    slower = histogram([x * 5_000 for x in [0.2, 0.4, 0.2, 0.15, 0.04, 0.01, 0.0]])  # p99 ~ 1,300 ms vs 667
    judgement = latency_judgement(slower, stable)
    assert judgement.verdict is Verdict.WORSE
    assert judgement.estimate > 1.5 and judgement.low > 1.1
    assert judgement.message.startswith("latency_p99_ms ") and "worse than stable at 95% (5,000 vs 400,000" \
        in judgement.message
    few = histogram([x * 200 for x in STABLE_SHAPE])
    assert latency_judgement(few, stable).verdict is Verdict.INCONCLUSIVE


@pytest.mark.parametrize("stable_requests", [500, 2_000, 10_000])
def test_a_candidate_identical_to_stable_is_never_worse_when_stables_quantile_is_the_uncertain_one(stable_requests):
    """The candidate has a million requests (its tail is known exactly), stable few (its p99 is
    wide). "Worse" must test the candidate's tail above r x stable's *upper* bound: testing it
    above r x the lower bound (as first specified) calls this identical candidate worse in all three rows."""
    stable = histogram([x * stable_requests for x in STABLE_SHAPE])
    candidate = histogram([x * 1_000_000 for x in STABLE_SHAPE])
    assert latency_judgement(candidate, stable).verdict is Verdict.INCONCLUSIVE


def test_latency_edges():
    stable = histogram([x * 100_000 for x in STABLE_SHAPE])
    empty = histogram([0] * 7)
    for candidate, reference in [(empty, stable), (stable, empty), (VersionCounts(), stable)]:
        judgement = latency_judgement(candidate, reference)
        assert judgement.verdict is Verdict.INCONCLUSIVE and judgement.estimate is None
    # everything in the +Inf bucket: worse than a stable whose p99 is well inside the buckets
    assert latency_judgement(histogram([0, 0, 0, 0, 0, 0, 2000]), stable).verdict is Verdict.WORSE
    # stable all in +Inf: its quantile has no upper bound, so nothing can be called worse
    assert latency_judgement(stable, histogram([0, 0, 0, 0, 0, 0, 2000])).verdict is not Verdict.WORSE


def test_a_latency_judge_in_a_a_never_says_worse_more_often_than_alpha():
    """A/A, 150 sequences judged after 500, 1,000, ... 16,000 candidate requests at 10% share."""
    rng = np.random.default_rng(11)
    shares = np.array(STABLE_SHAPE[:-1]) / sum(STABLE_SHAPE[:-1])
    worse = 0
    for _ in range(150):
        candidate = rng.multinomial(1, shares, 16_000).cumsum(axis=0)
        stable = rng.multinomial(1, shares, 144_000).cumsum(axis=0)
        for n in (500, 1_000, 2_000, 4_000, 8_000, 16_000):
            if latency_judgement(histogram([*candidate[n - 1], 0]), histogram([*stable[9 * n - 1], 0]),
                                 confidence=0.9).verdict is Verdict.WORSE:
                worse += 1
                break
    assert worse / 150 <= 0.1


def test_bad_arguments_are_errors():
    stable = histogram([x * 1000 for x in STABLE_SHAPE])
    with pytest.raises(ValueError, match="max_ratio_to_stable"):
        judge("latency_p99_ms", INCREASE, 10, 0.95, "histogram", 0.99, stable, stable)
    with pytest.raises(ValueError, match="quantile"):
        judge("latency_p99_ms", RATIO, 1.1, 0.95, "histogram", None, stable, stable)


# --- planning --------------------------------------------------------------------------------

def test_the_worked_example_a_10_percent_p99_bound_needs_about_11000_requests():
    """docs/judgement.md: "no worse than stable by more than 10% at p99, 95% confidence" at a 5%
    canary, with nothing observed yet (a log-normal latency on buckets 19% apart): about 11,000
    candidate requests (the seed's "about 10,000"), about 2,250 for 25%."""
    assert 10_000 <= requests_needed(RATIO, 1.10, 0.95, "histogram", 0.99, None, 0.05) <= 12_000
    assert 2_000 <= requests_needed(RATIO, 1.25, 0.95, "histogram", 0.99, None, 0.05) <= 2_500


def test_requests_needed_grows_with_confidence_and_shrinks_with_the_effect_and_the_share():
    def error_plan(limit=0.005, confidence=0.95, share=0.05):
        return requests_needed(INCREASE, limit, confidence, "proportion", None, rates(100, 10_000), share)

    base = error_plan()
    assert error_plan(confidence=0.99) > base > error_plan(confidence=0.8)
    assert error_plan(limit=0.002) > base > error_plan(limit=0.02)
    # a smaller share leaves more of the traffic to stable, whose rate is then known better
    assert error_plan(share=0.01) < base < error_plan(share=0.5)
    latency = [requests_needed(RATIO, r, 0.95, "histogram", 0.99, None, 0.05) for r in (1.05, 1.10, 1.25, 1.5)]
    assert latency == sorted(latency, reverse=True)


def test_planned_requests_do_establish_not_worse_and_fewer_do_not():
    stable = rates(100, 10_000)
    needed = requests_needed(INCREASE, 0.005, 0.95, "proportion", None, stable, 0.05)
    at = lambda n: error_judgement(rates(n * 0.01, n), rates(n * 19 * 0.01, n * 19)).verdict  # noqa: E731
    assert at(needed) is Verdict.NOT_WORSE
    assert at(needed * 0.9) is Verdict.INCONCLUSIVE


def test_unreachable_plans_are_none():
    assert requests_needed(INCREASE, 0.0, 0.95, "proportion", None, None, 0.05) is None  # no room at all
    assert requests_needed(INCREASE, 0.005, 0.95, "proportion", None, None, 0.0) is None  # no traffic


def test_windows_in_two_bucket_layouts_sum_at_the_boundaries_both_have():
    """Serving pods restarted with other buckets mid-stage (docs/runbook.md): a window in Istio's
    default layout plus one in Sluice's. Counting a boundary one window lacks as 0 made a steady
    p99 of 2 s read as minutes and its tail "worse"; summed at the shared boundaries the CDF stays
    right there, and the judge reads the wider buckets safely."""
    old = (250.0, 500.0, 1000.0, 2500.0, 5000.0, INF)
    new = (250.0, 500.0, 1000.0, 1149.0, 1320.0, 1516.0, 1741.0, 2000.0, 2297.0, 2639.0, 3031.0, INF)
    from scipy.stats import lognorm

    def window(bounds: tuple[float, ...], n: float) -> VersionCounts:
        return VersionCounts(buckets=tuple((le, n * float(lognorm.cdf(le, 0.3, scale=1000.0))) for le in bounds))

    summed = window(old, 50_000) + window(new, 50_000)
    assert [le for le, _ in summed.buckets] == [250.0, 500.0, 1000.0, INF]
    assert [c for _, c in summed.buckets] == pytest.approx([c1 + c2 for (_, c1), (_, c2) in zip(
        window((250.0, 500.0, 1000.0, INF), 50_000).buckets, window((250.0, 500.0, 1000.0, INF), 50_000).buckets)])
    same = window(old, 5_000) + window(new, 5_000)
    assert latency_judgement(same, summed, confidence=0.99).verdict is not Verdict.WORSE
