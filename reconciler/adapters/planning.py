"""`reconciler plan`'s I/O: the base ref and the working tree loaded, compared by the core, and
(when the Pulumi SDK is installed and the repository has its program) the program run under the
SDK's mocks for each changed environment, on both sides: the resources it would create, update
or delete, and the policy pack's rules judged in-process over the head's resources.

The policy rules are the pack's own (`reconciler.core.policy`), evaluated directly rather than over
gRPC: a plan is a quick review aid; `reconciler preview` and `pulumi preview --policy-pack` run
the pack as the engine does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..core.evidence_plan import observed_rate
from ..core.observations import REQUESTS
from ..core.plan import Plan, new_findings, plan
from ..core.repository import Repository
from ..core.resource_diff import Change, diff_resources
from .base_ref import exported, released
from .repo_loader import load_repository


@dataclass(frozen=True)
class PolicyViolation:
    policy: str
    mandatory: bool
    message: str


@dataclass
class EnvironmentChecks:
    """What the program and the policy rules say about one environment after the change."""

    resources: list[Change] = field(default_factory=list)
    policies: int = 0  # rules run (core.policy.count_rules, as preview counts them)
    violations: list[PolicyViolation] = field(default_factory=list)
    skipped: str = ""  # why the program did not run, when it did not


def make_plan(root: Path, ref: str, run_program: bool = True) -> Plan:
    with exported(root, ref, with_program=run_program and (root / "infra").is_dir()) as base_root:
        base = load_repository(base_root)
        head = load_repository(root, released(root, ref, base.repository))
        result = plan(base.repository, head.repository, ref)
        result.findings, result.known_warnings = new_findings(head.findings, base.findings)
        if run_program:
            result.extra["environments"] = {
                env.name: _checks(base_root, root, env.name, head_ok=not head.errors)
                for env in result.environments if env.kind != "removed"}
    return result


def _checks(base_root: Path, head_root: Path, environment: str, head_ok: bool) -> EnvironmentChecks:
    if not head_ok:
        return EnvironmentChecks(skipped="the repository has errors (below)")
    if not (head_root / "infra").is_dir():
        return EnvironmentChecks(skipped="no infra/ program in this repository")
    try:
        from .offline_preview import planned, run_offline
    except ImportError:
        return EnvironmentChecks(skipped="the Pulumi SDK is not installed (pip install 'sluice[pulumi]')")
    from ..core.policy import count_rules, evaluate, policy_rules
    from ..core.policy.resources import PlannedResource

    head = run_offline(head_root, environment)
    existed = (base_root / "environments" / f"{environment}.yaml").exists()
    base = run_offline(base_root, environment) if existed else []
    rules = policy_rules()
    verdicts = evaluate([PlannedResource(r.urn, r.type, r.name, r.inputs) for r in head], rules)
    return EnvironmentChecks(
        diff_resources(planned(base), planned(head)), count_rules(r.name for r in rules),
        [PolicyViolation(v.rule.name, v.rule.mandatory, v.result.message) for v in verdicts if not v.result.unknown])


def observed_candidate_rps(repo: Repository, at: datetime, prometheus_url: str | None = None,
                           ) -> dict[tuple[str, str], float]:
    """Each in-flight candidate's requests per second since its stage began ({(environment, model):
    rps}), from one `requests` range query per environment; a version not seen yet, or a
    Prometheus that does not answer, is left out (planning then uses the declared rate)."""
    from .rollout_pass import MAX_LOOKBACK, prometheus_client
    from .prometheus import observe

    out = {}
    for name, env in sorted(repo.environments.items()):
        started = {model: dep for model, dep in env.models.items()
                   if dep.candidate and dep.stage_started_at and dep.stage_started_at < at}
        if not started:
            continue
        since = max(min(dep.stage_started_at for dep in started.values()) - env.metrics.window,  # type: ignore[type-var]
                    at - MAX_LOOKBACK)
        observed = observe(prometheus_client(env, prometheus_url), env, [REQUESTS], sorted(started), at, since)
        for model, dep in started.items():
            rate = observed_rate(observed.requests, (model, dep.candidate), dep.stage_started_at, env.metrics.window)  # type: ignore[arg-type]
            if rate is not None:
                out[(name, model)] = rate
    return out
