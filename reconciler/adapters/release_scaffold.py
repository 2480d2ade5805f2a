"""`reconciler release new`: the next release file, written from its parent's.

The new file is the parent's text (comments, order and style kept by a ruamel round trip) with
the identity and lineage set for the new version, and everything that must be measured or said
anew emptied and marked `# TODO(sluice): ...`: the code revision, the description, the offline
evaluation, approvals, and (for MINOR and MAJOR bumps, which mean new training) the training job.
Nothing is guessed: until those are filled in, `reconciler validate` refuses the file and says
which fields are missing. The bundle stays the parent's: point the artifacts that changed at the
new files (with their sha256); the semver rule then checks that the bump covers the change.
"""

from __future__ import annotations

import io
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from ..core.release_import import ImportPlan
from ..core.repository import Repository, release_path
from ..core.semver import Bump, next_version
from ..core.types import version_key
from .environment_writer import drop_eol_comment, round_trip_yaml, set_eol_comment, write_atomically, yaml_scalar

TODO = "TODO(sluice): "
SCHEMA_LINE = "# yaml-language-server:"


class ScaffoldError(ValueError):
    """The release cannot be scaffolded as asked (unknown model, taken version, no parent)."""


def choose_parent(repo: Repository, model: str, environment: str | None, version: str | None) -> tuple[str, str]:
    """(parent version, why it was chosen): the one asked for, the environment's stable, or the
    highest stable of the model across environments."""
    known = repo.versions(model)
    if not known:
        raise ScaffoldError(f"no releases of {model!r} under releases/ (models: {', '.join(_models(repo)) or 'none'})")
    if version is not None:
        if version not in known:
            raise ScaffoldError(f"{model} has no release {version} (known: {', '.join(known)})")
        return version, "as asked"
    stables = {name: env.models[model].stable for name, env in sorted(repo.environments.items())
               if model in env.models}
    if environment is not None:
        if environment not in stables:
            raise ScaffoldError(f"{model} is not deployed in {environment!r} (it is in: "
                                f"{', '.join(stables) or 'no environment'})")
        return stables[environment], f"stable in {environment}"
    if not stables:
        return known[-1], "the newest release (no environment runs the model yet)"
    best = max(stables.values(), key=version_key)
    where = ", ".join(name for name, v in stables.items() if v == best)
    return best, f"stable in {where}"


def _models(repo: Repository) -> list[str]:
    return sorted({e.release.model for e in repo.releases})


def scaffold(root: Path, repo: Repository, model: str, parent: str, bump: Bump, now: datetime,
             author: str | None, overlay: ImportPlan | None = None) -> tuple[str, list[str]]:
    """Write the new release file; returns (its path relative to root, the fields left to fill in)."""
    version = next_version(parent, bump)
    target = release_path(model, version)
    if repo.release(model, version) is not None or (root / target).exists():
        raise ScaffoldError(f"{target} already exists: scaffold from it with --from {version}, or pick another bump")
    text = (root / repo.release_file(model, parent)).read_text(encoding="utf-8")
    header, body = _split_header(text)
    yaml = round_trip_yaml(body)
    doc = yaml.load(body)
    todo = _edit(doc, model, version, parent, bump, now, author)
    origin = f"a {bump.name} release from {parent}"
    if overlay is not None:
        todo = _apply(doc, overlay, parent, todo)
        origin = f"imported from {overlay.source} over {parent} ({bump.name})"
    out = io.StringIO()
    yaml.dump(doc, out)
    header += [f"# {model} {version}: {origin}. Fill in every TODO(sluice), then run `reconciler validate`.",
               "# Immutable once merged: cut a new version instead of editing."]
    (root / target).parent.mkdir(parents=True, exist_ok=True)
    write_atomically(root / target, "\n".join(header) + "\n" + _keep_section_breaks(body, out.getvalue()))
    return target, todo


def _split_header(text: str) -> tuple[list[str], str]:
    """The editor's schema line (kept) and the parent's own leading comments (dropped: they
    describe the parent), then the document."""
    lines = text.splitlines(keepends=True)
    header, index = [], 0
    while index < len(lines) and (lines[index].startswith("#") or not lines[index].strip()):
        if lines[index].startswith(SCHEMA_LINE):
            header.append(lines[index].rstrip("\n"))
        index += 1
    return header, "".join(lines[index:])


def _keep_section_breaks(before: str, after: str) -> str:
    """A blank line before each top-level key that had one: emptying a nested value (approvals,
    benchmarks) drops the blank line ruamel kept inside it."""
    spaced = set(re.findall(r"\n\s*\n([A-Za-z_][\w-]*):", before))
    return re.sub(r"(?<=[^\n]\n)([A-Za-z_][\w-]*):", lambda m: ("\n" if m.group(1) in spaced else "") + m.group(0),
                  after)


def _apply(doc: CommentedMap, overlay: ImportPlan, parent: str, todo: list[str]) -> list[str]:
    """Set each supplied value (commented with its source), empty each missing one (TODO), mark
    what stays the parent's; a TODO that a supplied value answers is dropped."""
    set_eol_comment(doc, "bundle", f"from {overlay.source} where marked; the rest kept from {parent}")
    done = set()
    for item in overlay.supplied:
        for depth in range(1, len(item.path)):  # a TODO around the value is answered by it
            if ".".join(item.path[:depth]) in todo:
                drop_eol_comment(_mapping_at(doc, item.path[:depth - 1]), item.path[depth - 1])
        mapping = _mapping_at(doc, item.path[:-1])
        mapping[item.path[-1]] = _yaml_data(item.value)
        set_eol_comment(mapping, item.path[-1], item.source)
        done.update(".".join(item.path[:n]) for n in range(1, len(item.path) + 1))
    for item in overlay.missing:
        mapping = _mapping_at(doc, item.path[:-1])
        mapping[item.path[-1]] = None
        set_eol_comment(mapping, item.path[-1], TODO + item.source)
    for path in overlay.kept:
        mapping = doc.mlget(list(path[:-1])) if len(path) > 1 else doc
        if isinstance(mapping, CommentedMap) and mapping.get(path[-1]) is not None:
            set_eol_comment(mapping, path[-1], f"kept from {parent}: not imported")
    still = [path for path in todo if path not in done]
    return still + [item.dotted for item in overlay.missing]


def _mapping_at(doc: CommentedMap, path: tuple[str, ...]) -> CommentedMap:
    node = doc
    for key in path:
        if not isinstance(node.get(key), CommentedMap):
            node[key] = CommentedMap()
        node = node[key]
    return node


def _yaml_data(value: Any) -> Any:
    """Plain data as ruamel writes it in block style; strings that read as something else are quoted."""
    if isinstance(value, dict):
        out = CommentedMap()
        for key, item in value.items():
            out[key] = _yaml_data(item)
        return out
    if isinstance(value, list):
        return CommentedSeq(_yaml_data(item) for item in value)
    return value


def _edit(doc: CommentedMap, model: str, version: str, parent: str, bump: Bump, now: datetime,
          author: str | None) -> list[str]:
    todo: list[str] = []

    def clear(mapping: Any, key: str, path: str, why: str, empty: Any = None) -> None:
        if isinstance(mapping, CommentedMap):
            mapping[key] = empty
            set_eol_comment(mapping, key, TODO + why)
            todo.append(path)

    doc["version"] = yaml_scalar(version, "version")
    set_eol_comment(doc, "bundle", f"{parent}'s artifacts: point what changed at the new files, with their sha256")
    clear(doc, "revision", "revision", "the commit of the code that produced this release")
    clear(doc, "description", "description", "what changed since " + parent + " and why")
    lineage = doc.get("lineage")
    if isinstance(lineage, CommentedMap):
        lineage["parent_version"] = yaml_scalar(parent, "lineage.parent_version")
        lineage["created_at"] = yaml_scalar(now, "lineage.created_at")
        if author:
            lineage["created_by"] = author
        else:
            clear(lineage, "created_by", "lineage.created_by", "your e-mail (git config user.email was not set)")
        clear(lineage, "approvals", "lineage.approvals", "approvals are given in review", CommentedSeq())
        training = lineage.get("training")
        if bump >= Bump.MINOR:
            clear(training, "job_id", "lineage.training.job_id", "the training job of this version")
        if bump is Bump.MAJOR:
            base = lineage.get("base_model")
            if isinstance(base, CommentedMap):
                set_eol_comment(base, "name", TODO + "a MAJOR release: set the new base model or architecture")
                todo.append("lineage.base_model")
    evaluation = doc.get("evaluation")
    for key in ("toxicity", "win_rate_vs_current", "latency_p99_ms", "adversarial_pass_rate"):
        clear(evaluation, key, f"evaluation.{key}", "from the offline evaluation of " + version)
    clear(evaluation, "benchmarks", "evaluation.benchmarks", "from the offline evaluation of " + version,
          CommentedMap())
    return todo
