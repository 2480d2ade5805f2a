"""Reporters turn findings into text for a CI log or JSON for machines. No logic lives here."""

from __future__ import annotations

import json
import sys
from typing import Any, Iterable

from ..core.findings import Finding, Severity, finding_line


def print_errors(findings: Iterable[Finding], summary: str) -> None:
    """Errors to stderr in the text line format, then one summary line: how every command that
    refuses a broken repository says so."""
    for finding in findings:
        print(finding_line(finding), file=sys.stderr)
    print(summary, file=sys.stderr)


def print_failed_deliveries(command: str, applied: Iterable[Any], name_the_action: bool = True) -> None:
    """Notifications that failed, to stderr: reported, never a reason to undo what was committed.
    A pass names which of its decisions stands; a hand action has only the one it just printed."""
    for item in applied:
        for delivery in item.deliveries:
            if not delivery.ok:
                stands = f" (the {item.decision.action} stands)" if name_the_action else ""
                print(f"reconciler {command}: notification to {delivery.target} failed: {delivery.detail}{stands}",
                      file=sys.stderr)


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def findings_text(findings: Iterable[Finding], files: int) -> str:
    findings = list(findings)
    errors = sum(f.severity is Severity.ERROR for f in findings)
    warnings = len(findings) - errors
    lines = [finding_line(f) for f in findings]
    verdict = "FAILED" if errors else "ok"
    lines.append(f"{verdict}: {plural(files, 'file')} checked, {plural(errors, 'error')}, "
                 f"{plural(warnings, 'warning')}")
    return "\n".join(lines)


def findings_json(findings: Iterable[Finding], files: int) -> str:
    findings = list(findings)
    errors = [f.to_dict() for f in findings if f.severity is Severity.ERROR]
    warnings = [f.to_dict() for f in findings if f.severity is Severity.WARNING]
    return json.dumps({"ok": not errors, "files": files, "errors": errors, "warnings": warnings}, indent=2)
