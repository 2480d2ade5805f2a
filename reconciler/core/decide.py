"""The rollout decision: from pointers, the candidate's release, observations and `now`, one of
wait / hold / advance / promote / rollback / stop (and retire for an expired standby).

Order of checks, every pass, at every stage (docs/runbook.md "How the reconciler decides"):

1. Prometheus unreachable: hold (and `reconcile` exits 3). Nothing is known, so nothing moves,
   and nothing healthy is rolled back.
2. Rollback triggers on the candidate (metric > max or < min): roll back. A trigger with a
   `confidence` rolls back once "worse than stable" is established on the evidence since the
   stage began (docs/judgement.md); a failed or missing evidence query leaves it unchecked (hold).
3. Dead man's switch: a candidate that holds traffic (or mirrored traffic) but has sent no sample
   for longer than its `max_silence` is rolled back, provided the environment's data is otherwise
   fresh (another version still reports, so the silence is the candidate's own).
4. A stage_started_at after `now` (clock skew, a typo): hold, saying so first. Stale data (the
   newest sample of the environment is older than `max_staleness`): hold.
5. The stage's minimum duration has not passed: wait.
6. Too few requests served in the stage for the comparison to mean anything: hold.
7. Any gate not passing on fresh data: hold, with each gate's reading. A gate with a
   `confidence` passes once "not worse than stable" is established; inconclusive, it holds and
   says about how many more candidate requests would settle it; without evidence (a failed
   query), it holds as a query error does. The judgements ride on the decision (`judgements`).
   Past the stage's progress deadline (`Rollout.progress_deadline_of`), a hold of 6 or 7 on the
   stage's own evidence (requests counted, a gate failing or without data) takes the release's
   `on_progress_deadline`: rollback, or page (a hold that notifies once per stage, recorded as
   `deadline_paged_at`; later passes hold and say when it paged). Holds for lack of data
   (unreachable, stale, a failed query) never do: missing data does not roll back.
8. Otherwise the stage is done: advance; at the last stage, promote (or stop, for a release that
   ends in shadow). Advancing into a final 100% stage with no checks of its own promotes at once;
   a final stage with gates or a duration is a post-promotion check: the candidate serves 100%
   with the stable still running, and a trigger or a failing gate there switches straight back.

The dead man's switch measures silence from the candidate's newest raw sample while Prometheus
still returns it (its 5m look-back), then from the end of the last `requests` window in which it
served: so it fires between `max_silence` and `max_silence` + one window after the last sample,
never early.

Blue/green is the same machine with 0/100 stages; shadow stages are 0% stages that mirror, gated
on comparisons with stable.

A person's `git revert` of one of the reconciler's commits is an intervention, not a suggestion:
the rollout it touched is held from moving forward (no advance, promote, stop or retire) until a
person resumes it (`reconciler resume`, which restarts the stage's clock) or rolls it back, and
the hold is the first thing a pass says about it (before the stage clock or a gate).
Rollbacks still happen: a trigger or the dead man's switch is as binding after a revert as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from .decision import Action, Decision
from .environment import Evidence, Metrics, ModelDeployment
from .evidence_plan import candidate_share
from .gates import Breach, GateCheck, check_gate, check_trigger
from .judge import Judgement, Verdict, judge, quantile_bucket, requests_needed
from .observations import Observations, VersionCounts, VersionKey
from .predeployment import Phase
from .release import Gate, Release, RollbackTrigger, Stage, statistical_bound
from .types import format_duration, utc_text, version_label


def decide(environment: str, model: str, dep: ModelDeployment, candidate: Release | None, metrics: Metrics,
           observations: Observations, now: datetime) -> list[Decision]:
    """Every decision due for one model: its rollout's, and the standby's retirement."""
    decisions = []
    if dep.candidate is not None and candidate is not None:
        decisions.append(_decide_rollout(environment, model, dep, candidate, metrics, observations, now))
    promoting = any(d.action is Action.PROMOTE for d in decisions)  # a promotion replaces the standby anyway
    if dep.standby is not None and dep.standby_until is not None and now >= dep.standby_until and not promoting:
        decisions.append(Decision(
            environment, model, dep.standby, dep.stable, Action.RETIRE, now,
            reasons=(f"standby {dep.standby} kept until {utc_text(dep.standby_until)}: its window has ended",)))
    return decisions


def _decide_rollout(environment: str, model: str, dep: ModelDeployment, release: Release, metrics: Metrics,
                    obs: Observations, now: datetime) -> Decision:
    stages = release.rollout.stages
    index = min(dep.stage, len(stages) - 1)
    stage = stages[index]
    window = format_duration(metrics.window)
    cand: VersionKey = (model, release.version)
    stable: VersionKey = (model, dep.stable)
    label = version_label(release.version)
    started = dep.stage_started_at
    elapsed = now - started if started is not None else None
    judged: list[Judgement] = []  # every decision below carries the judgements made so far

    def decision(action: Action, reasons: list[str], **fields: object) -> Decision:
        base: dict[str, object] = {"stage": index, "next_stage": index, "weight": stage.weight,
                                   "previous_weight": stage.weight, "time_in_stage": elapsed,
                                   "judgements": tuple(judged)}
        return Decision(environment, model, release.version, dep.stable, action, now,
                        reasons=tuple(reasons), **{**base, **fields})  # type: ignore[arg-type]

    def rollback(reasons: list[str], **fields: object) -> Decision:
        return decision(Action.ROLLBACK, reasons + [f"traffic back to stable {dep.stable}"],
                        next_stage=None, weight=0, **fields)

    def stuck(reasons: list[str], **fields: object) -> Decision:
        """A hold on the stage's own requirements (requests, gates); past the stage's progress
        deadline, the release's stated action: roll back, or hold and page once."""
        deadline = release.rollout.progress_deadline_of(index)
        if elapsed is None or elapsed <= deadline:
            return decision(Action.HOLD, reasons, **fields)
        late = (f"{stage_text} has not met its gates for {format_duration(elapsed)} > progress deadline "
                f"{format_duration(deadline)}")
        if release.rollout.on_progress_deadline == "rollback":
            return rollback([f"{late}: rolling back"] + reasons, **fields)
        paged = dep.deadline_paged_at
        if paged is not None and started is not None and paged >= started:
            return decision(Action.HOLD, [f"{late}: holding; on-call was paged at {utc_text(paged)}"] + reasons,
                            **fields)
        return decision(Action.PAGE, [f"{late}: holding and paging on-call"] + reasons, **fields)

    if obs.error is not None:
        return decision(Action.HOLD, [f"Prometheus unreachable: {obs.error}; holding: nothing advances or rolls "
                                      "back on missing data"], metrics_unreachable=True)

    def weigh(check: Gate | RollbackTrigger) -> Judgement | str:
        result = _judge_evidence(check, metrics, obs, cand, stable, started)
        if isinstance(result, Judgement):
            judged.append(result)
        return result

    breaches = []
    unchecked = []
    for trigger in release.rollout.rollback_triggers:
        if trigger.statistical:  # rolls back only on "worse" established; missing evidence holds
            result = weigh(trigger)
            if isinstance(result, str):
                unchecked.append(f"rollback trigger on {trigger.metric} not checked: {result}")
            elif result.verdict is Verdict.WORSE:
                breaches.append(Breach(trigger.metric, result.estimate if result.estimate is not None else math.nan,
                                       result.bound, result.limit, result.message))
            continue
        error = obs.metric_error(trigger.metric)
        if error is not None:
            unchecked.append(f"rollback trigger on {trigger.metric} not checked: {error}")
            continue
        breach = check_trigger(trigger, obs.value(trigger.metric, cand), window=window)
        if breach is not None:
            breaches.append(breach)
    stage_text = _stage_text(index, stage)
    if breaches:
        return rollback([f"{b.message} at {stage_text}" for b in breaches], breaches=tuple(breaches))

    fresh_limit = now - metrics.max_staleness
    newest = obs.newest_sample
    environment_fresh = obs.last_sample_error is None and newest is not None and newest >= fresh_limit
    stable_fresh = _fresh(obs.last_sample.get(stable), fresh_limit)
    serving = stage.weight > 0 or stage.mirror > 0
    # The silence is the candidate's own only if others still report: the environment at all, and
    # this model's stable unless the candidate has all the traffic (blue/green after the switch).
    others_report = environment_fresh and (stable_fresh or stage.weight == 100)
    if serving and others_report and started is not None and now >= started:
        last_served = obs.requests.last_served(cand) if obs.requests.error is None else None
        seen = [t for t in (obs.last_sample.get(cand), last_served, started) if t is not None]
        silent = now - max(seen)
        limit = release.rollout.dead_mans_switch.max_silence
        if silent > limit:
            share = f"{stage.weight}% of traffic" if stage.weight else f"{stage.mirror}% mirrored traffic"
            return rollback([f"dead man's switch: no samples from {label} for {format_duration(silent)} "
                             f"(max silence {format_duration(limit)}) while it holds {share}"])

    future = future_start_hold(environment, model, started, now)
    if future is not None:  # before any other hold: a person must fix the file, whatever the metrics say
        return decision(Action.HOLD, [future] + unchecked)
    if obs.last_sample_error is not None:
        return decision(Action.HOLD, [f"cannot tell how fresh the data is: {obs.last_sample_error}; holding"]
                        + unchecked, metrics_unreachable=True)
    if not environment_fresh:
        age = "no samples at all" if newest is None else f"the newest sample is {format_duration(now - newest)} old"
        return decision(Action.HOLD, [f"stale data: {age} (max staleness {format_duration(metrics.max_staleness)}); "
                                      "holding until Prometheus has fresh samples"] + unchecked)
    if started is None:
        return decision(Action.HOLD, [f"stage_started_at is not set for {model} in {environment}: set it to when "
                                      "the stage began (reconciler start does)"])
    if elapsed is not None and elapsed < stage.min_duration:
        return decision(Action.WAIT, [f"{stage_text} has run {format_duration(elapsed)} of "
                                      f"{format_duration(stage.min_duration)}"] + unchecked)

    if stage.min_requests:
        if obs.requests.error is not None:
            return decision(Action.HOLD, [f"requests: query failed: {obs.requests.error}"] + unchecked)
        served = obs.requests.served_since(cand, started, metrics.window)
        if served < stage.min_requests:
            return stuck([f"{label} served {served:,.0f} of {stage.min_requests:,} requests required at "
                          f"{stage_text}"] + unchecked)

    candidate_fresh = _fresh(obs.last_sample.get(cand), fresh_limit)

    def statistical_gate(gate: Gate) -> GateCheck:
        result = weigh(gate)
        if isinstance(result, str):
            return GateCheck(gate.metric, Phase.ERROR, result)
        evidence = metrics.queries[gate.metric].evidence
        assert evidence is not None and started is not None  # judged: both were there
        stable_counts = obs.evidence[gate.metric].since(stable, started, metrics.window)
        return _statistical_check(result, evidence, stable_counts, candidate_share(stage, evidence), label)

    checks = tuple(statistical_gate(gate) if gate.statistical else check_gate(
        gate, obs.value(gate.metric, cand) if candidate_fresh else None,
        obs.value(gate.metric, stable) if stable_fresh else None, window=window,
        error=obs.metric_error(gate.metric), candidate_label=label,
        stable_label=f"stable {version_label(dep.stable)}") for gate in stage.gates)
    failing = [c for c in checks if c.phase is not Phase.PASS]
    last = len(stages) - 1
    post_promotion = index == last and stage.weight == 100
    if post_promotion and any(c.phase is Phase.FAIL for c in failing):  # blue/green: switch back
        return rollback([f"post-promotion check failed: {c.message}" for c in failing if c.phase is Phase.FAIL],
                        gates=checks)
    if failing:
        held = [f"{c.phase}: {c.message}" for c in failing] + unchecked
        if any(c.phase is not Phase.ERROR for c in failing):  # the stage's own evidence, not a failed query
            return stuck(held, gates=checks)
        return decision(Action.HOLD, held, gates=checks)
    if unchecked:  # fail safe: a trigger nobody could check never lets a rollout move on
        return decision(Action.HOLD, unchecked + ["holding until every rollback trigger can be checked"],
                        gates=checks)
    passed = [c.message for c in checks] or ["no gates at this stage"]

    if index == last:
        if stage.weight == 0:
            return decision(Action.STOP, passed + [f"the release ends in shadow: {label} is withdrawn"],
                            next_stage=None, weight=0, gates=checks)
        return _promote(decision, release, passed, checks, now)
    following = stages[index + 1]
    if index + 1 == last and following.weight == 100 and not _has_checks(following):
        return _promote(decision, release, passed, checks, now, next_stage=index + 1)
    return decision(Action.ADVANCE, passed + [f"next: {_stage_text(index + 1, following)}"],
                    next_stage=index + 1, weight=following.weight, gates=checks)


def _judge_evidence(check: Gate | RollbackTrigger, metrics: Metrics, obs: Observations, candidate: VersionKey,
                    stable: VersionKey, started: datetime | None) -> Judgement | str:
    """The judgement of a gate or trigger with a confidence on the counts since the stage began,
    or why there is none (no evidence query, a failed query, no stage start): missing evidence is
    never a verdict, so it holds and never rolls back."""
    metric = check.metric
    query = metrics.queries.get(metric)
    evidence = query.evidence if query is not None else None
    if evidence is None:
        return (f"{metric} has no evidence query in the environment's catalog: add metrics.queries.{metric}.evidence "
                "(docs/formats.md#evidence)")
    history = obs.evidence.get(metric)
    if history is None:
        return f"{metric}: evidence was not queried"
    if history.error is not None:
        return f"{metric}: evidence query failed: {history.error}"
    if started is None:
        return f"{metric}: stage_started_at is not set, so there is no stage to count evidence over"
    bound, limit = statistical_bound(check)
    try:
        return judge(metric, bound, limit, check.confidence or 0.0, evidence.kind, evidence.quantile,
                     history.since(candidate, started, metrics.window), history.since(stable, started, metrics.window))
    except ValueError as problem:  # a bound the evidence cannot test (validate says so too)
        return str(problem)


def _statistical_check(result: Judgement, evidence: Evidence, stable: VersionCounts, share: float,
                       label: str) -> GateCheck:
    """A gate with a confidence: passes on "not worse", fails on "worse", and otherwise says how
    much more evidence would settle it."""
    phase = {Verdict.NOT_WORSE: Phase.PASS, Verdict.WORSE: Phase.FAIL}.get(result.verdict, Phase.INCONCLUSIVE)
    message = result.message
    if phase is Phase.INCONCLUSIVE:
        message += "; " + _still_needed(result, evidence, stable, share, label)
    return GateCheck(result.metric, phase, message, result.estimate)


def _still_needed(result: Judgement, evidence: Evidence, stable: VersionCounts, share: float, label: str) -> str:
    """"about 2,100 more candidate requests would show it if v1.3.0 matches stable", planned on
    stable's own rate or latency shape since the stage began (the catalog's defaults without any).
    On the online evaluator's counts (`evidence.sampled`, share 1/2): "about 2,100 more samples
    (each to both versions) ..."."""
    needed = requests_needed(result.bound, result.limit, result.confidence, evidence.kind, evidence.quantile,
                             stable if stable.total > 0 else None, share) if share > 0 else None
    if needed is None:
        bucket = quantile_bucket(stable, evidence.quantile) if evidence.kind == "histogram" and evidence.quantile else None
        if bucket is not None and bucket[1] / bucket[0] > result.limit:
            return (f"no amount of traffic can show it on these buckets: stable's p{evidence.quantile * 100:g} lies "
                    f"between {bucket[0]:g} and {bucket[1]:g}, a bucket {bucket[1] / bucket[0]:.2f}x wide for a "
                    f"{result.limit:.2f}x limit: give the histogram finer buckets there, loosen the limit or lower "
                    "the confidence")
        return "no amount of traffic at this stage's share can show it: loosen the limit or lower the confidence"
    more = needed - result.candidate_trials
    if more <= 0:
        return f"the estimate is too close to the limit to settle yet; {label} needs more requests than planned"
    what = "samples (each to both versions)" if evidence.sampled else "candidate requests"
    return f"about {_about(more)} more {what} would show it if {label} matches stable"


def _about(count: float) -> str:
    """Two significant figures, for a plan: 2,134 -> "2,200" (rounded up), 87.2 -> "88"."""
    whole = math.ceil(count)
    step = 10 ** max(len(str(whole)) - 2, 0)
    return f"{math.ceil(whole / step) * step:,}"


def _promote(decision, release: Release, passed: list[str], checks: tuple, now: datetime,
             next_stage: int | None = None) -> Decision:
    until = now + release.rollout.standby_window
    return decision(Action.PROMOTE, passed, next_stage=next_stage, weight=100, gates=checks, standby_until=until)


def in_the_future(started: datetime, now: datetime) -> str:
    """"stage_started_at 2027-01-01T00:00:00Z is in the future (39d14h after now, 2026-11-22T10:00:00Z)"."""
    return f"stage_started_at {utc_text(started)} is in the future ({format_duration(started - now)} after now, " \
           f"{utc_text(now)})"


def future_start_hold(environment: str, model: str, started: datetime | None, now: datetime) -> str | None:
    """Why a rollout whose stage starts after `now` holds (None when it does not): its clock would
    run backwards, so nothing about the stage can be timed. `decide` and `status` both say this."""
    if started is None or started <= now:
        return None
    return (f"{in_the_future(started, now)}: a clock is skewed or a hand edit is wrong; holding, never advancing, "
            f"until it is fixed: set models.{model}.stage_started_at in environments/{environment}.yaml to when "
            "the stage began")


def _fresh(sample: datetime | None, limit: datetime) -> bool:
    return sample is not None and sample >= limit


def _has_checks(stage: Stage) -> bool:
    return bool(stage.gates or stage.min_requests or stage.min_duration > timedelta(0))


def _stage_text(index: int, stage: Stage) -> str:
    mirror = f", mirroring {stage.mirror}%" if stage.mirror else ""
    return f"stage {index} ({stage.weight}%{mirror})"



def start(environment: str, model: str, dep: ModelDeployment, release: Release, now: datetime) -> Decision:
    """A rollout begins at stage 0 (the caller has checked the pre-deployment gates)."""
    first = release.rollout.stages[0]
    return Decision(environment, model, release.version, dep.stable, Action.START, now, stage=None, next_stage=0,
                    weight=first.weight, previous_weight=0,
                    reasons=(f"{release.rollout.strategy} rollout of {release.version} over stable {dep.stable}: "
                             f"{_stage_text(0, first)}",))


def manual_rollback(environment: str, model: str, dep: ModelDeployment, reason: str, now: datetime,
                    candidate: Release | None = None) -> Decision:
    """By hand: withdraw the candidate, or with none in flight, go back to the standby.

    `candidate` (the candidate's release) lets the record say what traffic the rollback took away.
    Raises ValueError when there is nothing to go back to.
    """
    if dep.candidate is not None:
        stages = candidate.rollout.stages if candidate is not None else []
        weight = stages[min(dep.stage, len(stages) - 1)].weight if stages else None
        elapsed = now - dep.stage_started_at if dep.stage_started_at is not None else None
        return Decision(environment, model, dep.candidate, dep.stable, Action.ROLLBACK, now, stage=dep.stage,
                        next_stage=None, weight=0, previous_weight=weight, time_in_stage=elapsed,
                        reasons=(f"manual: {reason}", f"traffic back to stable {dep.stable}"), manual=True)
    if dep.standby is not None:
        return Decision(environment, model, dep.stable, dep.standby, Action.ROLLBACK, now, weight=0,
                        previous_weight=100,
                        reasons=(f"manual: {reason}", f"traffic back to standby {dep.standby}, which becomes stable"),
                        manual=True)
    raise ValueError(f"{model} in {environment} has no candidate and no standby to go back to: revert the commit "
                     "that promoted it (git revert), or start a rollout of the version you want")


@dataclass(frozen=True)
class Revert:
    """A person's `git revert` of one of the reconciler's commits: the newest word on a model."""

    sha: str
    reverted: str
    action: str  # the reverted commit's Sluice-Action
    at: datetime


def respect_revert(decision: Decision, revert: Revert | None) -> Decision:
    """Hold a rollout a person reverted, whatever the pass would do, except roll it back.

    Forward moves (the ones a person undid, which the pass would otherwise redo) become holds; a
    wait or a hold leads with the revert too, because the revert, not the stage clock or a gate,
    is what binds the rollout until a person resumes it.
    """
    if revert is None or decision.action is Action.ROLLBACK:
        return decision
    return replace(decision, action=Action.HOLD, next_stage=decision.stage, weight=decision.previous_weight,
                   reasons=(f"held: {revert.sha[:12]} reverted the reconciler's {revert.action} "
                            f"{revert.reverted[:12]} at {utc_text(revert.at)}; it would {decision.action} now. "
                            f"Run `reconciler resume {decision.model} -e {decision.environment}` to go on, or "
                            f"`reconciler rollback` to end it", *decision.reasons))


def resume(environment: str, model: str, dep: ModelDeployment, release: Release, now: datetime,
           reason: str) -> Decision:
    """By hand, after a revert: the rollout goes on from its current stage, whose clock restarts
    (the revert was an intervention; the stage is judged afresh)."""
    stages = release.rollout.stages
    index = min(dep.stage, len(stages) - 1)
    return Decision(environment, model, release.version, dep.stable, Action.RESUME, now, stage=index,
                    next_stage=index, weight=stages[index].weight, previous_weight=stages[index].weight,
                    reasons=(f"manual: {reason}", f"{_stage_text(index, stages[index])} starts over"), manual=True)
