"""bench/bench_judge.py: the simulated traffic has the statistics the benchmark claims, the
baseline judges apply their rules, and Sluice's judge is the reconciler's own `decide`.

No timings here (bench/README.md has them).
"""

from __future__ import annotations

import numpy as np
import pytest

from bench import bench_judge
from bench.bench_judge import (
    ADVANCE, ROLLBACK, THRESHOLD_FAILED_CHECKS, Settings, fixed_window_judge, latency_table, mann_whitney_high,
    sluice_rollout, sluice_setup, threshold_judge)
from bench.traffic_sim import (
    CANDIDATE, CONDITIONS, STABLE, VLLM_E2E_BUCKETS_S, Histories, TrafficModel, histogram_quantile,
    request_latencies, simulate)
from reconciler.core.decision import Action, Decision

MODEL = TrafficModel()


@pytest.fixture(scope="module")
def table():
    return latency_table("vllm", 0, Settings().model)


def histories(condition: str, rollouts: int, table, seed: int = 1, minutes: int = 720) -> Histories:
    return simulate(CONDITIONS[condition], rollouts, minutes, table, MODEL, np.random.default_rng(seed))


def test_histogram_quantile_interpolates_like_prometheus():
    counts = np.array([[60, 39, 1], [0, 0, 0], [0, 0, 5]])
    values = histogram_quantile(0.9, (1.0, 2.0), counts)
    assert values[0] == pytest.approx(1 + 30 / 39)
    assert np.isnan(values[1])  # no requests: no value, as Prometheus answers NaN
    assert values[2] == 2.0  # in the +Inf bucket: the highest finite boundary


def test_latency_is_heavy_tailed_and_output_length_driven():
    latency = request_latencies(MODEL, np.random.default_rng(0), 400_000)
    p50, p99, p9999 = np.quantile(latency, [0.5, 0.99, 0.9999])
    assert 4 < p50 < 12  # a few hundred tokens at ~30 ms each
    assert p99 / p50 > 5  # long answers: the tail is far from the body
    assert p99 < MODEL.max_tokens * MODEL.tpot_median_s * 1.5  # capped by max_tokens, not unbounded
    # the first-token stalls (Pareto, shape 1.5) reach far beyond the log-normal body
    assert p9999 > 1.2 * np.quantile(latency, 0.999)


def test_traffic_is_split_by_weight_with_diurnal_and_burst_rates(table):
    h = histories("aa", 40, table)
    share = h.requests[:, :, CANDIDATE].sum(axis=1) / h.requests.sum(axis=(1, 2))
    assert np.allclose(share, h.weight, rtol=0.15)
    rps = h.requests.sum(axis=2) / 60
    mean = rps.mean(axis=1)
    assert (mean > MODEL.rps_low * 0.5).all() and (mean < MODEL.rps_high * 2).all()
    assert (rps.max(axis=1) / rps.min(axis=1) > 1.5).all()  # the rate moves over 12 hours
    error_share = h.errors.sum() / h.requests.sum()
    assert MODEL.base_error_rate < error_share < 4 * MODEL.base_error_rate  # load and blips add to the base


def test_conditions_change_the_candidate_only_except_the_global_incident(table):
    def p99_ratio(condition: str) -> float:
        h = histories(condition, 30, table)
        whole = h.buckets.sum(axis=(0, 1))  # every request of every rollout
        p99 = histogram_quantile(0.99, h.boundaries, whole)
        return p99[CANDIDATE] / p99[STABLE]

    assert p99_ratio("aa") == pytest.approx(1.0, abs=0.05)
    assert p99_ratio("latency_25") > 1.2
    errors = histories("errors_2pp", 30, table)
    rate = errors.errors.sum(axis=(0, 1)) / errors.requests.sum(axis=(0, 1))
    assert rate[CANDIDATE] - rate[STABLE] == pytest.approx(0.02, abs=0.004)
    incident = histories("global_incident", 30, table)
    per_minute = incident.errors.sum(axis=(0, 2)) / incident.requests.sum(axis=(0, 2))
    assert per_minute.max() > 0.03  # both versions fail together for a while


def test_threshold_judge_counts_an_empty_interval_as_a_failed_check(table):
    h = histories("aa", 2, table, minutes=30)
    h.requests[0, :, CANDIDATE] = 0  # the candidate served nothing: Flagger's "no values found"
    h.errors[0, :, CANDIDATE] = 0
    h.buckets[0, :, CANDIDATE, :] = 0
    out = threshold_judge(h, max_latency=1e9)
    assert out.decision[0] == ROLLBACK and out.minutes[0] == THRESHOLD_FAILED_CHECKS
    assert out.requests[0] == 0


def test_fixed_window_judge_needs_significance_and_effect():
    rng = np.random.default_rng(0)
    stable = rng.normal(50, 3, 60)
    assert mann_whitney_high(stable * 1.3, stable, ratio=1.1)
    assert not mann_whitney_high(stable * 1.05, stable, ratio=1.1)  # significant, but within the allowed increase
    assert not mann_whitney_high(np.full(60, np.nan), stable, ratio=1.1)  # no data is not High


def test_fixed_window_judge_decides_at_the_end_of_its_window(table):
    h = histories("latency_50", 4, table, minutes=60)
    out = fixed_window_judge(h, 60)
    assert set(out.decision) <= {ROLLBACK, ADVANCE}
    assert (out.minutes == 60).all()


def test_sluice_judge_is_the_reconcilers_decide(table, monkeypatch):
    """Every pass is one call of reconciler.core.decide.decide, and its Decision is the outcome."""
    import reconciler.core.decide as decide_module

    calls = []
    real = decide_module.decide

    def spy(*args, **kwargs):
        decisions = real(*args, **kwargs)
        calls.append(decisions)
        return decisions

    monkeypatch.setattr(decide_module, "decide", spy)
    h = histories("errors_2pp", 1, table, seed=5)
    h.weight[:] = 0.05
    setup = sluice_setup((5,))
    decision, minute, kept = sluice_rollout(h, 0, setup, pass_every=10, keep=True)
    assert calls and len(calls) == len(kept) and all(isinstance(d, Decision) for d in kept)
    assert kept[-1] is calls[-1][0]
    assert minute == 10 * len(kept)
    assert decision == {Action.ROLLBACK: ROLLBACK, Action.PROMOTE: ADVANCE}[kept[-1].action]


def test_sluice_rolls_back_on_the_judgement_of_a_statistical_trigger(table):
    h = histories("errors_2pp", 1, table, seed=5)
    h.weight[:] = 0.05
    decision, _, kept = sluice_rollout(h, 0, sluice_setup((5,)), pass_every=10, keep=True)
    assert decision == ROLLBACK
    worse = [j for j in kept[-1].judgements if j.verdict == "worse"]
    assert [j.metric for j in worse] == ["error_rate"] and worse[0].confidence == 0.99
    assert "worse than stable at 99%" in kept[-1].reasons[0]


def test_istio_buckets_are_judged_as_the_catalogs_istio_metric_in_ms():
    """`--buckets sluice` is the set Sluice would give its serving pods (one constant, in the core),
    recorded by Istio: the release judges `latency_p99_ms`, whose boundaries are milliseconds."""
    from bench.traffic_sim import BUCKETS
    from reconciler.core.serving_manifests import SERVING_LATENCY_BUCKETS_MS

    assert BUCKETS["sluice"] == tuple(ms / 1000 for ms in SERVING_LATENCY_BUCKETS_MS)
    sluice = latency_table("sluice", 0, MODEL)
    h = histories("latency_50", 1, sluice, seed=3, minutes=120)
    h.weight[:] = 0.05
    setup = sluice_setup((5,), "sluice")
    _, _, kept = sluice_rollout(h, 0, setup, pass_every=30, keep=True)
    assert {j.metric for j in kept[-1].judgements} == {"latency_p99_ms", "error_rate"}
    observations = bench_judge.ObservationBuilder(h, 0, 5, setup.latency_metric, setup.latency_unit_s).at(60)
    _, counts = observations.evidence["latency_p99_ms"].points[("chat-assistant", "1.2.0")][-1]
    assert [le for le, _ in counts.buckets][:-1] == pytest.approx(SERVING_LATENCY_BUCKETS_MS)
    assert 30_000 < observations.metrics["latency_p99_ms"].values[("chat-assistant", "1.2.0")] < 300_000


def test_leaving_out_the_planning_sentence_changes_no_decision(table):
    h = histories("latency_50", 3, table, seed=2, minutes=240)
    planned = bench_judge.sluice_judge(h, 30, plan_reasons=True)
    fast = bench_judge.sluice_judge(h, 30, plan_reasons=False)
    assert (fast.decision == ROLLBACK).any() and (fast.minutes > 30).any()  # held (gates planned) before deciding
    assert (planned.decision == fast.decision).all()
    assert np.array_equal(planned.minutes, fast.minutes, equal_nan=True)


def test_time_to_a_correct_decision_counts_a_wrong_one_as_never():
    """The fair comparison of speed: a judge that decides at 60 minutes but is wrong in 3 of 5
    rollouts has no median time to a correct decision; the one right in 3 of 5 has its third."""
    minutes = np.array([60, 60, 60, 60, 60])
    wrong_three = np.array([bench_judge.ROLLBACK, ADVANCE, ADVANCE, ADVANCE, bench_judge.UNDECIDED])
    figures = bench_judge.summary(bench_judge.Outcomes(wrong_three, minutes, minutes * 50), CONDITIONS["latency_25"])
    assert figures["correct_rate"] == 0.2 and figures["median_correct_decision_all_s"] is None
    assert figures["median_correct_decision_s"] == 3600.0  # over the one correct rollout only
    right_three = np.array([ROLLBACK, ROLLBACK, ROLLBACK, ADVANCE, bench_judge.UNDECIDED])
    times = np.array([30, 90, 120, 10, 720])
    figures = bench_judge.summary(bench_judge.Outcomes(right_three, times, times * 50), CONDITIONS["latency_25"])
    assert figures["median_correct_decision_all_s"] == 120 * 60


@pytest.mark.parametrize("worse", [True, False])
def test_the_oracles_test_has_size_alpha_at_the_tolerance_and_gains_power_with_requests(worse):
    """The randomized binomial test is exactly of size alpha at a 1% tail share, for every number of
    requests (none included: a coin flip), and its power grows with the requests."""
    alpha = bench_judge.oracle_alpha(worse)
    n = np.arange(0, 20_000, 37)
    size = bench_judge.oracle_power(n, bench_judge.TAIL_SHARE, worse)
    assert size == pytest.approx(np.full(len(n), alpha), abs=1e-12)
    power = bench_judge.oracle_power(n, 0.015 if worse else 0.006, worse)
    assert power[0] == pytest.approx(alpha) and (np.diff(power) >= -1e-12).all() and power[-1] > 0.99


def test_the_oracle_knows_the_true_tail_share_and_which_decision_is_correct(table):
    """p* is the exact sample's share above 1.10x stable's p99: 1% exactly when the candidate is
    1.10x slower (the tolerance), below it in A/A, above it at +25%."""
    assert bench_judge.tail_share(table, 1.10) == pytest.approx(0.01, abs=1e-5)
    assert bench_judge.tail_share(table, 1.0) < 0.01 < bench_judge.tail_share(table, 1.25)
    questions = {c: bench_judge.latency_question(CONDITIONS[c]) for c in CONDITIONS}
    assert questions == {"aa": False, "latency_10": None, "latency_25": True, "latency_50": True,
                         "errors_0_5pp": None, "errors_2pp": None, "global_incident": False}


def test_no_valid_judge_beats_the_oracle_sluice_included():
    """On a small run of the benchmark, Sluice's median time to a correct decision (wrong = never)
    is no shorter than the oracle's, and its share correct by each minute is no larger than the
    oracle's mean power, up to the noise of 8 rollouts."""
    settings = Settings(rollouts=8, conditions=("latency_25",), judges=("sluice",), chunk=8, workers=1,
                        plan_reasons=False)
    results = bench_judge.run(settings, progress=False)
    bound = results[bench_judge.ORACLE]["latency_25"]
    sluice = results["sluice"]["latency_25"]
    mine = bench_judge.bound_summary(bound, CONDITIONS["latency_25"], latency_table(settings.buckets, 0, MODEL), 60)
    theirs = bench_judge.summary(sluice, CONDITIONS["latency_25"])["median_correct_decision_all_s"]
    assert mine["median_correct_decision_all_s"] <= (theirs if theirs is not None else np.inf)
    correct_by = (sluice.decision == ROLLBACK)[:, None] & (sluice.minutes[:, None] <= np.arange(1, 721)[None, :])
    assert (correct_by.mean(axis=0) <= bound.power.mean(axis=0) + 0.25).all()  # 2 of 8 rollouts: sampling noise
