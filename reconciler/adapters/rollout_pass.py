"""One reconcile pass, and the hand-made decisions (start, rollback, resume), carried out on a checkout.

The pure core decides; this module wires the edges in order: take the checkout's lock, bring a
working tree that a killed pass left behind HEAD up to date, load the repository, read Prometheus
(one query per metric per environment), decide, and apply: one commit per decision that changes
something (its environment file edit, and a rollback's incident record), then notify. With `push`,
the commits land only if the push does: a rejected push resets to the remote's new head and
decides again from there, so two reconcilers racing on one remote never both advance the same
rollout (the loser finds the stage already advanced, its clock restarted). Notifications go out
only for commits that landed, and a failed notification is reported, never a reason to undo a
rollback.

A failed pass must never block the next one, so applying goes in this order (`apply_all`):
every file's new text is computed in memory (one parse of each environment file for all its
decisions), the commits are written into git's object store, HEAD moves to the last one in one
compare-and-swap, and only then are the working tree and the index brought in line. A pass that
dies before the HEAD move leaves nothing (unreachable objects); one that dies after it leaves
complete commits and a working tree behind them, which the next pass recognises as its own
(`GitRepository.behind_head`) and catches up. A person's uncommitted edit is never overwritten.
"""

from __future__ import annotations

import io
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterator, Mapping

from ruamel.yaml import YAML

from ..core.decide import Revert, decide, manual_rollback, respect_revert, resume, start
from ..core.decision import Action, Decision
from ..core.decision_records import commit_message, incident_id, incident_record, notification, pointer_changes
from ..core.environment import Environment
from ..core.evidence_plan import judged_metrics
from ..core.findings import Finding
from ..core.observations import LAST_SAMPLE, REQUESTS, Observations
from ..core.predeployment import evaluate_predeployment
from ..core.repository import Repository
from ..core.types import version_key
from .checkout_lock import DEFAULT_TIMEOUT as DEFAULT_LOCK_TIMEOUT
from .checkout_lock import CheckoutLocked, LockUnavailable, checkout_lock
from .environment_writer import remove_leftover_temporaries, update_models_in_sequence, write_atomically
from .git import GitError, GitRepository, PlannedCommit
from .interventions import reverted_rollouts
from .notify import Delivery, notify
from .prometheus import PrometheusClient, observe
from .repo_loader import load_repository

#: How far back the requests history reaches at most (a 48h stage needs 2 days).
MAX_LOOKBACK = timedelta(days=14)
MAX_PUSH_ATTEMPTS = 5
NOTIFIED = (Action.ROLLBACK, Action.PROMOTE, Action.STOP, Action.PAGE)
#: What a pass writes; the only paths it catches up after a killed pass.
WRITTEN_DIRECTORIES = ("environments", "incidents")


class InvalidRepository(Exception):
    """The checkout has validation errors: nothing is decided on a repository validate refuses."""

    def __init__(self, findings: list[Finding]) -> None:
        super().__init__(f"{len(findings)} error(s)")
        self.findings = findings


class RolloutError(Exception):
    """A hand-made action cannot be carried out (usage error); the message says what to do."""


class GatesFailed(RolloutError):
    """The candidate fails a blocking pre-deployment gate: refused like a validation error."""


@dataclass
class Applied:
    decision: Decision
    commit: str | None = None
    incident: str | None = None  # path relative to the repository root
    deliveries: list[Delivery] = field(default_factory=list)


@dataclass
class PassReport:
    at: datetime
    decisions: list[Decision] = field(default_factory=list)
    applied: list[Applied] = field(default_factory=list)
    queries: int = 0
    attempts: int = 1
    pushed: bool = False


ClientFactory = Callable[[Environment, str | None], PrometheusClient]


def prometheus_client(environment: Environment, url: str | None) -> PrometheusClient:
    return PrometheusClient(url or environment.metrics.prometheus_url, environment.metrics.timeout.total_seconds())


def load_valid(root: Path) -> Repository:
    loaded = load_repository(root)
    if loaded.errors:
        raise InvalidRepository(loaded.errors)
    return loaded.repository


# --- deciding -----------------------------------------------------------------------------------------

def observe_environment(repo: Repository, name: str, at: datetime, client: PrometheusClient) -> Observations:
    """One query per metric the environment's rollouts read, whatever their number, and one range
    query per evidence template of the metrics they judge on evidence, from the earliest stage start."""
    env = repo.environments[name]
    releases = {model: repo.release(model, dep.candidate) for model, dep in env.models.items() if dep.candidate}
    releases = {m: r for m, r in releases.items() if r is not None}
    if not releases:
        return Observations(at=at)
    metrics = {REQUESTS, LAST_SAMPLE}
    evidence: set[str] = set()
    starts, silences = [], []
    for model, release in releases.items():
        dep = env.models[model]
        stage = release.rollout.stages[min(dep.stage, len(release.rollout.stages) - 1)]
        metrics |= {g.metric for g in stage.gates} | {t.metric for t in release.rollout.rollback_triggers}
        evidence |= judged_metrics(release, dep.stage)
        if dep.stage_started_at is not None:
            starts.append(dep.stage_started_at)
        silences.append(release.rollout.dead_mans_switch.max_silence)
    since = min(starts + [at - max(silences)]) - env.metrics.window
    since = max(since, at - MAX_LOOKBACK)
    evidence_since = max(min(starts) - env.metrics.window, at - MAX_LOOKBACK) if starts else since
    return observe(client, env, sorted(metrics), sorted(releases), at, since,
                   evidence=sorted(evidence), evidence_since=evidence_since)


def decide_all(repo: Repository, environments: list[str], at: datetime, prometheus_url: str | None,
               client_factory: ClientFactory, reverts: Mapping[str, Mapping[str, Revert]] | None = None,
               ) -> tuple[list[Decision], int]:
    """Every rollout's decision; `reverts` ({environment: {model: revert}}) holds what people reverted."""
    decisions, queries = [], 0
    for name in environments:
        env = repo.environments[name]
        observations = observe_environment(repo, name, at, client_factory(env, prometheus_url))
        queries += observations.queries
        held = (reverts or {}).get(name, {})
        for model in sorted(env.models):
            dep = env.models[model]
            candidate = repo.release(model, dep.candidate) if dep.candidate else None
            decisions += [respect_revert(d, held.get(model))
                          for d in decide(name, model, dep, candidate, env.metrics, observations, at)]
    return decisions, queries


def reverts_by_environment(root: Path, repo: Repository, environments: list[str]) -> dict[str, dict[str, Revert]]:
    """The rollouts people reverted, per environment (models with a candidate or a standby)."""
    git = GitRepository(root)
    return {name: reverted_rollouts(git, root / repo.environment_files[name],
                                    [m for m, dep in repo.environments[name].models.items()
                                     if dep.candidate or dep.standby])
            for name in environments}


def run_pass(root: Path, *, environments: list[str] | None = None, prometheus_url: str | None = None,
             at: datetime | None = None, dry_run: bool = False, push: bool = False, remote: str = "origin",
             client_factory: ClientFactory = prometheus_client,
             lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> PassReport:
    """Decide for every in-flight rollout (of `environments`, default all) and apply the decisions.

    A pass that writes holds the checkout's lock throughout (`CheckoutLocked` after `lock_timeout`
    seconds); a dry run takes no lock and writes nothing."""
    when = at or datetime.now(timezone.utc)
    if dry_run:
        repo = load_valid(root)
        names = _environment_names(repo, environments)
        decisions, queries = decide_all(repo, names, when, prometheus_url, client_factory,
                                        reverts_by_environment(root, repo, names))
        return PassReport(when, decisions, queries=queries)
    with writing(root, "reconcile", lock_timeout) as git:
        attempts = 0
        while True:
            attempts += 1
            if push:
                _sync_with_remote(git, remote, ours_only=attempts > 1)
            repo = load_valid(root)
            names = _environment_names(repo, environments)
            decisions, queries = decide_all(repo, names, when, prometheus_url, client_factory,
                                            reverts_by_environment(root, repo, names))
            report = PassReport(when, decisions, queries=queries, attempts=attempts)
            report.applied = apply_all(root, git, repo, decisions)
            if push and report.applied:
                result = git.push(remote, git.branch())
                if result.rejected and attempts < MAX_PUSH_ATTEMPTS:
                    continue  # someone else moved the branch: decide again from their head
                if not result.ok:
                    raise RolloutError(f"push to {remote} failed after {attempts} attempt(s): {result.message}; "
                                       "the commits are local only")
                if result.up_to_date:  # another reconciler made the very same commits: it has notified
                    return report
                report.pushed = True
            for applied in report.applied:
                send_notifications(repo, applied)
            return report


@contextmanager
def writing(root: Path, command: str, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> Iterator[GitRepository]:
    """The checkout, ready to be written by `command`: on a branch, locked against every other
    writer (its git children hold the lock too), and caught up with HEAD if a killed pass left
    the working tree behind."""
    git = GitRepository(root)
    try:
        git_dir = git.git_dir()
    except GitError as err:
        raise RolloutError(f"{root} is not a git checkout ({err.output}): the reconciler commits its "
                           "decisions") from None
    try:
        with checkout_lock(git_dir, command, lock_timeout) as fd:
            git.keep_open = (fd,)
            if git.current_branch() is None:
                raise RolloutError("HEAD is detached: check out the branch the reconciler commits to (git switch "
                                   "main); commits on a detached HEAD would be lost at the next checkout")
            catch_up_working_tree(root, git)
            yield git
    except LockUnavailable as err:
        raise RolloutError(str(err)) from None


def catch_up_working_tree(root: Path, git: GitRepository) -> list[str]:
    """Bring files that a killed pass left behind HEAD up to HEAD (working tree and index) and
    return them; a person's uncommitted edit is left as it is (`apply_all` refuses to write it).
    Also drops what a killed pass leaves besides: half-written temporary files, the helper ref."""
    git.drop_pending()
    for directory in WRITTEN_DIRECTORIES:
        if (root / directory).is_dir():
            remove_leftover_temporaries(root / directory)
    dirty = git.dirty_paths([root / d for d in WRITTEN_DIRECTORIES])
    behind, _ = git.behind_head(dirty)
    for path in behind:
        content = git.show("HEAD", path)
        target = root / path
        if content is None:
            target.unlink(missing_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(target, content.decode("utf-8"))
    git.sync_index(behind)
    return behind


def _environment_names(repo: Repository, wanted: list[str] | None) -> list[str]:
    if not wanted:
        return sorted(repo.environments)
    unknown = [w for w in wanted if w not in repo.environments]
    if unknown:
        raise RolloutError(f"no environments/{unknown[0]}.yaml (known: {', '.join(sorted(repo.environments))})")
    return wanted


def _sync_with_remote(git: GitRepository, remote: str, ours_only: bool) -> None:
    """Start from the remote's head: a pass decides on what everyone sees, never on a stale copy.

    Local commits the remote lacks are dropped only when they are this pass's own (after a
    rejected push); anyone else's make it refuse rather than lose work.
    """
    git.fetch(remote)
    upstream = f"{remote}/{git.branch()}"
    if not ours_only and not git.is_ancestor("HEAD", upstream):
        raise RolloutError(f"the local branch has commits that {upstream} does not: push or drop them first "
                           "(run the reconciler with --push in a clone of its own)")
    git.reset_hard(upstream)


# --- applying -----------------------------------------------------------------------------------------

def apply_all(root: Path, git: GitRepository, repo: Repository, decisions: list[Decision],
              check: bool = False) -> list[Applied]:
    """Commit every decision that changes something, one commit each (people revert single
    decisions), in order; change nothing when any of it cannot be done.

    Each environment file is parsed once for all its decisions; the commits are written, HEAD
    moves to the last one, then the working tree and the index follow (see the module's notes).
    `check`: first make sure the edited repository still validates (for edits made by hand, which
    may break a rule such as approvals or capacity).
    """
    committing = [d for d in decisions if d.action.commits]
    if not committing:
        return []
    written = {f"environments/{d.environment}.yaml" for d in committing} | {
        f"incidents/{d.environment}/{incident_id(d)}.yaml" for d in committing if d.action is Action.ROLLBACK}
    dirty = git.dirty_paths([root / path for path in sorted(written)])
    if dirty:
        raise RolloutError(f"{', '.join(dirty)} {'has' if len(dirty) == 1 else 'have'} uncommitted changes: commit "
                           "or discard them first (git diff; git checkout -- FILE). No reconciler commit explains "
                           "them (a person's edit, or an older reconciler's unfinished one), and the reconciler "
                           "never overwrites them")
    by_environment: dict[str, list[Decision]] = {}
    for decision in committing:
        by_environment.setdefault(decision.environment, []).append(decision)
    texts: dict[int, str] = {}  # id(decision) -> its environment file's text after it
    finals: dict[str, str] = {}  # repository-relative path -> text once every commit is made
    for environment, group in by_environment.items():
        env_path = root / "environments" / f"{environment}.yaml"
        models = repo.environments[environment].models
        steps = [{d.model: pointer_changes(models[d.model], d)} for d in group]
        edited = update_models_in_sequence(env_path.read_text(encoding="utf-8"), steps)
        texts |= {id(d): text for d, text in zip(group, edited)}
        finals[f"environments/{environment}.yaml"] = edited[-1]
        if check:
            _check_edit(root, env_path, edited[-1])
    planned, applied = [], []
    for decision in committing:
        env_rel = f"environments/{decision.environment}.yaml"
        files = {env_rel: texts[id(decision)]}
        incident = None
        if decision.action is Action.ROLLBACK:
            incident = f"incidents/{decision.environment}/{incident_id(decision)}.yaml"
            files[incident] = finals[incident] = _yaml_text(
                incident_record(decision, rollout_timeline(git, root / env_rel, decision)))
        message, trailers = commit_message(decision)
        planned.append(PlannedCommit(files, message, trailers))
        applied.append(Applied(decision, incident=incident))
    head = git.head()
    shas = git.commit_chain(head, planned)
    git.advance_head(shas[-1], head, f"{len(shas)} decision(s)")
    for item, sha in zip(applied, shas):
        item.commit = sha
    try:
        for path, text in finals.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            write_atomically(root / path, text)
        git.sync_index(list(finals))
    except (OSError, GitError) as err:
        raise RolloutError(f"committed {len(shas)} decision(s) (HEAD {shas[-1][:12]}), but could not update the "
                           f"working tree: {err}; the next pass brings it up to date") from None
    return applied


def _check_edit(root: Path, env_path: Path, edited: str) -> None:
    """Validate the repository as it would be after the edit: the checkout is not touched unless the
    result is valid."""
    errors = load_repository(root, edits={f"environments/{env_path.name}": edited}).errors
    if errors:
        raise InvalidRepository(errors)


def rollout_timeline(git: GitRepository, env_path: Path, decision: Decision) -> list[tuple[datetime, str]]:
    """This rollout's earlier commits (its start, then advances), from git history, for the incident
    record: newest first back to the latest start, so an earlier rollout of the same version is
    not mixed in. Times are the decisions' own (`Sluice-At`), which a replay with --at keeps."""
    events = []
    for commit in git.log(env_path, ("Sluice-Version", decision.candidate or "")):
        trailers = commit.trailers
        if trailers.get("Sluice-Model") != [decision.model] or trailers.get("Sluice-Environment") != [
                decision.environment]:
            continue
        at = _trailer_time(trailers) or commit.date
        events.append((at, f"{commit.subject} ({commit.sha[:12]})"))
        if trailers.get("Sluice-Action") == [str(Action.START)]:
            break
    return events


def _trailer_time(trailers: Mapping[str, list[str]]) -> datetime | None:
    try:
        return datetime.fromisoformat(trailers["Sluice-At"][0])
    except (KeyError, IndexError, ValueError):
        return None


def send_notifications(repo: Repository, applied: Applied) -> None:
    decision = applied.decision
    if decision.action not in NOTIFIED or decision.candidate is None:
        return
    release = repo.release(decision.model, decision.candidate)
    if release is None or not release.rollout.notify:
        return
    summary, payload = notification(decision, applied.commit, applied.incident)
    applied.deliveries = notify(release.rollout.notify, summary, payload)


def _yaml_text(data: object) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # keep the record's reading order
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    return buffer.getvalue()


# --- by hand ------------------------------------------------------------------------------------------

def start_rollout(root: Path, environment: str, model: str, version: str, at: datetime | None = None,
                  push: bool = False, remote: str = "origin", lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> Applied:
    """Begin a rollout at stage 0, after the pre-deployment gates; the edit must leave a valid repository."""
    when = at or datetime.now(timezone.utc)
    with writing(root, "start", lock_timeout) as git:
        repo = load_valid(root)
        env, dep = _deployment(repo, environment, model)
        release = repo.release(model, version)
        if release is None:
            raise RolloutError(f"no release file releases/{model}/{version}.yaml: add it first")
        if dep.candidate is not None:
            raise RolloutError(f"{model} already has candidate {dep.candidate} at stage {dep.stage} in {environment}: "
                               f"let it finish, or roll it back first (reconciler rollback {model} -e {environment})")
        if version_key(version) <= version_key(dep.stable):
            raise RolloutError(f"{version} is not newer than stable {dep.stable}: to go back to an older version, "
                               "use reconciler rollback or git revert")
        stable = repo.release(model, dep.stable)
        blocking = [g for g in evaluate_predeployment(release.evaluation, stable.evaluation if stable else None,
                                                      env.policy.predeployment) if g.failed and g.blocking]
        if blocking:
            raise GatesFailed("pre-deployment gates fail: " + "; ".join(
                f"{g.message}{'; fix: ' + g.fix if g.fix else ''}" for g in blocking))
        return _apply_by_hand(root, git, repo, start(environment, model, dep, release, when), push, remote)


def rollback_by_hand(root: Path, environment: str, model: str, reason: str, at: datetime | None = None,
                     push: bool = False, remote: str = "origin", lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> Applied:
    with writing(root, "rollback", lock_timeout) as git:
        repo = load_valid(root)
        _, dep = _deployment(repo, environment, model)
        try:
            candidate = repo.release(model, dep.candidate) if dep.candidate else None
            decision = manual_rollback(environment, model, dep, reason, at or datetime.now(timezone.utc), candidate)
        except ValueError as err:
            raise RolloutError(str(err)) from None
        return _apply_by_hand(root, git, repo, decision, push, remote)


def resume_by_hand(root: Path, environment: str, model: str, reason: str, at: datetime | None = None,
                   push: bool = False, remote: str = "origin", lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> Applied:
    """Let a rollout that a person's revert held go on; its stage's clock restarts."""
    with writing(root, "resume", lock_timeout) as git:
        repo = load_valid(root)
        _, dep = _deployment(repo, environment, model)
        release = repo.release(model, dep.candidate) if dep.candidate else None
        if release is None:
            raise RolloutError(f"{model} has no candidate in {environment}: nothing to resume")
        if model not in reverts_by_environment(root, repo, [environment])[environment]:
            raise RolloutError(f"{model} {dep.candidate} in {environment} is not held by a revert: the reconciler is "
                               "already moving it (reconciler status shows what its stage needs)")
        return _apply_by_hand(root, git, repo, resume(environment, model, dep, release,
                                                      at or datetime.now(timezone.utc), reason), push, remote)


def _deployment(repo: Repository, environment: str, model: str):
    env = repo.environments.get(environment)
    if env is None:
        raise RolloutError(f"no environments/{environment}.yaml (known: {', '.join(sorted(repo.environments))})")
    dep = env.models.get(model)
    if dep is None:
        raise RolloutError(f"{model} is not deployed in {environment} (models: {', '.join(sorted(env.models))})")
    return env, dep


def _apply_by_hand(root: Path, git: GitRepository, repo: Repository, decision: Decision, push: bool,
                   remote: str) -> Applied:
    """`repo` is the checkout as loaded before the edit: the edit touches only pointers, so its
    releases (their notify targets) are still current after the commit."""
    applied, = apply_all(root, git, repo, [decision], check=True)
    if push:
        try:
            result = git.push(remote, git.branch())
            failure = None if result.ok else result.message
        except GitError as err:
            failure = str(err)
        if failure is not None:
            raise RolloutError(f"committed {applied.commit[:12] if applied.commit else ''} locally, but the push to "
                               f"{remote} failed: {failure}; fix it, pull, then push again (do not run the command "
                               "again: the commit is made)")
    send_notifications(repo, applied)
    return applied
