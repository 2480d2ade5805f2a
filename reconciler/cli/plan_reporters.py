"""A plan as Markdown (the PR comment), text (a terminal) or JSON (machines). Formatting only.

The Markdown leads with the verdict and the traffic that moves, because that is what a reviewer
must not miss; releases, checks and errors follow; pointer fields and resources fold away.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

from ..core.findings import Finding, finding_line
from ..core.plan import ModelPlan, Plan, ReleaseChange
from ..core.predeployment import GateResult
from .reporters import plural


def _checks(result: Plan) -> dict[str, Any]:
    return result.extra.get("environments", {})


def mandatory_violations(result: Plan) -> int:
    return sum(v.mandatory for checks in _checks(result).values() for v in checks.violations)


def blocked(result: Plan) -> bool:
    return bool(result.errors) or mandatory_violations(result) > 0


def verdict(result: Plan) -> str:
    problems = []
    if result.errors:
        problems.append(plural(len(result.errors), "error"))
    if mandatory_violations(result):
        problems.append(plural(mandatory_violations(result), "mandatory policy violation"))
    if problems:
        return f"Blocked: {' and '.join(problems)}"
    return "No changes to releases or environments" if result.empty else "Ready to merge"


def traffic_text(model: ModelPlan) -> str:
    """"1.2.0 99% -> 95%, 1.3.0 1% -> 5%"; unchanged versions are shown plainly."""
    parts = [f"{v} {a}%" if a == b else f"{v} {a}% -> {b}%" for v, (a, b) in model.weights.items()]
    if model.mirror[0] != model.mirror[1]:
        parts.append(f"mirror {model.mirror[0] or 'none'} -> {model.mirror[1] or 'none'}")
    return ", ".join(parts) or "none"


def pointer_text(model: ModelPlan) -> str:
    """The fields that moved, most telling first: "candidate 1.3.0 (new), stage 1 -> 2"."""
    if model.kind != "changed":
        return f"model {model.kind}"
    shown = [f for f in model.fields if f.field not in ("stage_started_at", "standby_until")]
    return ", ".join(f"{f.field} {_value(f.before)} -> {_value(f.after)}" for f in shown) or "timing only"


def _value(value: Any) -> str:
    return "none" if value is None else str(value)


def release_text(change: ReleaseChange) -> tuple[str, str]:
    """(bump, what changed) for one row of the releases table."""
    if change.kind == "added":
        if change.parent is None:
            return "first release", "-"
        bump = f"{change.bump.word} from {change.parent}" if change.bump else f"from {change.parent}"
        return bump, ", ".join(r.what for r in change.reasons) or "no change to the bundle or base model"
    if change.kind == "changed":
        return "-", "released file edited: " + ", ".join(change.changed[:5])
    return "-", "release file deleted"


def gate_text(gate: GateResult) -> str:
    return f"{gate.gate} {gate.phase}" + ("" if gate.phase == "pass" else f" ({gate.message})")


def _models(result: Plan) -> list[ModelPlan]:
    return [m for env in result.environments for m in env.models]


# --------------------------------------------------------------------------- Markdown


def markdown(result: Plan) -> str:
    mark = "❌" if blocked(result) else "✅"
    lines = [f"### Sluice plan against `{result.base}`", "", f"{mark} **{verdict(result)}** · {_summary(result)}"]
    models = _models(result)
    if models:
        lines += ["", "| environment | model | change | traffic (before -> after) |", "|---|---|---|---|"]
        lines += [f"| {m.environment} | {m.model} | {_cell(pointer_text(m))} | "
                  f"{'**' + traffic_text(m) + '**' if m.traffic_moves else traffic_text(m)} |" for m in models]
        lines.append("")
        for m in models:
            if m.stage:
                lines.append(f"- {m.environment} / {m.model} at {m.stage} needs: {_cell(m.needs or '')}")
            lines += [f"- {m.environment} / {m.model} evidence, {_cell(p.text())}" for p in m.evidence]
    notes = [env for env in result.environments if env.kind != "changed" or env.settings]
    if notes:
        lines.append("")
    for env in notes:
        if env.kind != "changed":
            lines.append(f"- environment **{env.name}** {env.kind}")
        elif env.settings:
            lines.append(f"- {env.name}: settings changed: {', '.join(f'`{s}`' for s in env.settings)}")
    if result.releases:
        lines += ["", "| release | change | version bump | what changed |", "|---|---|---|---|"]
        for change in result.releases:
            bump, what = release_text(change)
            lines.append(f"| {change.model} {change.version} | {change.kind} | {bump} | {_cell(what)} |")
    lines += ["", "**Checks**", *[f"- {line}" for line in _check_lines(result)]]
    if result.findings:
        lines += ["", "**Errors and new warnings**", *[f"- {_finding_md(f)}" for f in result.findings]]
    details = _details_md(result)
    if details:
        lines += ["", "<details><summary>Pointers and resources</summary>", "", *details, "", "</details>"]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))  # one blank line between blocks, whichever are present


def _summary(result: Plan) -> str:
    moving = sorted({m.environment for m in _models(result) if m.traffic_moves})
    added = sum(c.kind == "added" for c in result.releases)
    parts = [f"traffic moves in {', '.join(moving)}" if moving else "no traffic moves"]
    if added:
        parts.append(plural(added, "release") + " added")
    return " · ".join(parts)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _finding_md(f: Finding) -> str:
    where = f"{f.file}:{f.line}" if f.line else f.file
    path = f" `{f.yaml_path}`" if f.path else ""
    fix = f" Fix: {f.fix}" if f.fix else ""
    return f"{f.severity} `{where}`{path}: {f.message}.{fix} [{f.rule}]"


def _check_lines(result: Plan) -> list[str]:
    lines = [f"validate: {plural(len(result.errors), 'error')}, {plural(len(result.warnings), 'new warning')}"
             + (f" ({result.known_warnings} already on {result.base})" if result.known_warnings else "")]
    for m in _models(result):
        if m.predeployment:
            lines.append(f"pre-deployment gates, {m.environment} / {m.model}: "
                         + ", ".join(gate_text(g) for g in m.predeployment))
    for name, checks in _checks(result).items():
        if checks.skipped:
            lines.append(f"{name}: program not run: {checks.skipped}")
            continue
        counts = {a: sum(c.action == a for c in checks.resources) for a in ("create", "update", "delete")}
        resources = ", ".join(f"{n} to {a}" for a, n in counts.items() if n) or "no resource changes"
        bad = checks.violations
        policies = f"{plural(checks.policies, 'policy rule')}: " + (
            "no violations" if not bad else "; ".join(f"{v.policy} ({'mandatory' if v.mandatory else 'advisory'}): "
                                                      f"{v.message}" for v in bad))
        lines.append(f"{name} (offline, the program under mocks): {resources}; {policies}")
    return lines


def _details_md(result: Plan) -> list[str]:
    lines = []
    fields = [(m, f) for m in _models(result) for f in m.fields]
    if fields:
        lines += ["| environment | model | field | before | after |", "|---|---|---|---|---|"]
        lines += [f"| {m.environment} | {m.model} | {f.field} | {_value(f.before)} | {_value(f.after)} |"
                  for m, f in fields]
    for name, checks in _checks(result).items():
        if checks.resources:
            lines += ["", f"{name}:", *[f"- {c.action} `{c.type.rsplit(':', 1)[-1]}` {c.name}" for c in checks.resources]]
    return lines


# --------------------------------------------------------------------------- text and JSON


def text(result: Plan) -> str:
    lines = [f"Plan against {result.base}: {verdict(result)} ({_summary(result)})"]
    for m in _models(result):
        lines.append(f"  {m.environment} / {m.model}: {pointer_text(m)}; traffic {traffic_text(m)}")
        if m.stage:
            lines.append(f"    at {m.stage}, needs: {m.needs}")
        lines += [f"    evidence, {p.text()}" for p in m.evidence]
    for env in result.environments:
        if env.kind != "changed" or env.settings:
            lines.append(f"  environment {env.name}: {env.kind}" + (f" ({', '.join(env.settings)})" if env.settings
                                                                   else ""))
    for change in result.releases:
        bump, what = release_text(change)
        lines.append(f"  release {change.model} {change.version} {change.kind}: {bump}; {what}")
    lines += ["Checks:", *[f"  {line}" for line in _check_lines(result)]]
    lines += [finding_line(f) for f in result.findings]
    return "\n".join(lines)


def as_json(result: Plan) -> str:
    return json.dumps({
        "base": result.base, "ok": not blocked(result), "verdict": verdict(result),
        "releases": [{"kind": c.kind, "model": c.model, "version": c.version, "file": c.file, "parent": c.parent,
                      "bump": c.bump.name.lower() if c.bump else None,
                      "changes_since_parent": [{"path": r.dotted, "needs": r.bump.name.lower(), "what": r.what}
                                               for r in c.reasons],
                      "changed_fields": list(c.changed)} for c in result.releases],
        "environments": [{"name": e.name, "kind": e.kind, "settings": list(e.settings),
                          "models": [_model_json(m) for m in e.models]} for e in result.environments],
        "checks": {name: {"resources": [{"action": c.action, "type": c.type, "name": c.name} for c in ch.resources],
                          "policies": ch.policies, "skipped": ch.skipped or None,
                          "violations": [vars(v) for v in ch.violations]}
                   for name, ch in _checks(result).items()},
        "errors": [f.to_dict() for f in result.errors],
        "warnings": [f.to_dict() for f in result.warnings],
        "known_warnings": result.known_warnings,
    }, indent=2)


def _model_json(m: ModelPlan) -> dict[str, Any]:
    return {"model": m.model, "kind": m.kind,
            "fields": [{"field": f.field, "before": f.before, "after": f.after} for f in m.fields],
            "weights": {v: {"before": a, "after": b} for v, (a, b) in m.weights.items()},
            "mirror": {"before": m.mirror[0] or None, "after": m.mirror[1] or None},
            "stage": m.stage, "needs": m.needs, "evidence": [p.to_dict() for p in m.evidence],
            "predeployment": [{"gate": g.gate, "phase": str(g.phase), "message": g.message} for g in m.predeployment]}


REPORTERS: dict[str, Callable[[Plan], str]] = {"markdown": markdown, "text": text, "json": as_json}
