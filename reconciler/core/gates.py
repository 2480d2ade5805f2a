"""Live gates and rollback triggers: one metric's reading against its bounds, as a phase and a
message that quantifies ("latency_p99_ms 1,840 > 1.2 x stable 1,400 = 1,680 over 5m").

A gate may hold several bounds; it passes only when every one holds. Absolute bounds (`min`,
`max`) read the candidate alone; relative bounds read the stable version over the same window, so
both sides saw the same traffic mix and time of day. Missing data is never a pass: no candidate
series (or no stable series for a relative bound) is INCONCLUSIVE, a failed query is ERROR.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from .predeployment import Phase
from .release import Gate, RollbackTrigger


@dataclass(frozen=True)
class GateCheck:
    metric: str
    phase: Phase
    message: str
    value: float | None = None


@dataclass(frozen=True)
class Breach:
    """A rollback trigger that fired: what, how much, against which bound."""

    metric: str
    value: float
    bound: str  # "max" or "min"
    threshold: float
    message: str


def number(value: float) -> str:
    """Short, exact enough for people: 0.0812 -> "0.0812", 1840.4 -> "1,840", 2.3149 -> "2.315"."""
    shown = printed(value)
    return f"{shown:,}" if isinstance(shown, int) else f"{value:.4g}"


def printed(value: float) -> float | int:
    """`number`'s rounding, kept a number for records machines read too (incident YAML):
    0.08999999999999998 -> 0.09, 1840.4 -> 1840, 999.99999 -> 1000; inf and nan stay as they are."""
    if not math.isfinite(value):
        return value
    short = float(f"{value:.4g}")
    if abs(value) >= 1000 or abs(short) >= 1000:  # 999.99999 rounds to 1000: print it as 1,000
        return round(value)
    return short


# bound name -> (allowed(value, stable, limit), how the limit reads, the limit as a number)
def at_most(value: float, limit: float) -> bool:
    """Inclusive, and blind to binary rounding: 0.035 is at most 0.03 + 0.005 (= 0.034999...)."""
    return value <= limit or math.isclose(value, limit, rel_tol=1e-9, abs_tol=1e-12)


def at_least(value: float, limit: float) -> bool:
    return value >= limit or math.isclose(value, limit, rel_tol=1e-9, abs_tol=1e-12)


RELATIVE_BOUNDS: dict[str, tuple[Callable[[float, float], bool], str, Callable[[float, float], float]]] = {
    "max_ratio_to_stable": (at_most, "{k} x stable {s}", lambda s, k: k * s),
    "min_ratio_to_stable": (at_least, "{k} x stable {s}", lambda s, k: k * s),
    "max_increase_over_stable": (at_most, "stable {s} + {k}", lambda s, k: s + k),
    "max_decrease_from_stable": (at_least, "stable {s} - {k}", lambda s, k: s - k),
}
_UPPER = {"max", "max_ratio_to_stable", "max_increase_over_stable"}


def check_gate(gate: Gate, candidate: float | None, stable: float | None, *, window: str,
               error: str | None = None, candidate_label: str = "candidate",
               stable_label: str = "stable") -> GateCheck:
    """Judge one gate.

    Example: Gate(metric="latency_p99_ms", max_ratio_to_stable=1.2), candidate 1840, stable 1400
    -> FAIL "latency_p99_ms 1,840 > 1.2 x stable 1,400 = 1,680 over 5m".
    """
    metric = gate.metric
    if error is not None:
        return GateCheck(metric, Phase.ERROR, f"{metric}: query failed: {error}")
    if candidate is None:
        return GateCheck(metric, Phase.INCONCLUSIVE, f"{metric}: no data from {candidate_label} over {window}")
    failures, passes = [], []
    for bound in ("min", "max"):
        limit = getattr(gate, bound)
        if limit is not None:
            ok = at_most(candidate, limit) if bound == "max" else at_least(candidate, limit)
            (passes if ok else failures).append(_reading(metric, candidate, bound, ok, f"{bound} {number(limit)}"))
    for bound, (allowed, text, threshold) in RELATIVE_BOUNDS.items():
        limit = getattr(gate, bound)
        if limit is None:
            continue
        if stable is None:
            return GateCheck(metric, Phase.INCONCLUSIVE,
                             f"{metric}: no data from {stable_label} over {window} to compare with", candidate)
        ok = allowed(candidate, threshold(stable, limit))
        described = text.format(k=number(limit), s=number(stable)) + f" = {number(threshold(stable, limit))}"
        (passes if ok else failures).append(_reading(metric, candidate, bound, ok, described))
    if failures:
        return GateCheck(metric, Phase.FAIL, "; ".join(failures) + f" over {window}", candidate)
    return GateCheck(metric, Phase.PASS, "; ".join(passes) + f" over {window}", candidate)


def _reading(metric: str, value: float, bound: str, ok: bool, limit: str) -> str:
    upper = bound in _UPPER
    sign = ("<=" if ok else ">") if upper else (">=" if ok else "<")
    return f"{metric} {number(value)} {sign} {limit}"


def check_trigger(trigger: RollbackTrigger, value: float | None, *, window: str) -> Breach | None:
    """A rollback trigger fires when the candidate's value is above `max` or below `min`.

    Example: RollbackTrigger(metric="error_rate", max=0.05), value 0.081
    -> Breach("error_rate 0.081 > max 0.05 over 5m"). No data never fires (the dead man's switch
    covers a candidate that stopped reporting).
    """
    if value is None:
        return None
    if trigger.max is not None and not at_most(value, trigger.max):
        return Breach(trigger.metric, value, "max", trigger.max,
                      f"{trigger.metric} {number(value)} > max {number(trigger.max)} over {window}")
    if trigger.min is not None and not at_least(value, trigger.min):
        return Breach(trigger.metric, value, "min", trigger.min,
                      f"{trigger.metric} {number(value)} < min {number(trigger.min)} over {window}")
    return None
