"""`python -m reconciler.demo [--out DIR] [--recorded]`: play the main job's rollout end to end.

Exit 0 when the rollout played as the scenario says (its report written), 1 when a pass decided
something else (the message says what), 2 on usage errors (DIR not empty, no example repository).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from ..cli import exit_codes
from .player import DemoError, DemoUsageError, example_source, pass_table, play


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reconciler.demo",
        description="Play a canary of the example repository end to end: start, passes that advance it, a breach, "
                    "the automatic rollback with its incident record, and the HTML report.")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="a new or empty directory for the repository (DIR/repo) and the report "
                             "(DIR/report.html); default: a new temporary directory")
    parser.add_argument("--recorded", action="store_true",
                        help="replay recorded Prometheus answers even where Prometheus runs")
    parser.add_argument("--record", type=Path, metavar="FILE",
                        help="(maintainers) write the real Prometheus' answers to FILE, e.g. reconciler/demo/recorded.json")
    parser.add_argument("--from", dest="source", type=Path, metavar="PATH",
                        help="the example repository to copy (default: the checkout holding this package, "
                             "else the current directory)")
    args = parser.parse_args(argv)
    if args.recorded and args.record:
        parser.error("--record needs the real Prometheus: not with --recorded")
    out = args.out or Path(tempfile.mkdtemp(prefix="sluice-demo-"))
    started = time.monotonic()
    try:
        demo = play(example_source(args.source), out, recorded=args.recorded, record=args.record)
    except DemoError as err:
        print(f"python -m reconciler.demo: {err}", file=sys.stderr)
        return exit_codes.USAGE if isinstance(err, DemoUsageError) else exit_codes.FINDINGS
    print()
    print(f"The passes and their decisions ({'recorded metric values' if demo.mode == 'recorded' else 'Prometheus'}):")
    print("\n".join(pass_table(demo)))
    print(f"Report: {demo.report_path} (one HTML file: open it in a browser). "
          f"Played in {time.monotonic() - started:.1f} s.")
    return exit_codes.OK


if __name__ == "__main__":
    sys.exit(main())
