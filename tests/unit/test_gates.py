"""Live gates and rollback triggers (pure): one metric's reading against its bounds, as a phase and
a message that quantifies.

Every bound is inclusive: a value exactly at the bound passes a gate and does not fire a trigger.
Messages are asserted whole, so a reworded or mis-rounded message is a failing test, not a surprise
in a 3 a.m. page.
"""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.core.gates import Breach, GateCheck, check_gate, check_trigger, number
from reconciler.core.predeployment import Phase
from reconciler.core.release import Gate, RollbackTrigger

PASS, FAIL, INCONCLUSIVE, ERROR = Phase.PASS, Phase.FAIL, Phase.INCONCLUSIVE, Phase.ERROR
WINDOW = "5m"


def judge(metric: str, candidate: float | None, stable: float | None = None, **bounds: Any) -> GateCheck:
    """check_gate on a gate built from `bounds`, over a 5m window, with the default labels."""
    return check_gate(Gate(metric=metric, **bounds), candidate, stable, window=WINDOW)


# --------------------------------------------------------------------------- one bound at a time


@pytest.mark.parametrize(
    ("metric", "bound", "limit", "candidate", "stable", "phase", "message"),
    [
        # min: the candidate alone
        ("quality_score", "min", 0.6, 0.82, None, PASS, "quality_score 0.82 >= min 0.6 over 5m"),
        ("quality_score", "min", 0.6, 0.6, None, PASS, "quality_score 0.6 >= min 0.6 over 5m"),
        ("quality_score", "min", 0.6, 0.55, None, FAIL, "quality_score 0.55 < min 0.6 over 5m"),
        # max: the candidate alone
        ("ttft_p99_seconds", "max", 1.5, 0.9, None, PASS, "ttft_p99_seconds 0.9 <= max 1.5 over 5m"),
        ("ttft_p99_seconds", "max", 1.5, 1.5, None, PASS, "ttft_p99_seconds 1.5 <= max 1.5 over 5m"),
        ("ttft_p99_seconds", "max", 1.5, 2.3149, None, FAIL, "ttft_p99_seconds 2.315 > max 1.5 over 5m"),
        # max_ratio_to_stable: candidate <= k x stable
        ("latency_p99_ms", "max_ratio_to_stable", 1.2, 1500, 1400, PASS,
         "latency_p99_ms 1,500 <= 1.2 x stable 1,400 = 1,680 over 5m"),
        ("latency_p99_ms", "max_ratio_to_stable", 1.2, 1680, 1400, PASS,
         "latency_p99_ms 1,680 <= 1.2 x stable 1,400 = 1,680 over 5m"),
        ("latency_p99_ms", "max_ratio_to_stable", 1.2, 1840, 1400, FAIL,
         "latency_p99_ms 1,840 > 1.2 x stable 1,400 = 1,680 over 5m"),
        # min_ratio_to_stable: candidate >= k x stable
        ("user_satisfaction", "min_ratio_to_stable", 0.98, 0.9, 0.9, PASS,
         "user_satisfaction 0.9 >= 0.98 x stable 0.9 = 0.882 over 5m"),
        ("user_satisfaction", "min_ratio_to_stable", 0.98, 0.882, 0.9, PASS,
         "user_satisfaction 0.882 >= 0.98 x stable 0.9 = 0.882 over 5m"),
        ("user_satisfaction", "min_ratio_to_stable", 0.98, 0.85, 0.9, FAIL,
         "user_satisfaction 0.85 < 0.98 x stable 0.9 = 0.882 over 5m"),
        # max_increase_over_stable: candidate <= stable + k
        ("error_rate", "max_increase_over_stable", 0.005, 0.012, 0.01, PASS,
         "error_rate 0.012 <= stable 0.01 + 0.005 = 0.015 over 5m"),
        ("error_rate", "max_increase_over_stable", 0.005, 0.015, 0.01, PASS,
         "error_rate 0.015 <= stable 0.01 + 0.005 = 0.015 over 5m"),
        ("error_rate", "max_increase_over_stable", 0.005, 0.0212, 0.01, FAIL,
         "error_rate 0.0212 > stable 0.01 + 0.005 = 0.015 over 5m"),
        # max_decrease_from_stable: candidate >= stable - k
        ("quality_score", "max_decrease_from_stable", 0.02, 0.89, 0.9, PASS,
         "quality_score 0.89 >= stable 0.9 - 0.02 = 0.88 over 5m"),
        ("quality_score", "max_decrease_from_stable", 0.02, 0.88, 0.9, PASS,
         "quality_score 0.88 >= stable 0.9 - 0.02 = 0.88 over 5m"),
        ("quality_score", "max_decrease_from_stable", 0.02, 0.8512, 0.9, FAIL,
         "quality_score 0.8512 < stable 0.9 - 0.02 = 0.88 over 5m"),
    ],
    ids=[
        "min passes above the bound",
        "min passes exactly at the bound",
        "min fails below the bound",
        "max passes below the bound",
        "max passes exactly at the bound",
        "max fails above the bound",
        "max_ratio_to_stable passes below k x stable",
        "max_ratio_to_stable passes exactly at k x stable",
        "max_ratio_to_stable fails above k x stable",
        "min_ratio_to_stable passes above k x stable",
        "min_ratio_to_stable passes exactly at k x stable",
        "min_ratio_to_stable fails below k x stable",
        "max_increase_over_stable passes below stable + k",
        "max_increase_over_stable passes exactly at stable + k",
        "max_increase_over_stable fails above stable + k",
        "max_decrease_from_stable passes above stable - k",
        "max_decrease_from_stable passes exactly at stable - k",
        "max_decrease_from_stable fails below stable - k",
    ],
)
def test_one_bound(metric: str, bound: str, limit: float, candidate: float, stable: float | None,
                   phase: Phase, message: str) -> None:
    check = judge(metric, candidate, stable, **{bound: limit})
    assert check == GateCheck(metric, phase, message, candidate)


@pytest.mark.parametrize(
    ("metric", "bound", "limit", "candidate", "stable"),
    [
        ("error_rate", "max_increase_over_stable", 0.005, 0.035, 0.03),  # 0.03 + 0.005 = 0.034999999999999996
        ("quality_score", "min_ratio_to_stable", 0.98, 0.7938, 0.81),  # 0.98 * 0.81 = 0.7938000000000001
    ],
    ids=[
        "error rate exactly at stable 0.03 + 0.005 passes",
        "quality exactly at 0.98 x stable 0.81 passes",
    ],
)
def test_a_reading_exactly_at_a_decimal_relative_bound_passes(
        metric: str, bound: str, limit: float, candidate: float, stable: float) -> None:
    assert judge(metric, candidate, stable, **{bound: limit}).phase is PASS


# --------------------------------------------------------------------------- several bounds on one gate


@pytest.mark.parametrize(
    ("candidate", "phase", "message"),
    [
        (0.006, PASS, "error_rate 0.006 <= max 0.02; error_rate 0.006 <= stable 0.01 + 0.005 = 0.015 over 5m"),
        (0.018, FAIL, "error_rate 0.018 > stable 0.01 + 0.005 = 0.015 over 5m"),
        (0.03, FAIL, "error_rate 0.03 > max 0.02; error_rate 0.03 > stable 0.01 + 0.005 = 0.015 over 5m"),
    ],
    ids=[
        "both bounds hold: the gate passes and names both",
        "one bound fails: the gate fails and names only the failure",
        "both bounds fail: the gate fails and names both failures",
    ],
)
def test_several_bounds_on_one_gate(candidate: float, phase: Phase, message: str) -> None:
    check = judge("error_rate", candidate, 0.01, max=0.02, max_increase_over_stable=0.005)
    assert check == GateCheck("error_rate", phase, message, candidate)


@pytest.mark.parametrize(
    ("candidate", "phase", "message"),
    [
        (0.5, PASS, "quality_score 0.5 >= min 0.5; quality_score 0.5 <= max 0.9 over 5m"),
        (0.9, PASS, "quality_score 0.9 >= min 0.5; quality_score 0.9 <= max 0.9 over 5m"),
        (0.45, FAIL, "quality_score 0.45 < min 0.5 over 5m"),
        (0.95, FAIL, "quality_score 0.95 > max 0.9 over 5m"),
    ],
    ids=["at the lower edge of a band", "at the upper edge of a band", "below a band", "above a band"],
)
def test_a_band_of_min_and_max(candidate: float, phase: Phase, message: str) -> None:
    assert judge("quality_score", candidate, min=0.5, max=0.9) == GateCheck("quality_score", phase, message, candidate)


def test_all_four_relative_bounds_together_read_in_a_fixed_order() -> None:
    check = judge("score", 1.0, 1.0, max_ratio_to_stable=1.1, min_ratio_to_stable=0.9,
                  max_increase_over_stable=0.2, max_decrease_from_stable=0.2)
    assert check.phase is PASS
    assert check.message == ("score 1 <= 1.1 x stable 1 = 1.1; score 1 >= 0.9 x stable 1 = 0.9; "
                             "score 1 <= stable 1 + 0.2 = 1.2; score 1 >= stable 1 - 0.2 = 0.8 over 5m")


# --------------------------------------------------------------------------- missing data and errors


def test_no_candidate_data_is_inconclusive_never_a_pass() -> None:
    check = check_gate(Gate(metric="latency_p99_ms", max=4000), None, 1400, window=WINDOW, candidate_label="v1.3.0")
    assert check == GateCheck("latency_p99_ms", INCONCLUSIVE, "latency_p99_ms: no data from v1.3.0 over 5m")


def test_no_candidate_data_names_the_default_label() -> None:
    assert judge("error_rate", None, 0.01, max_increase_over_stable=0.005).message == \
        "error_rate: no data from candidate over 5m"


def test_no_stable_data_for_a_relative_bound_is_inconclusive() -> None:
    check = check_gate(Gate(metric="latency_p99_ms", max_ratio_to_stable=1.2), 1500, None, window=WINDOW,
                       candidate_label="v1.3.0", stable_label="stable v1.2.0")
    assert check == GateCheck("latency_p99_ms", INCONCLUSIVE,
                              "latency_p99_ms: no data from stable v1.2.0 over 5m to compare with", 1500)


def test_an_absolute_gate_needs_no_stable() -> None:
    assert judge("ttft_p99_seconds", 0.9, None, max=1.5).phase is PASS


def test_a_query_error_is_an_error_not_missing_data() -> None:
    check = check_gate(Gate(metric="error_rate", max=0.01), 0.5, 0.001, window=WINDOW, error="HTTP 503 from Prometheus")
    assert check == GateCheck("error_rate", ERROR, "error_rate: query failed: HTTP 503 from Prometheus")


def test_the_window_is_named_as_given() -> None:
    assert judge("ttft_p99_seconds", 0.9, max=1.5).message == "ttft_p99_seconds 0.9 <= max 1.5 over 5m"
    check = check_gate(Gate(metric="ttft_p99_seconds", max=1.5), 0.9, None, window="1h30m")
    assert check.message == "ttft_p99_seconds 0.9 <= max 1.5 over 1h30m"


# --------------------------------------------------------------------------- rollback triggers


@pytest.mark.parametrize(
    ("trigger", "value", "breach"),
    [
        (RollbackTrigger(metric="error_rate", max=0.05), 0.081,
         Breach("error_rate", 0.081, "max", 0.05, "error_rate 0.081 > max 0.05 over 5m")),
        (RollbackTrigger(metric="latency_p99_ms", max=4000), 4210.4,
         Breach("latency_p99_ms", 4210.4, "max", 4000, "latency_p99_ms 4,210 > max 4,000 over 5m")),
        (RollbackTrigger(metric="quality_score", min=0.6), 0.55,
         Breach("quality_score", 0.55, "min", 0.6, "quality_score 0.55 < min 0.6 over 5m")),
        (RollbackTrigger(metric="error_rate", max=0.05), 0.05, None),
        (RollbackTrigger(metric="quality_score", min=0.6), 0.6, None),
        (RollbackTrigger(metric="error_rate", max=0.05), 0.004, None),
        (RollbackTrigger(metric="quality_score", min=0.6, max=0.99), 0.8, None),
        (RollbackTrigger(metric="quality_score", min=0.6, max=0.99), 0.995,
         Breach("quality_score", 0.995, "max", 0.99, "quality_score 0.995 > max 0.99 over 5m")),
        (RollbackTrigger(metric="error_rate", max=0.05), None, None),
        (RollbackTrigger(metric="quality_score", min=0.6), None, None),
    ],
    ids=[
        "above max breaches",
        "above a max in the thousands breaches, with grouped digits",
        "below min breaches",
        "exactly at max does not breach",
        "exactly at min does not breach",
        "well under max does not breach",
        "inside a min-max band does not breach",
        "above the max of a band breaches on max",
        "no data never breaches a max (the dead man's switch covers silence)",
        "no data never breaches a min",
    ],
)
def test_trigger(trigger: RollbackTrigger, value: float | None, breach: Breach | None) -> None:
    assert check_trigger(trigger, value, window=WINDOW) == breach


# --------------------------------------------------------------------------- number formatting


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0812, "0.0812"),
        (1840.4, "1,840"),
        (2.3149, "2.315"),
        (1000, "1,000"),
        (999.4, "999.4"),
        (12_345.6, "12,346"),
        (1_000_000, "1,000,000"),
        (-1500, "-1,500"),
        (0, "0"),
        (0.05, "0.05"),
        (1.2, "1.2"),
        (0.1 + 0.2, "0.3"),
    ],
    ids=[
        "a small ratio keeps four significant digits",
        "thousands are grouped and rounded to a whole number",
        "four significant digits, rounded",
        "exactly a thousand is grouped",
        "just under a thousand keeps its decimal",
        "tens of thousands are grouped",
        "millions are grouped",
        "a negative number keeps its sign and grouping",
        "zero",
        "a threshold reads as written",
        "a ratio reads as written",
        "float noise does not show",
    ],
)
def test_number(value: float, text: str) -> None:
    assert number(value) == text
