"""`reconciler status [PATH] [--format text|json] [--at TIME] [--observe [--prometheus URL]]`: stable,
candidate, standby, stage and traffic per environment and model, the evidence each statistical
stage needs and how long it takes, and how full each GPU pool is. Exit 1 if the repository has errors
(the summary of a broken repository would mislead), after printing them.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone

from . import exit_codes
from .main import (
    add_at_argument,
    add_format_argument,
    add_prometheus_arguments,
    add_repo_argument,
    checked_prometheus_url,
    load_valid_repository,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_repo_argument(parser)
    add_format_argument(parser, "text", "json")
    add_at_argument(parser, "report time in stage as of TIME")
    parser.add_argument("--observe", action="store_true",
                        help="read each candidate's request rate from Prometheus (the environment's, or --prometheus) "
                             "to plan its current stage's evidence at the observed rate")
    add_prometheus_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..core.status import repository_status

    repo = load_valid_repository(args.path, "status")
    if repo is None:
        return exit_codes.FINDINGS
    at = args.at or datetime.now(timezone.utc)
    observed = None
    if args.observe:
        from ..adapters.planning import observed_candidate_rps

        observed = observed_candidate_rps(repo, at, checked_prometheus_url(args.prometheus, args.allow_link_local))
    statuses = repository_status(repo, at, observed)
    if args.format == "json":
        print(json.dumps({"environments": [_env_dict(s) for s in statuses]}, indent=2))
    else:
        print(_text(statuses))
    return exit_codes.OK


def _env_dict(status) -> dict[str, object]:
    return {
        "name": status.name, "cluster": status.cluster, "region": status.region, "protected": status.protected,
        "models": [m.to_dict() for m in status.models],
        "pools": [{"name": d.pool.name, "nodes_needed": d.nodes, "max_nodes": d.pool.max_nodes} for d in status.pools],
    }


def _minutes(elapsed) -> str:
    """1 day, 1 h 27 min 3.9 s -> "1d1h27m": minutes are enough for people."""
    from datetime import timedelta

    from ..core.types import format_duration

    return format_duration(timedelta(minutes=int(elapsed.total_seconds() // 60))) if elapsed.total_seconds() >= 60 \
        else "under 1m"


def _text(statuses) -> str:
    lines: list[str] = []
    for env in statuses:
        flags = ", protected" if env.protected else ""
        lines.append(f"{env.name}  (cluster {env.cluster}, {env.region}{flags})")
        for m in env.models:
            lines.append(f"  {m.model}")
            lines.append(f"    traffic   {_traffic(m)}")
            if m.candidate is not None:
                since = (m.stage_started_at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
                         if m.stage_started_at else "?")
                share = m.weights.get(m.candidate, 0)
                in_stage = f", {_minutes(m.time_in_stage)} ago" if m.time_in_stage is not None else ""
                lines.append(f"    rollout   {m.strategy}, stage {m.stage}/{m.last_stage} ({share}% to the candidate), "
                             f"since {since}{in_stage}")
                lines.append(f"    next      {m.next_gate}")
                if m.deadline_left is not None:
                    lines.append(f"    deadline  {_deadline(m)}")
                for plan in m.evidence:
                    current = "  <- now" if plan.stage == m.stage else ""
                    lines.append(f"    evidence  {plan.text()}{current}")
            if m.standby is not None:
                until = (f"until {m.standby_until.astimezone(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}"
                         if m.standby_until else "until removed by hand")
                lines.append(f"    standby   {m.standby}, kept {until}")
            lines.append(f"    serving   {m.replicas} replica(s) per version on pool {m.pool}")
        for d in env.pools:
            lines.append(f"  pool {d.pool.name}: {d.nodes} of {d.pool.max_nodes} {d.pool.instance_type} nodes needed "
                         "with every live version running")
        lines.append("")
    return "\n".join(lines).rstrip()


def _deadline(m) -> str:
    """"3h after the stage began (2026-11-22 10:30 UTC), 2h30m left, then hold and page on-call once"."""
    from ..core.types import format_duration

    at = (m.stage_started_at + m.progress_deadline).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    then = "roll back" if m.on_progress_deadline == "rollback" else "hold and page on-call once"
    head = f"{format_duration(m.progress_deadline)} after the stage began ({at})"
    if m.deadline_left.total_seconds() >= 0:
        return f"{head}, {_minutes(m.deadline_left)} left, then {then}"
    return f"{head}, passed {_minutes(-m.deadline_left)} ago: {then}"


def _traffic(m) -> str:
    roles = {m.stable: "stable", m.candidate: "candidate", m.standby: "standby"}
    parts = [f"{roles[v]} {v} {w}%" for v, w in m.weights.items()]
    if m.mirror:
        parts.append(f"(+{m.mirror[1]}% mirrored to {m.mirror[0]})")
    return ", ".join(parts)
