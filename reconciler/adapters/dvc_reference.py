"""A DVC-tracked file as a bundle artifact: read its `.dvc` file, point at the exact object.

Why both checksums (docs/dvc.md): DVC 3 records the md5 of a file's bytes; Sluice pins every
artifact by sha256 (the bundle digest, the semver rule and the init container compare it, and md5
collisions can be crafted, so md5 alone does not pin bytes). A reference therefore records both:
md5 and size from the `.dvc` file, and sha256 computed here from the same bytes in the local DVC
cache, whose md5 is checked against the record in the same pass. The init container verifies every
checksum recorded, so the release cannot drift from the object its URI names.

The URI is the remote's URL plus DVC 3's content-addressed object path,
`<remote url>/files/md5/<first 2 hex>/<other 30 hex>`, which is where `dvc push` puts the object:
the URI itself names exact content, and no DVC is needed in the pod.

Everything DVC defines (the repository root, its configuration including `.dvc/config.local`, the
default remote, remote URLs, the cache's location and object layout) comes from DVC's own library,
imported inside functions so the CLI starts fast without it. The `.dvc` file itself is read with
the project's bounded YAML reader, so errors carry a line and a YAML path.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..core.findings import YamlPath, format_path
from ..core.release_import import FETCHABLE_SCHEMES
from .file_digests import file_digests
from .yaml_source import ParsedYaml, locate, parse_yaml

_MD5 = re.compile(r"[0-9a-f]{32}")
_OUT: YamlPath = ("outs", 0)


@dataclass(frozen=True)
class DvcReference:
    """One DVC-tracked file, pinned: where its object lives on the remote and its checksums."""

    dvc_file: str  # as given
    path: str  # the tracked output, relative to the DVC repo root
    remote: str  # the remote's name
    uri: str  # remote URL + files/md5/xx/yyyy...
    md5: str
    sha256: str
    size_bytes: int

    def artifact(self) -> dict[str, Any]:
        """The bundle slot's artifact (reconciler.core.release.Artifact's fields)."""
        return {"uri": self.uri, "sha256": self.sha256, "md5": self.md5, "size_bytes": self.size_bytes}


class DvcReferenceError(ValueError):
    """Why a `.dvc` file cannot become a bundle artifact; the message names the file and the fix."""

    def __init__(self, file: str, problem: str, fix: str, line: int | None = None,
                 path: YamlPath = ()) -> None:
        where = f"{file}:{line}" if line else file
        at = f"{format_path(path)}: " if path else ""
        super().__init__(f"{where}: {at}{problem}; fix: {fix}")
        self.file, self.line, self.path, self.problem, self.fix = file, line, path, problem, fix


@dataclass(frozen=True)
class _Output:
    """The one output a `.dvc` file records, as written there."""

    path: str  # relative to the .dvc file's directory, POSIX separators
    md5: str
    size: int | None
    remote: str | None  # a per-output `remote:`, which `dvc push` uses for this output
    parsed: ParsedYaml = field(repr=False, compare=False)  # for the lines of later errors

    def error(self, shown: str, path: YamlPath, problem: str, fix: str) -> DvcReferenceError:
        """An error about the value at `path` of this .dvc file, with its line."""
        return DvcReferenceError(shown, problem, fix, locate(self.parsed.root, path)[0], path)


@dataclass(frozen=True)
class _Location:
    """What DVC's configuration says about the output: its remote and both object locations."""

    root: Path
    path: str
    remote: str
    uri: str
    cached: Path


def read_dvc_reference(dvc_file: Path, remote: str | None = None) -> DvcReference:
    """Pin the file a `.dvc` file tracks: md5 and size from the record, sha256 from the cached bytes.

    `remote` names the DVC remote the URI points into; without it, the output's own `remote:` and
    then the repository's default remote (`core.remote`) are used, as `dvc push` does.
    Hashing reads the whole file from the local cache (a 140 GB weights archive takes minutes).
    """
    shown = str(dvc_file)
    output = _read_output(Path(dvc_file), shown)
    where = _locate_objects(Path(dvc_file), output, remote, shown)
    md5, sha256, size = _hash_cached(where, output, shown)
    return DvcReference(dvc_file=shown, path=where.path, remote=where.remote, uri=where.uri,
                        md5=md5, sha256=sha256, size_bytes=size)


# --------------------------------------------------------------------------- the .dvc file


def _read_output(dvc_file: Path, shown: str) -> _Output:
    """Parse the `.dvc` file and check its single output can be pinned as one file's bytes."""
    from dvc.dvcfile import DVC_FILE_SUFFIX, LOCK_FILE, PROJECT_FILE

    if dvc_file.name in (PROJECT_FILE, LOCK_FILE):
        raise DvcReferenceError(shown, f"is a pipeline file ({dvc_file.name}), not a .dvc file",
                                "track the artifact with `dvc add <file>` and give the <file>.dvc it writes")
    if not dvc_file.name.endswith(DVC_FILE_SUFFIX) or dvc_file.name == DVC_FILE_SUFFIX:
        tracked = dvc_file.with_name(dvc_file.name + DVC_FILE_SUFFIX)
        fix = (f"give its .dvc file: {tracked}" if tracked.is_file()
               else f"track it with `dvc add {dvc_file}` and give the {dvc_file.name}{DVC_FILE_SUFFIX} it writes")
        raise DvcReferenceError(shown, f"is not a .dvc file (the name must end in {DVC_FILE_SUFFIX})", fix)
    try:
        raw = dvc_file.read_bytes()
    except FileNotFoundError:
        raise DvcReferenceError(shown, "no such file", "give the path of the .dvc file `dvc add` "
                                "wrote next to the artifact, e.g. models/model.tar.dvc") from None
    except OSError as err:
        raise DvcReferenceError(shown, f"cannot be read: {err.strerror or err}",
                                "check the path and its permissions") from None
    parsed = parse_yaml(raw)
    if parsed.errors:
        first = parsed.errors[0]
        raise DvcReferenceError(shown, first.message, first.fix, first.line, first.path)
    return _output(parsed, shown, dvc_file.parent)


def _output(parsed: ParsedYaml, shown: str, folder: Path) -> _Output:
    def fail(path: YamlPath, problem: str, fix: str) -> DvcReferenceError:
        return DvcReferenceError(shown, problem, fix, locate(parsed.root, path)[0], path)

    outs = parsed.data.get("outs") if isinstance(parsed.data, dict) else None
    if not isinstance(outs, list) or len(outs) != 1:
        count = f"{len(outs)} outputs" if isinstance(outs, list) else "no `outs` list"
        raise fail(("outs",), f"has {count}; a bundle artifact is exactly one file",
                   "give a .dvc file with one output: `dvc add <file>` writes one per file")
    out = outs[0]
    if not isinstance(out, dict):
        raise fail(_OUT, "is not a mapping", "restore the file `dvc add` wrote (md5, size, hash, path)")

    def value(name: str, kinds: type | tuple[type, ...]) -> Any:
        found = out.get(name)
        if found is not None and not isinstance(found, kinds):
            raise fail(_OUT + (name,), f"has an unexpected value {found!r}",
                       "restore the value `dvc add` wrote (run `dvc commit` to rewrite the file)")
        return found

    path, md5 = value("path", str), value("md5", str)
    if not path:
        raise fail(_OUT + ("path",), "is missing", "restore the tracked file's path `dvc add` wrote")
    if md5 is None:
        raise fail(_OUT + ("md5",), "is missing: the output was never committed to the DVC cache",
                   f"run `dvc commit {shown}`")
    if md5.endswith(".dir"):
        raise fail(_OUT + ("md5",), f"{path!r} is a directory ({md5}); a bundle artifact is one file",
                   f"track one archive of it instead: in {folder}, `tar -cf {path}.tar {path}` then "
                   f"`dvc add {path}.tar`")
    if value("hash", str) != "md5":
        raise fail(_OUT, "records no `hash: md5`, so it is a DVC 2 entry whose md5 normalises text "
                   "line endings: not the md5 of the bytes the pod downloads",
                   "migrate it to DVC 3 with `dvc cache migrate --dvc-files`, then import again")
    if not _MD5.fullmatch(md5):
        raise fail(_OUT + ("md5",), f"{md5!r} is not an md5 (32 lowercase hex digits)",
                   "restore the value `dvc add` wrote (run `dvc commit` to rewrite the file)")
    for flag in ("cache", "push"):
        if value(flag, bool) is False:
            raise fail(_OUT + (flag,), f"is false, so `dvc push` never uploads {path!r} to a remote "
                       "and the pod could not fetch it", f"remove `{flag}: false`, then `dvc commit` and `dvc push`")
    size = value("size", int)
    if size is not None and (isinstance(size, bool) or size < 0):
        raise fail(_OUT + ("size",), f"{size!r} is not a size in bytes", "run `dvc commit` to rewrite the file")
    return _Output(path=path, md5=md5, size=size, remote=value("remote", str), parsed=parsed)


# --------------------------------------------------------------------------- DVC's configuration


def _locate_objects(dvc_file: Path, output: _Output, remote: str | None, shown: str) -> _Location:
    """Ask DVC where the repository, the remote and the cached object are."""
    from dvc.config import ConfigError
    from dvc.repo import NotDvcRepoError, Repo

    folder = os.path.abspath(dvc_file.parent)
    try:
        root = Path(Repo.find_root(folder))
    except NotDvcRepoError:
        raise DvcReferenceError(shown, "is not inside a DVC repository (no .dvc/ directory above it)",
                                "give a .dvc file from a DVC repository's work tree (`dvc init` makes one)") from None
    tracked = PurePosixPath(output.path)
    relative = Path(os.path.relpath(os.path.join(folder, *tracked.parts), root)).as_posix()
    if tracked.is_absolute() or relative.startswith("../"):
        raise output.error(shown, _OUT + ("path",), f"{output.path!r} is outside the DVC repository {root}",
                           "track a file inside the repository with `dvc add`")
    try:
        with Repo(str(root)) as repo:
            name, url = _remote_url(repo, remote, output.remote, shown, root)
            cache = repo.cache.local
            cached = Path(cache.oid_to_path(output.md5))
            object_path = Path(os.path.relpath(cached, cache.path)).as_posix()
    except ConfigError as err:
        raise DvcReferenceError(shown, f"DVC cannot read the configuration of {root}: {err}",
                                "fix .dvc/config (or .dvc/config.local): `dvc config --list` shows it") from None
    uri = "/".join((url.rstrip("/"), _remote_prefix(), object_path))
    return _Location(root=root, path=relative, remote=name, uri=uri, cached=cached)


def _remote_prefix() -> str:
    """"files/md5": where DVC 3 keeps md5-addressed objects under a remote's URL (and the cache)."""
    from dvc.cachemgr import CacheManager
    from dvc_data.hashfile.hash import DEFAULT_ALGORITHM

    return f"{CacheManager.FILES_DIR}/{DEFAULT_ALGORITHM}"


def _remote_url(repo: Any, asked: str | None, own: str | None, shown: str, root: Path) -> tuple[str, str]:
    """(remote name, URL) of the remote asked for, else the output's own, else the default (the
    order `dvc push` uses), refusing what the pod cannot fetch."""
    from dvc.fs import get_fs_config

    remotes = repo.config["remote"]
    known = ", ".join(sorted(remotes)) or "none"
    name = asked or own or repo.config["core"].get("remote")
    if not name:
        raise DvcReferenceError(shown, f"names no remote and {root} has no default remote (known: {known})",
                                "name one with --dvc-remote NAME, or set a default: `dvc remote default NAME`")
    if name.lower() not in {r.lower() for r in remotes}:
        how = ("was asked for" if asked else "is the output's `remote:`" if own
               else "is the default remote (core.remote)")
        raise DvcReferenceError(shown, f"remote {name!r} {how} but is not configured in {root} (known: {known})",
                                "name a known remote, or add it: `dvc remote add NAME URL`")
    settings = get_fs_config(repo.config, name=name)
    url = str(settings["url"])
    scheme = urllib.parse.urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme not in FETCHABLE_SCHEMES:
        fetchable = ", ".join(s + "://" for s in FETCHABLE_SCHEMES)
        problem = (f"remote {name!r} is a local path ({url}), which pods cannot read" if not scheme
                   else f"remote {name!r} is {url}, and pods cannot fetch {scheme}:// URLs")
        raise DvcReferenceError(shown, f"{problem}; the init container fetches only {fetchable}",
                                "push to a remote the pods can read (`dvc push -r NAME`) and name it "
                                "with --dvc-remote NAME")
    if settings.get("worktree"):
        raise DvcReferenceError(shown, f"remote {name!r} ({url}) is a worktree remote: it stores files by "
                                "their workspace path, not under files/md5/, so no URL names the content",
                                "push to a remote without `worktree` and name it with --dvc-remote NAME")
    return name, url


# --------------------------------------------------------------------------- the cached bytes


def _hash_cached(where: _Location, output: _Output, shown: str) -> tuple[str, str, int]:
    """md5, sha256 and size of the cached object, in one pass; the md5 must be the recorded one."""
    try:
        digests = file_digests(Path(where.cached), md5=True)
    except FileNotFoundError:
        raise output.error(shown, _OUT + ("md5",), f"the bytes of {where.path} (md5 {output.md5}) are not "
                           f"in the local DVC cache ({where.cached}); the import hashes them to record "
                           f"their sha256", f"fetch them first: `dvc pull {where.path}` in {where.root}") from None
    if digests.md5 != output.md5:
        raise output.error(shown, _OUT + ("md5",), f"the cached bytes of {where.path} ({where.cached}) have "
                           f"md5 {digests.md5}, not the recorded {output.md5}: the cache is damaged",
                           f"run `dvc status` in {where.root}; then delete that cache file and "
                           f"`dvc pull {where.path}`")
    if output.size is not None and digests.size != output.size:
        raise output.error(shown, _OUT + ("size",), f"records size {output.size}, but the bytes with md5 "
                           f"{output.md5} are {digests.size} bytes", f"run `dvc commit {shown}` to rewrite the record")
    return output.md5, digests.sha256, digests.size

