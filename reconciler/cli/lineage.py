"""`reconciler lineage MODEL VERSION [--format text|json] [PATH]`: the audit record of a version.

The chain of releases from VERSION back to the model's first release, each with its provenance
(base model, dataset, training, approvals, bundle digest, the commit that added its file) and the
environments and dates it served, read from git history (docs/lineage.md).

Which files must be valid: only the release files on the chain. Lineage is an audit read, often of
an old or half-broken working tree, and what it reports comes from those files and from git, never
from today's environment files; an unrelated typo elsewhere must not hide the record. A chain file
that does not load (or loads with errors, such as a duplicate key) is refused with its errors and
exit 1: an audit record read from a file the tool cannot read exactly would be wrong without saying
so. A parent with no file at all, or a cycle, is a fact about the repository: the chain stops there
with a note, exit 0. Outside git the chain is still printed, with a note that served history needs git.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from . import exit_codes
from .main import UsageError, add_format_argument, add_repo_argument, print_repository_errors


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="the model, as in releases/MODEL/")
    parser.add_argument("version", help="the version to start from, e.g. 1.3.0")
    add_format_argument(parser, "text", "json")
    add_repo_argument(parser)


def run(args: argparse.Namespace) -> int:
    from ..adapters.git import GitError
    from ..adapters.history import read_history
    from ..adapters.repo_loader import load_repository
    from ..core.lineage import release_chain

    loaded = load_repository(args.path)
    repo, model, version = loaded.repository, args.model, args.version
    if not repo.versions(model) and not any(f.startswith(f"releases/{model}/") for f in repo.broken_files):
        models = sorted({entry.release.model for entry in repo.releases})
        raise UsageError(f"no releases of model {model!r} under releases/ (known models: {', '.join(models) or 'none'})")
    if repo.release(model, version) is None and not repo.is_broken(model, version):
        raise UsageError(f"{model} has no release {version!r}: no releases/{model}/{version}.yaml "
                         f"(known versions: {', '.join(repo.versions(model)) or 'none that load'})")
    chain = release_chain(lambda v: repo.release(model, v), version, lambda v: repo.is_broken(model, v)) \
        if repo.release(model, version) is not None else None
    unreadable = _unreadable_files(repo, model, version, chain)
    if unreadable:
        print_repository_errors([f for f in loaded.errors if f.file in unreadable], "lineage")
        return exit_codes.FINDINGS
    assert chain is not None
    files = [repo.release_file(model, r.version) for r in chain.releases]
    try:
        history = read_history(args.path, model, files)
    except GitError as err:
        raise UsageError(f"cannot read the git history: {err}") from None
    report = lineage_report(chain, files, history)
    print(json.dumps(report, indent=2) if args.format == "json" else lineage_text(report))
    return exit_codes.OK


def _unreadable_files(repo, model: str, version: str, chain) -> list[str]:
    """Chain files that exist but did not load cleanly: the record cannot be trusted from them."""
    from ..core.repository import release_path

    if chain is None:
        return [release_path(model, version)]
    files = [repo.release_file(model, r.version) for r in chain.releases if repo.is_broken(model, r.version)]
    if chain.gap is not None and chain.gap.kind == "unreadable":
        files.append(release_path(model, chain.gap.parent))
    return files


# --- the report: one dict, rendered as JSON as it is, or as text -------------------------------------


def lineage_report(chain, files: list[str], history) -> dict[str, Any]:
    """The JSON document (docs/lineage.md#json); the text form is rendered from it."""
    from ..core.lineage import served_intervals, timeline, unreadable_revisions
    from ..core.types import utc_text

    first = chain.releases[0]
    versions = []
    for release, file in zip(chain.releases, files):
        lineage = release.lineage
        added = history.added.get(file)
        served = timeline(served_intervals(history.snapshots, release.model, release.version, release.rollout.stages))
        versions.append({
            "version": release.version,
            "full_id": release.full_id,
            "file": file,
            "description": release.description,
            "created_by": lineage.created_by,
            "created_at": utc_text(lineage.created_at),
            "parent_version": lineage.parent_version,
            "base_model": lineage.base_model.model_dump(mode="json"),
            "dataset": lineage.dataset.model_dump(mode="json"),
            "hyperparameters": dict(lineage.hyperparameters),
            "training": lineage.training.model_dump(mode="json"),
            "approvals": [{"by": a.by, "role": a.role, "at": utc_text(a.at)} for a in lineage.approvals],
            "bundle_digest": release.bundle_digest(),
            "added": None if added is None else {"commit": added.sha, "author": added.author,
                                                 "date": utc_text(added.date)},
            "uncommitted_changes": file in history.uncommitted,
            "served": [{
                "environment": i.environment, "role": i.role, "stage": i.stage, "weight": i.weight,
                "mirror": i.mirror, "from": utc_text(i.start), "from_commit": i.start_commit,
                "to": utc_text(i.end) if i.end else None, "to_commit": i.end_commit,
            } for i in served],
        })
    gap = chain.gap
    return {
        "model": first.model,
        "version": first.version,
        "complete": chain.complete,
        "gap": None if gap is None else {"kind": gap.kind, "version": gap.version, "parent": gap.parent,
                                         "message": gap.message},
        "chain": versions,
        "history": {
            "available": history.available,
            "note": history.note,
            "head": history.head,
            "commits": history.commits,
            "unreadable_revisions": unreadable_revisions(history.snapshots),
        },
    }


def lineage_text(report: dict[str, Any]) -> str:
    """One block per version, newest first, then what the chain and the history could not say."""
    chain = report["chain"]
    ending = (f"back to the first release, {chain[-1]['version']}" if report["complete"]
              else f"back to {chain[-1]['version']} (the chain stops there: see the end)")
    lines = [f"{report['model']} {report['version']}: {len(chain)} version(s) {ending}; newest first", ""]
    history = report["history"]
    for entry in chain:
        lines += _version_block(entry, history["available"])
        lines.append("")
    if report["gap"] is not None:
        lines.append(f"chain stops: {report['gap']['message']}")
    lines += _history_lines(history, report["model"])
    return "\n".join(lines)


def _version_block(v: dict[str, Any], have_history: bool) -> list[str]:
    base, data, training = v["base_model"], v["dataset"], v["training"]
    rows: list[tuple[str, list[str]]] = [
        ("description", [v["description"] or "(none)"]),
        ("file", [v["file"] + ("  (uncommitted changes: the working tree differs from git)"
                              if v["uncommitted_changes"] else "")]),
        ("created", [f"{_when(v['created_at'])} by {v['created_by']}"]),
        ("parent", [v["parent_version"] or "none (the model's first release)"]),
        ("base model", [base["name"] + (f" ({base['architecture']})" if base["architecture"] else ""),
                        f"{base['source']} at {base['revision']}"]),
        ("dataset", [f"{data['name']} {data['version']}, {_size(data['size_bytes'])}", f"sha256 {data['sha256']}",
                     *([data["uri"]] if data.get("uri") else [])]),
        ("hyperparams", [_hyperparameters(v["hyperparameters"])]),
        ("training", [f"{training['cluster']}, {training['gpu_count']} x {training['gpu_type']}"
                      + (f", job {training['job_id']}" if training["job_id"] else "")]),
        ("approvals", [f"{_when(a['at'])}  {a['by']}" + (f" ({a['role']})" if a["role"] else "")
                       for a in v["approvals"]] or ["none"]),
        ("bundle", [f"sha256 {v['bundle_digest']}"]),
        ("added", [_added(v["added"], have_history)]),
        ("served", _served(v["served"]) if have_history else ["unknown: needs git history (see the end)"]),
    ]
    lines = [f"{v['version']}  {v['full_id']}"]
    for label, values in rows:
        for i, value in enumerate(values):
            lines.append(f"  {label if i == 0 else '':<12}  {value}")
    return lines


def _served(intervals: list[dict[str, Any]]) -> list[str]:
    if not intervals:
        return ["never (no environment file in git history named it)"]
    roles = [_role(i) for i in intervals]
    env_width = max(len(i["environment"]) for i in intervals)
    role_width = max(len(r) for r in roles)
    out = []
    for i, role in zip(intervals, roles):
        start = f"{_when(i['from'])} ({i['from_commit'][:8]})"
        end = f"{_when(i['to'])} ({i['to_commit'][:8]})" if i["to"] else "now"
        length = f"  {_duration(i['from'], i['to'])}" if i["to"] else ""
        out.append(f"{i['environment']:<{env_width}}  {role:<{role_width}}  {start} -> {end}{length}")
    return out


def _role(interval: dict[str, Any]) -> str:
    if interval["role"] != "candidate":
        return interval["role"]
    share = ""
    if interval["weight"] is not None:
        share = f" ({interval['weight']}%" + (f", mirror {interval['mirror']}%" if interval["mirror"] else "") + ")"
    return f"candidate stage {interval['stage']}{share}"


def _added(added: dict[str, Any] | None, have_history: bool) -> str:
    if added is None:
        return "not committed yet" if have_history else "unknown: needs git history"
    return f"{_when(added['date'])}  {added['commit'][:12]}  {added['author']}"


def _history_lines(history: dict[str, Any], model: str) -> list[str]:
    if not history["available"]:
        return [f"history: {history['note']}"]
    head = f" (HEAD {history['head'][:12]})" if history["head"] else ""
    lines = [f"history: {history['commits']} commit(s) to environments/ on the first-parent line{head}"]
    for env, count in sorted(history["unreadable_revisions"].items()):
        lines.append(f"unreadable: {count} revision(s) of environments/{env}.yaml changed {model}'s entry but could "
                     "not be read; skipped (the state before each carries on)")
    return lines


def _when(text: str) -> str:
    """2026-11-22T10:00:00Z -> 2026-11-22 10:00 UTC (seconds only when there are any)."""
    day, clock = text.rstrip("Z").split("T")
    return f"{day} {clock[:5] if clock.endswith(':00') else clock} UTC"


def _duration(start: str, end: str) -> str:
    from datetime import datetime

    from ..core.types import format_duration

    return format_duration(datetime.fromisoformat(end) - datetime.fromisoformat(start))


def _size(size: int) -> str:
    """20117430272 -> "20.1 GB (20,117,430,272 bytes)": people read the first, auditors the second."""
    value, unit = float(size), "bytes"
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if value < 1000 or unit == "PB":
            break
        value /= 1000
    return f"{size:,} bytes" if unit == "bytes" else f"{value:.1f} {unit} ({size:,} bytes)"


def _hyperparameters(values: dict[str, Any]) -> str:
    if not values:
        return "none recorded"
    return f"{len(values)}: " + ", ".join(f"{k}={v}" for k, v in values.items())
