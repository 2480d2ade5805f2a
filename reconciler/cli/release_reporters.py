"""What `release import` prints: the file written, why this version, and the origin of every field."""

from __future__ import annotations

from ..core.release_import import Imported, ImportPlan
from ..core.semver import describe


def import_summary(model: str, path: str, parent: str, why: str, plan: ImportPlan, imports: list[Imported],
                   todo: list[str]) -> str:
    version = path.rsplit("/", 1)[-1].removesuffix(".yaml")
    because = f"for {describe(plan.reasons)}" if plan.reasons else "no change that asks for more"
    lines = [f"wrote {path}: {model} {version} from {parent} ({why})",
             f"version: {plan.bump.name}, {because}",
             "set:"]
    width = max((len(item.dotted) for item in plan.supplied), default=0)
    lines += [f"  {item.dotted:<{width}}  <- {item.source}" for item in plan.supplied]
    if plan.kept:
        lines.append(f"kept from {parent} (not imported): " + ", ".join(".".join(p) for p in plan.kept))
    if todo:
        lines.append("fill in (marked TODO(sluice) in the file): " + ", ".join(todo))
    for imported in imports:
        if imported.unused:
            lines.append(f"not used from {imported.source}: " + ", ".join(imported.unused))
        lines += [f"note: {remark}" for remark in imported.remarks]
    lines.append("then run `reconciler validate`" + (" once the TODOs are filled in" if todo else ""))
    return "\n".join(lines)
