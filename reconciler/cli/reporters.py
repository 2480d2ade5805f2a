"""Reporters turn findings into text for a CI log or JSON for machines. No logic lives here."""

from __future__ import annotations

import json
from typing import Iterable

from ..core.findings import Finding, Severity


def finding_line(f: Finding) -> str:
    """`file:line:col: severity: path: message; fix: ... [rule]`, the shape editors and CI annotate."""
    where = f.file + (f":{f.line}" if f.line else "") + (f":{f.column}" if f.line and f.column else "")
    path = f"{f.yaml_path}: " if f.path else ""
    fix = f"; fix: {f.fix}" if f.fix else ""
    return f"{where}: {f.severity}: {path}{f.message}{fix} [{f.rule}]"


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
