"""`reconciler report MODEL --environment ENV --out FILE [--prometheus URL] [--since TIME] [--until TIME] [PATH]`:
the review page of a rollout, as one self-contained HTML file.

Exit 0 when the page is written, also when Prometheus cannot be reached: the page then holds the
commit log and the incident record and says why its charts are missing, and a warning goes to
stderr (a post-mortem must not depend on the monitoring that may be what failed). Exit 2 when
there is no rollout of MODEL in ENV in the git history, PATH is not a git checkout, the times
make an empty period, or FILE cannot be written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import exit_codes
from .main import UsageError, add_prometheus_arguments, add_repo_argument, checked_prometheus_url, parse_time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="the model whose latest rollout (at or before --until) to report")
    add_repo_argument(parser)
    parser.add_argument("--environment", "-e", required=True, metavar="ENV", help="the environment (environments/<ENV>.yaml)")
    parser.add_argument("--out", required=True, type=Path, metavar="FILE", help="the HTML file to write")
    add_prometheus_arguments(parser)
    parser.add_argument("--since", type=parse_time, metavar="TIME",
                        help="start of the charts (default: a little before the rollout started)")
    parser.add_argument("--until", type=parse_time, metavar="TIME",
                        help="end of the charts, and the rollout to report is the latest started by then "
                             "(default: a little after the rollout ended, or now)")


def run(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from ..adapters.git import GitError
    from ..adapters.rollout_report import ReportError, make_report
    from ..core.rollout_report import summary_lines, warnings

    try:
        report = make_report(args.path, args.environment, args.model, args.out, now=datetime.now(timezone.utc),
                             prometheus_url=checked_prometheus_url(args.prometheus, args.allow_link_local), since=args.since, until=args.until)
    except ReportError as err:
        raise UsageError(str(err)) from None
    except GitError as err:
        raise UsageError(f"{args.path} must be a git checkout with the rollout's commits: {err}") from None
    for warning in warnings(report):
        print(f"reconciler report: warning: {warning}", file=sys.stderr)
    print(f"wrote {args.out}")
    print("\n".join(summary_lines(report)))
    return exit_codes.OK
