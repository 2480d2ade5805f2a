"""Pre-deployment gates: offline evaluation of a candidate, judged before it takes any traffic.

The defaults (docs/formats.md#pre-deployment-gates): toxicity < 0.05 (block), win rate vs current
> 50% (block), adversarial suite 100% pass (block), latency p99 < current + 20% (warn). Results are values with phases and
quantified messages ("toxicity 0.071 >= max 0.05"), shared by `validate` now and by the rollout start and the policy pack later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from .environment import PreDeploymentGates
from .release import Evaluation


class Phase(StrEnum):
    """A gate's result, pre-deployment or live (Argo Rollouts' analysis phases)."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"  # not enough data to judge (no series, no stable to compare with)
    ERROR = "error"  # the measurement itself failed (a query error): live gates only


@dataclass(frozen=True, slots=True)
class GateResult:
    gate: str
    field: str  # the evaluation field the gate reads
    phase: Phase
    blocking: bool  # a failure blocks (error) or only warns
    message: str
    fix: str = ""

    @property
    def failed(self) -> bool:
        return self.phase is not Phase.PASS


def evaluate_predeployment(
    candidate: Evaluation, stable: Evaluation | None, limits: PreDeploymentGates
) -> list[GateResult]:
    """Judge a candidate's offline evaluation against the environment's limits and the stable one.

    Example: toxicity 0.071 with max_toxicity 0.05 -> GateResult("toxicity", FAIL, blocking=True,
    "toxicity 0.071 >= max 0.05"). Gates that compare with stable pass when there is no stable.
    """
    results = [
        _upper("toxicity", "toxicity", candidate.toxicity, limits.max_toxicity, blocking=True,
               fix="retrain or filter, then re-run the toxicity suite"),
        _lower_inclusive("adversarial-suite", "adversarial_pass_rate", candidate.adversarial_pass_rate,
                         limits.min_adversarial_pass_rate,
                         fix="fix the failing adversarial cases and re-run the suite"),
    ]
    if stable is not None:
        if candidate.win_rate_vs_current is None:
            results.append(GateResult(
                "win-rate", "win_rate_vs_current", Phase.INCONCLUSIVE, True,
                "win_rate_vs_current is missing, but there is a stable version to beat",
                "run the pairwise evaluation against the current stable and record win_rate_vs_current"))
        else:
            rate = candidate.win_rate_vs_current
            ok = rate > limits.min_win_rate
            results.append(GateResult(
                "win-rate", "win_rate_vs_current", Phase.PASS if ok else Phase.FAIL, True,
                f"win rate vs current {percent(rate)} {'>' if ok else '<='} min {percent(limits.min_win_rate)}",
                "" if ok else "the candidate must beat the stable version in pairwise evaluation"))
        ceiling = stable.latency_p99_ms * (1 + limits.max_latency_increase)
        p99 = candidate.latency_p99_ms
        ok = p99 < ceiling and not math.isclose(p99, ceiling, rel_tol=1e-9)  # exactly +20% fails, float or not
        results.append(GateResult(
            "latency-p99", "latency_p99_ms", Phase.PASS if ok else Phase.FAIL, False,
            f"latency p99 {p99:g} ms {'<' if ok else '>='} stable {stable.latency_p99_ms:g} ms "
            f"+ {limits.max_latency_increase:.0%} = {ceiling:g} ms",
            "" if ok else "profile the serving path or accept the slowdown knowingly"))
    return results


def _upper(gate: str, field: str, value: float, limit: float, *, blocking: bool, fix: str) -> GateResult:
    ok = value < limit
    return GateResult(gate, field, Phase.PASS if ok else Phase.FAIL, blocking,
                      f"{gate} {value:g} {'<' if ok else '>='} max {limit:g}", "" if ok else fix)


def _lower_inclusive(gate: str, field: str, value: float, limit: float, *, fix: str) -> GateResult:
    ok = value >= limit
    return GateResult(gate, field, Phase.PASS if ok else Phase.FAIL, True,
                      f"{gate} pass rate {percent(value)} {'>=' if ok else '<'} required {percent(limit)}",
                      "" if ok else fix)


def percent(share: float) -> str:
    """As many digits as it takes to tell values apart: 0.9995 -> "99.95%", 1.0 -> "100%"."""
    return f"{share * 100:.6g}%"
