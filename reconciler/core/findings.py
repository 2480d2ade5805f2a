"""Findings: what a check found, where, and how to fix it. Plain values; reporters format them.

The core knows files and YAML paths but not line numbers (it never reads text); the loader adds
`line` and `column` from the parsed document, so the same rule reports precisely in the CLI and
stays pure for the Pulumi program and the policy pack.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Iterable, Iterator

PathPart = str | int
YamlPath = tuple[PathPart, ...]


class Severity(StrEnum):
    ERROR = "error"  # blocks: validate exits 1, the policy pack marks it mandatory
    WARNING = "warning"  # reported, never blocks


@dataclass(frozen=True, slots=True)
class Problem:
    """A rule's verdict on one value, located relative to that value."""

    path: YamlPath
    message: str
    fix: str = ""
    severity: Severity = Severity.ERROR


@dataclass(frozen=True, slots=True)
class Finding:
    severity: Severity
    rule: str
    file: str
    path: YamlPath
    message: str
    fix: str = ""
    line: int | None = None
    column: int | None = None

    @property
    def yaml_path(self) -> str:
        return format_path(self.path)

    def located(self, line: int | None, column: int | None) -> "Finding":
        return replace(self, line=line, column=column)

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.yaml_path,
            "rule": self.rule,
            "severity": str(self.severity),
            "message": self.message,
            "fix": self.fix,
        }


def finding_line(f: Finding) -> str:
    """`file:line:col: severity: path: message; fix: ... [rule]`, the shape editors and CI annotate.

    Here rather than in the CLI's reporters because the Pulumi program (adapters/deployable.py)
    refuses a broken repository with the same lines `reconciler validate` prints."""
    where = f.file + (f":{f.line}" if f.line else "") + (f":{f.column}" if f.line and f.column else "")
    path = f"{f.yaml_path}: " if f.path else ""
    fix = f"; fix: {f.fix}" if f.fix else ""
    return f"{where}: {f.severity}: {path}{f.message}{fix} [{f.rule}]"


def format_path(path: YamlPath) -> str:
    """("rollout", "stages", 2, "weight") -> "rollout.stages[2].weight"."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def findings_from(rule: str, file: str, prefix: YamlPath, problems: Iterable[Problem]) -> Iterator[Finding]:
    """Turn a rule's problems about the value at `prefix` of `file` into findings."""
    for p in problems:
        yield Finding(p.severity, rule, file, prefix + p.path, p.message, p.fix)


def sort_key(f: Finding) -> tuple[str, int, int, str]:
    return (f.file, f.line or 0, f.column or 0, f.rule)


class HasFindings:
    """`errors` and `warnings` of a value with a `findings` list (a load result, a plan)."""

    findings: list[Finding]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.WARNING]
