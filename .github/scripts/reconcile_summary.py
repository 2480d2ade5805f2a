"""The job summary of .github/workflows/reconcile.yml: `reconciler reconcile --format json` as Markdown.

    python .github/scripts/reconcile_summary.py EXIT_CODE < report.json >> "$GITHUB_STEP_SUMMARY"

Standard library only, so it runs on whatever Python the runner has. A failed pass (exit code not
0, or no JSON on stdin) still gets a summary that says so instead of an empty page. Exit 3
(`METRICS_UNREACHABLE` in reconciler/cli/exit_codes.py) is a pass that ran but judged nothing
where Prometheus could not be read: its summary leads with that, then shows the decisions.
"""

from __future__ import annotations

import json
import sys


METRICS_UNREACHABLE = 3  # reconciler/cli/exit_codes.py


def summary(report: dict | None, code: int) -> str:
    if report is None or code not in (0, METRICS_UNREACHABLE):
        return (f"### Sluice reconcile failed (exit {code})\n\n`reconciler reconcile` wrote no report; "
                "the run log has its error.\n")
    decisions = report.get("decisions", [])
    pushed = "pushed" if report.get("pushed") else "nothing pushed"
    lines = [f"### Sluice reconcile at {report.get('at')}", ""]
    if code == METRICS_UNREACHABLE:
        where = ", ".join(_cell(e) for e in report.get("metrics_unreachable", [])) or "some environment"
        lines = [f"### Sluice reconcile: Prometheus unreachable (exit {code})", "",
                 f"**No rollout in {where} was judged**: Prometheus could not be read, so each one holds where it "
                 "is (nothing advances, nothing rolls back). Check that Prometheus is up and reachable from this "
                 'runner (docs/runbook.md, "Prometheus unreachable").', ""]
    lines += [f"{len(decisions)} decision(s), {report.get('queries')} Prometheus queries, {pushed}.", ""]
    if not decisions:
        return "\n".join(lines + ["No rollout in flight.", ""])
    lines += ["| environment | model | candidate | decision | stage | weight | why | commit |",
              "|---|---|---|---|---|---|---|---|"]
    failed: list[str] = []
    for d in decisions:
        lines.append("| " + " | ".join(_row(d)) + " |")
        failed += [f"- {_cell(d.get('model'))} in {_cell(d.get('environment'))}: notifying "
                   f"{_cell(n.get('target'))} failed: {_cell(n.get('detail'))}"
                   for n in d.get("notifications", []) if not n.get("ok")]
    if failed:
        lines += ["", "Notifications that failed:", *failed]
    return "\n".join(lines + [""])


def _row(d: dict) -> list[str]:
    stage = "" if d.get("stage") is None else str(d["stage"])
    if d.get("next_stage") is not None and d["next_stage"] != d.get("stage"):
        stage += f" → {d['next_stage']}"
    weight = "" if d.get("weight") is None else f"{d['weight']}%"
    commit = _cell((d.get("commit") or "")[:12])
    if d.get("incident"):
        commit += f" (incident {_cell(d['incident'])})"
    return [_cell(d.get("environment")), _cell(d.get("model")), _cell(d.get("candidate")),
            f"**{_cell(d.get('action'))}**", stage, weight, "<br>".join(_cell(r) for r in d.get("reasons", [])),
            commit]


def _cell(value: object) -> str:
    """Text safe inside a Markdown table cell: no HTML, no column breaks, one line."""
    text = "" if value is None else str(value)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def main(argv: list[str]) -> int:
    code = int(argv[1]) if len(argv) > 1 else 0
    try:
        report = json.loads(sys.stdin.read())
    except ValueError:
        report = None
    sys.stdout.write(summary(report if isinstance(report, dict) else None, code))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
