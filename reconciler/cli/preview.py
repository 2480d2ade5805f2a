"""`reconciler preview --environment ENV [--base REF] [--format text|json] [PATH]`: an offline
preview with policy results, for reviewers and CI without cloud credentials or a Pulumi backend.

The Pulumi program runs in-process under the SDK's mocks; the policy pack judges its resources
over the engine's gRPC protocol. With --base, the same program over the base ref's release and
environment files shows what is created, changed or deleted, with the traffic that moves.
Exit 1 on a mandatory policy violation (or a repository with errors), 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys

from . import exit_codes
from .main import UsageError, add_format_argument, add_repo_argument, load_deployable
from .reporters import plural

OFFLINE_NOTE = ("offline preview: the Pulumi program ran under the SDK's mocks and the policy pack judged its "
                "resources over gRPC. Not a cloud preview: nothing was read from AWS or the cluster.")
SYMBOLS = {"create": "+", "update": "~", "delete": "-"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_repo_argument(parser)
    parser.add_argument("--environment", "-e", required=True, help="the environment (environments/<ENV>.yaml)")
    parser.add_argument("--base", metavar="REF", help="a git ref to compare with, e.g. origin/main")
    add_format_argument(parser, "text", "json")


def run(args: argparse.Namespace) -> int:
    from ..adapters.deployable import preloaded
    from ..adapters.base_ref import BaseRefError
    from ..adapters.offline_preview import offline_preview
    from ..adapters.policy_client import PolicyPackError

    repo = load_deployable(args.path, args.environment, "preview")
    if repo is None:
        return exit_codes.FINDINGS
    if not (args.path / "policies").is_dir():
        raise UsageError(f"{args.path} has no policies/ directory (the CrossGuard policy pack)")
    try:
        with preloaded(args.path, repo):
            result = offline_preview(args.path, args.environment, args.base)
    except BaseRefError as err:
        raise UsageError(str(err)) from None
    except PolicyPackError as err:
        print(f"reconciler preview: {err}", file=sys.stderr)
        return exit_codes.USAGE
    print(_json(result) if args.format == "json" else _text(result))
    timings = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in result.timings.items())
    print(f"reconciler preview: {timings}", file=sys.stderr)
    return exit_codes.FINDINGS if result.mandatory else exit_codes.OK


def _short(urn: str) -> str:
    """"urn:...::parent$kubernetes:apps/v1:Deployment::chat-assistant-v1-3-0" -> type and name."""
    if not urn:
        return "stack"
    parts = urn.split("::")
    return f"{parts[2].split('$')[-1]} {parts[3]}"


def _traffic(weights: dict[str, tuple[int, int]]) -> str:
    return ", ".join(f"{v} {a}% -> {b}%" for v, (a, b) in weights.items())


def _text(result) -> str:
    custom = [r for r in result.resources if r.custom]
    width = max(len(r.type) for r in custom)
    lines = [f"{result.environment}: {OFFLINE_NOTE}", "",
             f"Resources ({len(custom)}, plus {len(result.resources) - len(custom)} components):"]
    lines += [f"  {r.type:<{width}}  {r.name}" for r in sorted(custom, key=lambda r: (r.type, r.name))]
    if result.changes is not None:
        lines += ["", f"Changes against {result.base} ({len(result.changes) or 'none'}):"]
        for change in result.changes:
            detail = f"  ({', '.join(change.fields)})" if change.fields else ""
            traffic = f"  traffic {_traffic(change.weights)}" if change.weights else ""
            lines.append(f"  {SYMBOLS[change.action]} {change.type} {change.name}{detail}{traffic}")
    lines += ["", f"Policies ({plural(result.policy_count, 'policy rule')} in the pack):"]
    ordered = sorted(result.diagnostics, key=lambda d: (not d.mandatory, d.policy, d.urn))
    lines += [f"  {'mandatory' if d.mandatory else 'advisory '}  {d.policy}  {_short(d.urn)}: {d.text}"
              for d in ordered] or ["  no violations"]
    advisories = len(result.diagnostics) - len(result.mandatory)
    verdict = (f"blocked: {len(result.mandatory)} mandatory violation(s)" if result.mandatory
               else "passed")
    lines += ["", f"Result: {verdict}, {advisories} advisory note(s)."]
    return "\n".join(lines)


def _json(result) -> str:
    return json.dumps({
        "environment": result.environment, "offline": True, "note": OFFLINE_NOTE, "base": result.base,
        "resources": [{"type": r.type, "name": r.name, "urn": r.urn} for r in result.resources if r.custom],
        "changes": None if result.changes is None else [
            {"action": c.action, "type": c.type, "name": c.name, "fields": list(c.fields),
             "weights": {v: {"from": a, "to": b} for v, (a, b) in c.weights.items()}} for c in result.changes],
        "policies": [{"policy": d.policy, "level": "mandatory" if d.mandatory else "advisory", "urn": d.urn,
                      "message": d.text} for d in result.diagnostics],
        "policy_rules": result.policy_count, "blocked": bool(result.mandatory), "timings": result.timings,
    }, indent=2)
