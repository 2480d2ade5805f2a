"""Rules about an environment and the releases it points at."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timedelta
from typing import Iterator

from ..decide import in_the_future
from ..environment import Environment, GpuPool, ModelDeployment, Policy
from ..findings import Finding, Problem, Severity, findings_from
from ..predeployment import evaluate_predeployment
from ..release import Release, statistical_bound
from ..repository import Repository
from ..traffic import POINTERS, live_releases, pool_demand
from ..evaluator_manifests import evaluator_name
from ..naming import is_service_name, service_names
from ..types import DNS_LABEL, format_duration, utc_text, version_key
from . import rule

def _deployments(repo: Repository) -> Iterator[tuple[str, str, Environment, str, ModelDeployment]]:
    for name, env in repo.environments.items():
        for model, deployment in env.models.items():
            yield name, repo.environment_files[name], env, model, deployment


def _candidates(repo: Repository) -> Iterator[tuple[str, Environment, Release, str]]:
    """(environment, its model, the candidate's release, the release's file) per candidate in flight."""
    for name, _, env, model, dep in _deployments(repo):
        candidate = repo.release(model, dep.candidate) if dep.candidate else None
        if candidate is not None:
            yield name, env, candidate, repo.release_file(model, candidate.version)


@rule("environment-name")
def environment_name(repo: Repository) -> Iterator[Finding]:
    for name, file in repo.environment_files.items():
        if not re.fullmatch(DNS_LABEL, name):
            yield Finding(Severity.ERROR, "environment-name", file, (),
                          f"environment name {name!r} (the file name) is not a valid Kubernetes name",
                          "rename the file to lowercase letters, digits and '-', e.g. environments/prod.yaml")


@rule("gpu-pools")
def gpu_pools(repo: Repository) -> Iterator[Finding]:
    for name, env in repo.environments.items():
        yield from findings_from("gpu-pools", repo.environment_files[name], ("gpu_pools",), pool_problems(env.gpu_pools))


def pool_problems(pools: list[GpuPool]) -> Iterator[Problem]:
    seen: set[str] = set()
    for i, pool in enumerate(pools):
        if pool.name in seen:
            yield Problem((i, "name"), f"GPU pool {pool.name} is defined twice", "give each pool a unique name")
        seen.add(pool.name)
        if pool.min_nodes > pool.max_nodes:
            yield Problem((i, "min_nodes"), f"pool {pool.name}: min_nodes {pool.min_nodes} > max_nodes "
                          f"{pool.max_nodes}", "min_nodes must be at most max_nodes")


@rule("pointers")
def pointers(repo: Repository) -> Iterator[Finding]:
    """stable / candidate / standby name existing, distinct releases of the same model."""
    for _, file, _, model, dep in _deployments(repo):
        at = ("models", model)
        seen: dict[str, str] = {}
        for pointer in POINTERS:
            version = getattr(dep, pointer)
            if version is None:
                continue
            if version in seen:
                yield Finding(Severity.ERROR, "pointers", file, at + (pointer,),
                              f"{model} {pointer} is {version}, which is already the {seen[version]}",
                              f"a version holds one role at a time: clear `{pointer}` or point it elsewhere")
            seen.setdefault(version, pointer)
            if repo.release(model, version) is None and not repo.is_broken(model, version):
                known = ", ".join(repo.versions(model)) or "none"
                yield Finding(Severity.ERROR, "pointers", file, at + (pointer,),
                              f"{model} {pointer} points at {version}, but releases/{model}/{version}.yaml "
                              f"does not exist (known versions: {known})",
                              "add the release file or point at an existing version")


@rule("stage")
def stage(repo: Repository) -> Iterator[Finding]:
    for _, file, _, model, dep in _deployments(repo):
        at = ("models", model)
        if dep.candidate is None:
            if dep.stage != 0:
                yield Finding(Severity.WARNING, "stage", file, at + ("stage",),
                              f"{model} has no candidate, so stage {dep.stage} means nothing",
                              "set `stage: 0` or remove it")
            continue
        if dep.stage_started_at is None:
            yield Finding(Severity.ERROR, "stage", file, at + ("stage_started_at",),
                          f"{model} has a candidate but no stage_started_at: minimum durations cannot be timed",
                          "set `stage_started_at:` to when the stage began, e.g. 2026-11-20T09:00:00Z")
        candidate = repo.release(model, dep.candidate)
        if candidate is not None and dep.stage >= len(candidate.rollout.stages):
            yield Finding(Severity.ERROR, "stage", file, at + ("stage",),
                          f"{model} {dep.candidate} has stages 0..{len(candidate.rollout.stages) - 1}, "
                          f"not stage {dep.stage}", "set `stage` to one of the candidate's stages")


#: How far ahead of `now` a stage may start before validate calls it wrong: a runner's clock a
#: little ahead of the checking machine's is not a mistake in the file.
CLOCK_SKEW_ALLOWANCE = timedelta(minutes=5)


def future_stage_starts(repo: Repository, now: datetime) -> Iterator[Finding]:
    """The `stage` rule's one check that needs a clock, so it is not in RULES (rules are pure and
    clock-free, shared with the Pulumi program): `validate` runs it with the `now` it is given.
    `status` and `reconcile` hold such a rollout instead (core.decide.future_start_hold)."""
    for _, file, _, model, dep in _deployments(repo):
        started = dep.stage_started_at
        if dep.candidate is not None and started is not None and started > now + CLOCK_SKEW_ALLOWANCE:
            yield Finding(Severity.ERROR, "stage", file, ("models", model, "stage_started_at"),
                          f"{model}: {in_the_future(started, now)}, more than the "
                          f"{format_duration(CLOCK_SKEW_ALLOWANCE)} allowed for clock skew",
                          "set it to when the stage began, at or before now (and check the clock of whatever "
                          "wrote it)")


@rule("candidate-newer")
def candidate_newer(repo: Repository) -> Iterator[Finding]:
    """A rollout moves forward: going back to an older version is a rollback, not a candidate."""
    for _, file, _, model, dep in _deployments(repo):
        if dep.candidate is not None and version_key(dep.candidate) <= version_key(dep.stable):
            yield Finding(Severity.ERROR, "candidate-newer", file, ("models", model, "candidate"),
                          f"{model} candidate {dep.candidate} is not newer than stable {dep.stable}",
                          f"roll forward with a new version (`reconciler release new {model} --bump patch`), or go "
                          f"back with `reconciler rollback {model}` / by pointing `stable` at the older version")


@rule("gpu-placement")
def gpu_placement(repo: Repository) -> Iterator[Finding]:
    """Each model runs on a pool that exists, has its GPU type, and has nodes big enough for a replica."""
    for _, file, env, model, dep in _deployments(repo):
        pools = {p.name: p for p in env.gpu_pools}
        pool = pools.get(dep.pool)
        if pool is None:
            yield Finding(Severity.ERROR, "gpu-placement", file, ("models", model, "pool"),
                          f"{model} runs on pool {dep.pool}, which is not in gpu_pools ({', '.join(pools)})",
                          "name one of the environment's gpu_pools")
            continue
        for pointer, release in live_releases(repo, model, dep):
            serving = release.bundle.serving
            if serving.gpu_type != pool.gpu_type:
                yield Finding(Severity.ERROR, "gpu-placement", file, ("models", model, "pool"),
                              f"{model} {pointer} {release.version} needs {serving.gpu_type} GPUs, "
                              f"but pool {pool.name} has {pool.gpu_type}",
                              "serve the model from a pool with the release's gpu_type")
            elif serving.gpus > pool.gpus_per_node:
                yield Finding(Severity.ERROR, "gpu-placement", file, ("models", model, "pool"),
                              f"{model} {pointer} {release.version} needs {serving.gpus} GPUs per replica, "
                              f"but {pool.instance_type} nodes in pool {pool.name} have {pool.gpus_per_node}",
                              "choose a pool with larger nodes or shard the model over fewer GPUs")


@rule("capacity")
def capacity(repo: Repository) -> Iterator[Finding]:
    """The pools hold stable + candidate + standby at once, so promotion and rollback never wait for nodes."""
    for name, env in repo.environments.items():
        for i, demand in enumerate(pool_demand(repo, env)):
            if not demand.fits:
                pool = demand.pool
                yield Finding(Severity.ERROR, "capacity", repo.environment_files[name], ("gpu_pools", i, "max_nodes"),
                              f"pool {pool.name} needs {demand.nodes} {pool.instance_type} nodes to run "
                              f"{'; '.join(demand.needs)} at once, but max_nodes is {pool.max_nodes}",
                              f"raise max_nodes to at least {demand.nodes}, lower replicas, or retire a standby")


@rule("object-names")
def object_names(repo: Repository) -> Iterator[Finding]:
    """The cluster objects of an environment get valid, distinct names (a Service is a DNS-1035 label)."""
    for name, env in repo.environments.items():
        file, owners = repo.environment_files[name], {}
        for model, dep in sorted(env.models.items()):
            services = service_names(model, dep.live_versions()) + ([evaluator_name(model)] if env.evaluator else [])
            invalid = [s for s in services if not is_service_name(s)]
            if invalid:
                yield Finding(Severity.ERROR, "object-names", file, ("models", model),
                              f"{model} would need a Service named {invalid[0]!r} ({len(invalid[0])} characters), "
                              "which is not a DNS-1035 label (a letter first, at most 63 characters)",
                              "use a shorter model name that starts with a letter")
                continue
            for service in services:
                if owners.setdefault(service, model) != model:
                    yield Finding(Severity.ERROR, "object-names", file, ("models", model),
                                  f"{model} and {owners[service]} would both own the Service {service!r}",
                                  "rename one of the models")


@rule("gate-metrics")
def gate_metrics(repo: Repository) -> Iterator[Finding]:
    """Every metric a candidate's gates and triggers read has a query in the environment."""
    for _, file, env, model, dep in _deployments(repo):
        candidate = repo.release(model, dep.candidate) if dep.candidate else None
        if candidate is None:
            continue
        missing = sorted(candidate.rollout.gate_metrics() - set(env.metrics.queries))
        if missing:
            yield Finding(Severity.ERROR, "gate-metrics", file, ("models", model, "candidate"),
                          f"{model} {candidate.version} gates on {', '.join(missing)}, which this environment "
                          f"has no query for", "add them under metrics.queries, or change the release's gates")


@rule("gate-evidence")
def gate_evidence(repo: Repository) -> Iterator[Finding]:
    """Every gate and trigger with a confidence has evidence to judge (docs/judgement.md): an
    evidence query for its metric in each environment that deploys the release, of a kind its
    bound can test (a histogram's quantile is judged by max_ratio_to_stable only)."""
    for name, env, candidate, file in _candidates(repo):
        for path, check in candidate.rollout.statistical_checks():
            query = env.metrics.queries.get(check.metric)
            if query is None:
                continue  # gate-metrics reports the missing query
            bound, _ = statistical_bound(check)
            if query.evidence is None:
                yield Finding(Severity.ERROR, "gate-evidence", file, ("rollout", *path, "confidence"),
                              f"{name}: {check.metric} has no evidence query, so a confidence on it cannot be "
                              "judged", f"add metrics.queries.{check.metric}.evidence to environments/{name}.yaml "
                              "(docs/formats.md#evidence), or remove `confidence` for a threshold check")
            elif query.evidence.kind == "histogram" and bound != "max_ratio_to_stable":
                yield Finding(Severity.ERROR, "gate-evidence", file, ("rollout", *path, bound),
                              f"{name}: {check.metric} is a latency histogram: its quantile is judged as a ratio "
                              f"to stable, not by {bound}", "use max_ratio_to_stable (e.g. 1.1: at most 10% slower)")


@rule("comparison-metrics")
def comparison_metrics(repo: Repository) -> Iterator[Finding]:
    """A metric whose series already compare the candidate with stable (`candidate_only`, the
    evaluator's sluice_shadow_* series) has no stable series: a bound relative to stable on it would
    hold its stage until the progress deadline, whatever the candidate does."""
    for name, env, candidate, file in _candidates(repo):
        for path, check in candidate.rollout.checks():
            query = env.metrics.queries.get(check.metric)
            relative = [b for b in check.bounds() if b.endswith("_stable")]
            if query is None or not query.candidate_only or not relative:
                continue
            side = "min" if relative[0].startswith("min") else "max"
            yield Finding(Severity.ERROR, "comparison-metrics", file, ("rollout", *path, relative[0]),
                          f"{name}: {check.metric} already compares {candidate.version} with stable (its series "
                          f"carry the candidate's version only), so {relative[0]} has no stable series to compare "
                          "with and the stage would wait for one forever",
                          f"bound the series itself with {side} instead, e.g. {{metric: {check.metric}, {side}: "
                          f"{0.8 if side == 'min' else 0.2}}}")


@rule("predeployment-gates")
def predeployment_gates(repo: Repository) -> Iterator[Finding]:
    """The candidate's offline evaluation passes the environment's gates, compared with its stable."""
    for name, _, env, model, dep in _deployments(repo):
        candidate = repo.release(model, dep.candidate) if dep.candidate else None
        if candidate is None:
            continue
        stable = repo.release(model, dep.stable)
        file = repo.release_file(model, candidate.version)
        for result in evaluate_predeployment(candidate.evaluation, stable.evaluation if stable else None,
                                             env.policy.predeployment):
            if result.failed:
                yield Finding(Severity.ERROR if result.blocking else Severity.WARNING, "predeployment-gates",
                              file, ("evaluation", result.field),
                              f"{name}: candidate {candidate.full_id} fails the {result.gate} gate: "
                              f"{result.message}", result.fix)


@rule("approvals")
def approvals(repo: Repository) -> Iterator[Finding]:
    """Protected environments only run releases approved by enough distinct, allowed people."""
    for name, env in repo.environments.items():
        file = repo.environment_files[name]
        yield from findings_from("approvals", file, ("policy",), policy_problems(env.policy))
    for name, _, env, model, dep in _deployments(repo):
        if not env.policy.protected:
            continue
        for pointer, release in live_releases(repo, model, dep):
            for problem in approval_problems(release, env.policy):
                yield Finding(problem.severity, "approvals", repo.release_file(model, release.version),
                              ("lineage",) + problem.path, f"{name} ({pointer}): {problem.message}", problem.fix)


def policy_problems(policy: Policy) -> Iterator[Problem]:
    if policy.protected and policy.required_approvals == 0:
        yield Problem(("required_approvals",), "the environment is protected but requires no approvals, so any "
                      "release could run here unapproved", "set required_approvals (e.g. 2), or `protected: false`")
    allowed = len(set(policy.allowed_approvers))
    if policy.protected and policy.required_approvals > allowed:
        yield Problem(("required_approvals",), f"{policy.required_approvals} approvals are required but only "
                      f"{allowed} people may approve", "add allowed_approvers or lower required_approvals")


def approval_problems(release: Release, policy: Policy) -> Iterator[Problem]:
    """Example: 2 required, approvals by a@x (allowed), a@x again, z@x (not allowed) -> 1 of 2."""
    lineage = release.lineage
    return approver_problems(release.full_id, [(a.by, a.at) for a in lineage.approvals], lineage.created_at, policy)


def approver_problems(full_id: str, approvals: list[tuple[str, datetime]], created_at: datetime,
                      policy: Policy) -> Iterator[Problem]:
    """`approval_problems` on (approver, instant) pairs and the release's created_at, for callers
    holding a release document (the policy pack) rather than a whole `Release`.

    An approval dated before the release was created approved something else (an earlier draft of
    the same version, a copied file): it is an error, and it does not count.
    """
    by: list[str] = []
    for i, (approver, at) in enumerate(approvals):
        if at < created_at:
            yield Problem(("approvals", i, "at"), f"{full_id} was approved by {approver} at {utc_text(at)}, before "
                          f"it was created (lineage.created_at {utc_text(created_at)}): that approval is for "
                          "something else and does not count",
                          f"ask {approver} to review this release and record the new approval's time")
        else:
            by.append(approver)
    allowed = set(policy.allowed_approvers)
    strangers = sorted(set(by) - allowed)
    counted = {b for b in by if b in allowed}
    if len(counted) < policy.required_approvals:
        note = f"; not allowed to approve: {', '.join(strangers)}" if strangers else ""
        repeated = [b for b, n in Counter(by).items() if n > 1]
        note += f"; counted once: {', '.join(repeated)}" if repeated else ""
        missing = policy.required_approvals - len(counted)
        remaining = sorted(allowed - counted)
        fix = (f"get approvals from {missing} more of: {', '.join(remaining)}" if len(remaining) >= missing
               else "not enough people may approve: add allowed_approvers to the environment's policy")
        yield Problem(("approvals",), f"{full_id} has {len(counted)} of {policy.required_approvals} "
                      f"required approvals from allowed approvers{note}", fix)
