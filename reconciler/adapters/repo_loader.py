"""Read a whole Sluice repository from disk and report every problem in one run.

Layout: `releases/<model>/<version>.yaml` and `environments/<name>.yaml`. Each file is read with a
size cap, parsed by `yaml_source`, validated against its model, and then the core's semantic
rules run over everything that parsed. Findings come back with file, line, column and YAML path.

Only regular files are read, and links only to files inside the repository (docs/formats.md,
"Which files are read"); every entry is checked with lstat before anything opens it. Memory stays
at about 20 KB per file: no YAML node tree is kept once a file is validated.
"""

from __future__ import annotations

import gc
import os
import stat
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from pathlib import Path
from typing import Iterator, Mapping

from pydantic import BaseModel, ValidationError
from ruamel.yaml.nodes import Node

from ..core.environment import Environment
from ..core.findings import Finding, HasFindings, Severity, sort_key
from ..core.immutability import Released, immutability_findings
from ..core.release import Release
from ..core.repository import Repository, SourcedRelease
from ..core.rules import check
from ..core.rules.environment_rules import future_stage_starts
from ..core.schema_errors import schema_findings
from .files import NotARegularFile, entry_kind, open_regular_file
from .yaml_source import MAX_FILE_BYTES, locate, parse_yaml


class NotARepository(Exception):
    """The path is not a Sluice repository (usage error, exit 2)."""


@dataclass(frozen=True)
class LoadResult(HasFindings):
    repository: Repository
    findings: list[Finding]
    files: int


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Loading builds ~100 objects per line and keeps the node trees for locating findings; the
    cyclic collector would rescan them all again and again (half the time for 1,000 files). Nothing
    built here is cyclic garbage, so collection waits until the load is done."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_repository(root: Path, base: Released | None = None, now: datetime | None = None,
                    edits: Mapping[str, str] | None = None) -> LoadResult:
    """Every file and rule; with `base` (what the branch a pull request merges into has released),
    also the checks that need it: released files stay unchanged; with `now` (validate's clock), also
    the checks that need a clock: no stage starts in the future. `edits` (path -> text, for files
    that exist) checks the repository as it would be after writing them, without writing them."""
    with _collector_paused():
        return _load(Path(root), base, now, edits or {})


def _load(root: Path, base: Released | None, now: datetime | None, edits: Mapping[str, str]) -> LoadResult:
    if not root.is_dir():
        raise NotARepository(f"{root} is not a directory")
    if not (root / "releases").is_dir() and not (root / "environments").is_dir():
        raise NotARepository(f"{root} has neither releases/ nor environments/: not a Sluice repository")
    loader = _Loader(root, edits)
    releases = tuple(
        SourcedRelease(rel, obj) for rel, obj in
        ((rel, loader.load(rel, Release)) for rel in loader.files("releases", recursive=True))
        if obj is not None
    )
    environments: dict[str, Environment] = {}
    environment_files: dict[str, str] = {}
    for rel in loader.files("environments", recursive=False):
        env = loader.load(rel, Environment)
        if env is not None:
            name = Path(rel).stem
            environments[name] = env
            environment_files[name] = rel
    artifacts = loader.evaluation_artifacts(releases)
    repo = Repository(releases, environments, environment_files, frozenset(loader.broken), artifacts)
    checks = check(repo) + (list(immutability_findings(base, repo)) if base is not None else [])
    checks += list(future_stage_starts(repo, now)) if now is not None else []
    findings = loader.findings + loader.located(checks)
    return LoadResult(repo, sorted(findings, key=sort_key), loader.count)


class _Loader:
    def __init__(self, root: Path, edits: Mapping[str, str] | None = None) -> None:
        self.root = root
        self.edits = {rel: text.encode("utf-8") for rel, text in (edits or {}).items()}
        self.real_root = Path(os.path.realpath(root))
        self.link_targets: dict[str, Path] = {}  # links to files inside the repository, resolved once
        self.field_sets: dict[tuple[type, frozenset[str]], set[str]] = {}
        self.findings: list[Finding] = []
        self.broken: set[str] = set()
        self.count = 0

    def files(self, folder: str, recursive: bool) -> list[str]:
        """The `.yaml` files under `folder` (at any depth with `recursive`) that are safe to read, in
        path order. Entries that would be read but cannot be (links leaving the repository, FIFOs,
        directories named `*.yaml` ...) become findings here and are never opened."""
        out: list[str] = []
        if self._readable_entry(folder, recursive=True) == "directory":
            self._walk(folder, recursive, out)
        return sorted(out, key=lambda rel: rel.split("/"))

    def _walk(self, folder: str, recursive: bool, out: list[str]) -> None:
        with os.scandir(self.root / folder) as entries:
            names = sorted(entry.name for entry in entries)
        for name in names:
            rel = f"{folder}/{name}"
            is_yaml = name.endswith((".yaml", ".yml"))
            if not (is_yaml or recursive):
                continue  # environments/ is flat: its other entries are not Sluice's
            kind = self._readable_entry(rel, recursive, named_as_file=is_yaml)
            if kind == "directory" and recursive:
                self._walk(rel, recursive, out)
            elif kind == "file" and name.endswith(".yml"):
                self.findings.append(Finding(Severity.ERROR, "file-name", rel, (), "YAML files here end in .yaml",
                                             f"rename it to {rel[:-4]}.yaml", 1, 1))
            elif kind == "file" and name.endswith(".yaml"):
                out.append(rel)

    def _readable_entry(self, rel: str, recursive: bool, named_as_file: bool = False) -> str | None:
        """"file" or "directory" when the loader may read the entry, else None (with a finding when
        the entry is one the loader would have read). Links are followed only to files inside the
        repository; a link to a directory is refused, so the walk cannot loop or leave."""
        path = self.root / rel
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(mode):
            return self._followed_link(rel, named_as_file, recursive)
        if stat.S_ISDIR(mode):
            if named_as_file:
                self._refuse(rel, "file-type", "a directory, not a file: it is not read",
                             "rename the directory (names ending in .yaml are release and environment files), "
                             "or remove it")
                return None
            return "directory"
        if stat.S_ISREG(mode):
            return "file"
        if named_as_file:
            self._refuse(rel, "file-type", f"{entry_kind(mode)}, not a regular file: it is not read",
                         "replace it with a regular YAML file, or remove it")
        return None

    def _followed_link(self, rel: str, named_as_file: bool, walks_folders: bool) -> str | None:
        target = Path(os.path.realpath(self.root / rel))
        if not target.is_relative_to(self.real_root):
            if named_as_file or walks_folders and target.is_dir():
                what = "files" if target.is_dir() else "file"
                self._refuse(rel, "file-link", f"a symbolic link to {target}, outside the repository: it is not read",
                             f"copy the {what} into the repository in place of the link, or remove the link")
            return None
        shown = target.relative_to(self.real_root).as_posix()
        try:
            mode = target.stat().st_mode
        except OSError:
            if named_as_file:
                self._refuse(rel, "file-link", f"a symbolic link to {shown}, which does not exist",
                             "point the link at a file in the repository, or remove the link")
            return None
        if stat.S_ISDIR(mode):
            if named_as_file or walks_folders:
                self._refuse(rel, "file-link",
                             f"a symbolic link to the directory {shown}: links to directories are not followed",
                             f"move the files into {rel}, or remove the link")
            return None
        if not stat.S_ISREG(mode):
            if named_as_file:
                self._refuse(rel, "file-type", f"{entry_kind(mode)}, not a regular file: it is not read",
                             "replace it with a regular YAML file, or remove it")
            return None
        self.link_targets[rel] = target
        return "file"

    def _refuse(self, rel: str, rule: str, message: str, fix: str) -> None:
        """A file that exists but is not read: reported, and broken, so rules that follow a
        pointer to it do not add "no such release"."""
        self.broken.add(rel)
        self.findings.append(Finding(Severity.ERROR, rule, rel, (), message, fix))

    def load(self, rel: str, model: type[BaseModel]) -> BaseModel | None:
        self.count += 1
        size = len(self.edits[rel]) if rel in self.edits else self._path(rel).stat().st_size
        if size > MAX_FILE_BYTES:
            self.broken.add(rel)
            self.findings.append(Finding(
                Severity.ERROR, "yaml", rel, (), f"file is {size:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit",
                "release and environment files are small: split the file or remove embedded data", 1, 1))
            return None
        try:
            raw = self._read(rel)
        except NotARegularFile as swapped:  # replaced since it was listed: still never read
            self._refuse(rel, "file-type", f"{swapped.kind}, not a regular file: it is not read",
                         "replace it with a regular YAML file, or remove it")
            return None
        except OSError as err:
            self._refuse(rel, "yaml", f"cannot be read: {err.strerror}", "make the file readable, or remove it")
            return None
        parsed = parse_yaml(raw)
        for err in parsed.errors:
            self.findings.append(_located(parsed.root, Finding(
                Severity.ERROR, "yaml", rel, err.path, err.message, err.fix, err.line, err.column)))
        if parsed.errors:
            self.broken.add(rel)  # its content may be wrong: cross-file rules should not trust it
        if not parsed.usable:
            return None
        if not isinstance(parsed.data, dict):
            self.broken.add(rel)
            self.findings.append(_located(parsed.root, Finding(
                Severity.ERROR, "schema", rel, (), f"the document is a {type(parsed.data).__name__}, not a mapping",
                f"write the {model.__name__.lower()} as `key: value` lines")))
            return None
        try:
            obj = model.model_validate(parsed.data)
        except ValidationError as err:
            self.broken.add(rel)
            self.findings.extend(_located(parsed.root, f) for f in schema_findings(rel, model, parsed.data, err))
            return None
        _share_field_sets(obj, self.field_sets)
        return obj

    def evaluation_artifacts(self, releases: tuple[SourcedRelease, ...]) -> dict[str, bytes]:
        """The bytes of each release's `evaluation.artifact.uri`, read under the same rules as the
        YAML files (regular files, links only inside the repository, the size cap); what cannot be
        read is a finding on that file and is broken, and a missing file is left to the
        `evaluation-artifact` rule."""
        out: dict[str, bytes] = {}
        for rel in sorted({e.release.evaluation.artifact.uri for e in releases if e.release.evaluation.artifact}):
            if rel in self.broken or not self._folders_inside(rel) \
                    or self._readable_entry(rel, recursive=False, named_as_file=True) != "file":
                continue
            try:
                data = self._read(rel)
            except NotARegularFile as swapped:
                self._refuse(rel, "file-type", f"{swapped.kind}, not a regular file: it is not read",
                             "replace it with the regular file `reconciler eval` wrote, or remove it")
                continue
            except OSError as err:
                self._refuse(rel, "file-type", f"cannot be read: {err.strerror}", "make the file readable")
                continue
            if len(data) > MAX_FILE_BYTES:
                self._refuse(rel, "file-type", f"file is over the {MAX_FILE_BYTES:,}-byte limit",
                             "an evaluation artifact is a few KB: write it again with `reconciler eval`")
                continue
            out[rel] = data
        return out

    def _folders_inside(self, rel: str) -> bool:
        """The folders on the way to `rel` stay in the repository (the walk never follows a folder
        link; a path named in a file must not either)."""
        folder = Path(os.path.realpath((self.root / rel).parent))
        if folder.is_relative_to(self.real_root):
            return True
        self._refuse(rel, "file-link", f"the path goes through a symbolic link to {folder}, outside the repository: "
                     "it is not read", "keep the folders on the way real directories inside the repository")
        return False

    def _path(self, rel: str) -> Path:
        """Where to read `rel`: a link inside the repository is read at its target, resolved once."""
        return self.link_targets.get(rel, self.root / rel)

    def _read(self, rel: str) -> bytes:
        if rel in self.edits:
            return self.edits[rel][:MAX_FILE_BYTES + 1]
        with open(self._path(rel), "rb", opener=open_regular_file) as handle:
            return handle.read(MAX_FILE_BYTES + 1)  # at most one byte past the cap: bounded memory

    def located(self, findings: list[Finding]) -> list[Finding]:
        """The rules' findings with line and column. No node tree is kept per file (they were most of
        the memory at 5,000 files): a file with findings is read and parsed again, once for all of
        its findings, and its tree dropped before the next."""
        out = []
        for file, group in groupby(sorted(findings, key=lambda f: f.file), key=lambda f: f.file):
            group = list(group)
            root = self._node_tree(file) if any(f.line is None for f in group) else None
            out.extend(_located(root, f) for f in group)
        return out

    def _node_tree(self, rel: str) -> Node | None:
        try:
            return parse_yaml(self._read(rel)).root
        except OSError:  # gone since it was loaded: the finding keeps its file and path, without a line
            return None


def _share_field_sets(value: object, shared: dict[tuple[type, frozenset[str]], set[str]]) -> None:
    """Give every model instance of one class with the same fields set one shared `model_fields_set`.

    pydantic keeps a set per instance of the fields the input gave: 30-odd sets, about 40% of a
    release's memory, all alike across files. pydantic never changes the set of an instance in
    place (the models are frozen, and `model_copy` copies the set before adding to it), so instances
    may share one."""
    if isinstance(value, BaseModel):
        fields_set = value.__pydantic_fields_set__
        same = shared.setdefault((type(value), frozenset(fields_set)), fields_set)
        if same is not fields_set:
            object.__setattr__(value, "__pydantic_fields_set__", same)
        for field_value in value.__dict__.values():
            _share_field_sets(field_value, shared)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _share_field_sets(item, shared)
    elif isinstance(value, dict):
        for item in value.values():
            _share_field_sets(item, shared)


def _located(root: Node | None, finding: Finding) -> Finding:
    if finding.line is not None:
        return finding
    line, column, _ = locate(root, finding.path)
    return finding.located(line, column)
