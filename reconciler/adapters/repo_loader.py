"""Read a whole Sluice repository from disk and report every problem in one run.

Layout: `releases/<model>/<version>.yaml` and `environments/<name>.yaml`. Each file is read with a
size cap, parsed by `yaml_source`, validated against its model, and then the core's semantic
rules run over everything that parsed. Findings come back with file, line, column and YAML path.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterator

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


def load_repository(root: Path, base: Released | None = None, now: datetime | None = None) -> LoadResult:
    """Every file and rule; with `base` (what the branch a pull request merges into has released),
    also the checks that need it: released files stay unchanged; with `now` (validate's clock), also
    the checks that need a clock: no stage starts in the future."""
    with _collector_paused():
        return _load(Path(root), base, now)


def _load(root: Path, base: Released | None, now: datetime | None = None) -> LoadResult:
    if not root.is_dir():
        raise NotARepository(f"{root} is not a directory")
    if not (root / "releases").is_dir() and not (root / "environments").is_dir():
        raise NotARepository(f"{root} has neither releases/ nor environments/: not a Sluice repository")
    loader = _Loader(root)
    releases = tuple(
        SourcedRelease(rel, obj) for rel, obj in
        ((rel, loader.load(rel, Release)) for rel in loader.files("releases", "**/*"))
        if obj is not None
    )
    environments: dict[str, Environment] = {}
    environment_files: dict[str, str] = {}
    for rel in loader.files("environments", "*"):
        env = loader.load(rel, Environment)
        if env is not None:
            name = Path(rel).stem
            environments[name] = env
            environment_files[name] = rel
    repo = Repository(releases, environments, environment_files, frozenset(loader.broken))
    checks = check(repo) + (list(immutability_findings(base, repo)) if base is not None else [])
    checks += list(future_stage_starts(repo, now)) if now is not None else []
    findings = loader.findings + [loader.locate(f) for f in checks]
    return LoadResult(repo, sorted(findings, key=sort_key), loader.count)


class _Loader:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.findings: list[Finding] = []
        self.roots: dict[str, Node | None] = {}
        self.broken: set[str] = set()
        self.count = 0

    def files(self, folder: str, pattern: str) -> list[str]:
        base = self.root / folder
        if not base.is_dir():
            return []
        out = []
        for path in sorted(base.glob(pattern)):
            if not path.is_file():
                continue
            rel = path.relative_to(self.root).as_posix()
            if path.suffix == ".yml":
                self.findings.append(Finding(Severity.ERROR, "file-name", rel, (), "YAML files here end in .yaml",
                                             f"rename it to {rel[:-4]}.yaml", 1, 1))
            elif path.suffix == ".yaml":
                out.append(rel)
        return out

    def load(self, rel: str, model: type[BaseModel]) -> BaseModel | None:
        self.count += 1
        size = (self.root / rel).stat().st_size
        if size > MAX_FILE_BYTES:
            self.broken.add(rel)
            self.findings.append(Finding(
                Severity.ERROR, "yaml", rel, (), f"file is {size:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit",
                "release and environment files are small: split the file or remove embedded data", 1, 1))
            return None
        parsed = parse_yaml(self._read(rel))
        self.roots[rel] = parsed.root
        for err in parsed.errors:
            self.findings.append(self.locate(Finding(Severity.ERROR, "yaml", rel, err.path, err.message, err.fix,
                                                     err.line, err.column)))
        if parsed.errors:
            self.broken.add(rel)  # its content may be wrong: cross-file rules should not trust it
        if not parsed.usable:
            return None
        if not isinstance(parsed.data, dict):
            self.broken.add(rel)
            self.findings.append(self.locate(Finding(
                Severity.ERROR, "schema", rel, (), f"the document is a {type(parsed.data).__name__}, not a mapping",
                f"write the {model.__name__.lower()} as `key: value` lines")))
            return None
        try:
            obj = model.model_validate(parsed.data)
        except ValidationError as err:
            self.broken.add(rel)
            self.findings.extend(self.locate(f) for f in schema_findings(rel, model, parsed.data, err))
            return None
        return obj

    def _read(self, rel: str) -> bytes:
        with open(self.root / rel, "rb") as handle:  # read at most one byte past the cap: bounded memory
            return handle.read(MAX_FILE_BYTES + 1)

    def locate(self, finding: Finding) -> Finding:
        if finding.line is not None:
            return finding
        line, column, _ = locate(self.roots.get(finding.file), finding.path)
        return finding.located(line, column)
