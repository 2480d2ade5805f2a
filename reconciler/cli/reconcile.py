"""`reconciler reconcile [PATH] [--environment ENV] [--prometheus URL] [--at TIME] [--dry-run] [--push]
[--format text|json] [--watch --interval 30s]`: one pass (or a loop) over every in-flight rollout.

Exit 0 when the pass ran, whatever it decided (a rollback is the system working); 1 when the
repository has errors; 2 on usage errors or when git refuses (a dirty environment file, a push
that keeps failing); 3 when the pass ran but Prometheus could not be read for a rollout in flight
(it held unjudged: never a rollback; decisions that need no metrics, such as retiring a standby,
are still committed), so a scheduled job shows red instead of a green run that judged nothing;
4 when another reconciler command held the checkout for all of --lock-timeout.
`--watch` keeps looping on 3 (Prometheus may come back) and says so on stderr every pass, and on
4 (tries again at the next interval); it stops on 1 and 2. `--at` evaluates as of a past time, for
replays and post-mortems.
"""

from __future__ import annotations

import argparse
import json
import sys
from time import sleep  # module-level, so a test can stop the watch loop without stopping subprocesses

from . import exit_codes
from .main import (UsageError, add_at_argument, add_format_argument, add_lock_timeout_argument,
                   add_prometheus_arguments, add_repo_argument, checked_prometheus_url, lock_timeout_seconds)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_repo_argument(parser)
    parser.add_argument("--environment", "-e", action="append", metavar="ENV",
                        help="only this environment (repeatable; default: all)")
    add_prometheus_arguments(parser)
    add_at_argument(parser, "decide as of TIME: queries and clocks read that instant")
    parser.add_argument("--dry-run", action="store_true", help="decide and print; write and commit nothing")
    parser.add_argument("--push", action="store_true",
                        help="push the commits; a rejected push re-reads the remote head and decides again")
    parser.add_argument("--watch", action="store_true", help="run a pass every --interval until interrupted")
    parser.add_argument("--interval", default="30s", metavar="DURATION", help="between passes with --watch (default 30s)")
    add_format_argument(parser, "text", "json")
    add_lock_timeout_argument(parser)


def run(args: argparse.Namespace) -> int:
    from ..core.types import explained, parse_duration

    if args.watch and args.at is not None:
        raise UsageError("--watch runs on the clock; --at replays one instant: use one or the other")
    try:
        interval = parse_duration(args.interval)
    except ValueError as err:
        raise UsageError(f"--interval: {explained(err)}") from None
    if interval.total_seconds() <= 0:
        raise UsageError(f"--interval {args.interval}: give a positive duration such as 30s")
    while True:
        code = _one_pass(args)
        if not args.watch or code not in (exit_codes.OK, exit_codes.METRICS_UNREACHABLE, exit_codes.LOCKED):
            return code
        try:
            sleep(interval.total_seconds())
        except KeyboardInterrupt:
            return exit_codes.OK


def _one_pass(args: argparse.Namespace) -> int:
    from ..adapters.git import GitError
    from ..adapters.rollout_pass import CheckoutLocked, InvalidRepository, RolloutError, run_pass
    from .main import print_repository_errors
    from .reporters import print_failed_deliveries

    try:
        report = run_pass(args.path, environments=args.environment,
                          prometheus_url=checked_prometheus_url(args.prometheus, args.allow_link_local), at=args.at,
                          dry_run=args.dry_run, push=args.push, lock_timeout=lock_timeout_seconds(args.lock_timeout))
    except CheckoutLocked as err:
        print(f"reconciler reconcile: {err}; nothing was decided", file=sys.stderr)
        return exit_codes.LOCKED
    except InvalidRepository as err:
        print_repository_errors(err.findings, "reconcile")
        return exit_codes.FINDINGS
    except (RolloutError, GitError) as err:
        raise UsageError(str(err)) from None
    print(report_json(report) if args.format == "json" else report_text(report, args.dry_run), flush=True)
    print_failed_deliveries("reconcile", report.applied)
    unjudged = [d for d in report.decisions if d.metrics_unreachable]
    if unjudged:
        rollouts = ", ".join(f"{d.model} {d.candidate}" for d in unjudged)
        print(f"reconciler reconcile: exit {exit_codes.METRICS_UNREACHABLE}: Prometheus could not be read for "
              f"{', '.join(unreachable_environments(report))}: {len(unjudged)} rollout(s) held unjudged ({rollouts}); "
              "see docs/runbook.md", file=sys.stderr, flush=True)
        return exit_codes.METRICS_UNREACHABLE
    return exit_codes.OK


def unreachable_environments(report) -> list[str]:
    """The environments whose Prometheus could not be read for a rollout in flight."""
    return sorted({d.environment for d in report.decisions if d.metrics_unreachable})


def report_json(report) -> str:
    commits = {id(a.decision): a for a in report.applied}
    decisions = []
    for d in report.decisions:
        entry = d.to_dict()
        applied = commits.get(id(d))
        if applied is not None:
            entry |= {"commit": applied.commit, "incident": applied.incident,
                      "notifications": [{"target": x.target, "ok": x.ok, "detail": x.detail}
                                        for x in applied.deliveries]}
        decisions.append(entry)
    return json.dumps({"at": report.at.isoformat(), "queries": report.queries, "pushed": report.pushed,
                       "metrics_unreachable": unreachable_environments(report), "decisions": decisions}, indent=2)


def report_text(report, dry_run: bool) -> str:
    from ..core.types import utc_text

    commits = {id(a.decision): a for a in report.applied}
    lines = [f"reconcile at {utc_text(report.at)}: {len(report.decisions)} decision(s), {report.queries} "
             f"Prometheus quer{'y' if report.queries == 1 else 'ies'}{' (dry run: nothing written)' if dry_run else ''}"]
    for d in report.decisions:
        stage = "" if d.stage is None else f" stage {d.stage}"
        if d.next_stage is not None and d.next_stage != d.stage:
            stage += f" -> {d.next_stage}"
        weight = "" if d.weight is None else f" ({d.weight}%)"
        lines.append(f"  {d.environment} {d.model} {d.candidate}: {d.action}{stage}{weight}")
        lines += [f"      {reason}" for reason in d.reasons]
        applied = commits.get(id(d))
        if applied is not None and applied.commit:
            lines.append(f"      committed {applied.commit[:12]}" + (f", incident {applied.incident}"
                                                                       if applied.incident else ""))
    if report.pushed:
        lines.append(f"pushed after {report.attempts} attempt(s)")
    return "\n".join(lines)
