#!/usr/bin/env python3
"""Fetch and verify a release's bundle: the init container of every model-serving pod.

Why it exists: a release pins every artifact (weights, tokenizer, config, prompts...) by sha256,
and the pod must refuse to serve bytes that are not exactly that bundle. This script downloads
each artifact, checks size and sha256 while it streams, moves it into place atomically only when
both match, and exits non-zero otherwise, so the pod never starts on the wrong model.

An artifact imported from DVC also records DVC's `md5` of the same bytes (docs/dvc.md). It is
computed in the same pass and must match too: every checksum a release records is verified, so
a reference cannot silently disagree with the object it names. sha256 stays required: md5
collisions can be crafted, so md5 alone would not pin the bytes.

It also keeps a node-local cache: after a verified download it writes a marker
(`DEST/.verified/<name>.json`: sha256, md5 when recorded, size, mtime_ns), so a restarted pod
whose DEST survives (a hostPath or local volume) does not download 100+ GB again, and does not
even re-hash them while the file's size and mtime are unchanged. A marker that does not vouch for
every recorded checksum (one written before the release recorded an md5) means a re-hash.

It runs inside the vLLM serving image as `python3 /opt/sluice/fetch_bundle.py`, shipped in a
ConfigMap, so it uses the Python standard library only (3.9+). The optional s3:// and gs://
backends use the `aws` / `gcloud` CLIs or boto3 / google-cloud-storage if the image has them.

Usage:
    python3 fetch_bundle.py --manifest PATH --dest DIR [--retries N] [--backoff SECONDS]

Exit codes: 0 ready, 1 bad manifest or usage, 2 download failed, 3 the bytes are not the
release's bundle (sha256, md5 or size mismatch, or an archive with unsafe members).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Callable, Dict, Iterator, List, Optional, Tuple

EXIT_OK = 0
EXIT_USAGE = 1  # bad manifest or command line: fix the input, retrying cannot help
EXIT_DOWNLOAD = 2  # the bytes could not be fetched (after retries, or a permanent error)
EXIT_MISMATCH = 3  # the bytes are not the release's bundle: final, never retried

CHUNK_BYTES = 8 * 1024 * 1024
HTTP_TIMEOUT_SECONDS = 60.0
MAX_BACKOFF_SECONDS = 60.0
DEFAULT_HF_ENDPOINT = "https://huggingface.co"
MARKER_DIR = ".verified"
LOCK_FILE = ".lock"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")  # longest first: ".tar.gz" before ".tar"
USER_AGENT = "sluice-fetch-bundle/1"

_SHA256 = re.compile(r"[0-9a-f]{64}")
_MD5 = re.compile(r"[0-9a-f]{32}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_HF_REVISION = re.compile(r"[0-9a-f]{40}")
_ARTIFACT_KEYS = {"name", "uri", "sha256", "md5", "size_bytes", "path"}

# algorithm -> hex digest of the bytes, in check order: sha256, then md5 when the release records one
Digests = Dict[str, str]


# --------------------------------------------------------------------------- errors and logging


class FetchError(Exception):
    """A failure that ends the run with `exit_code`; the message is written for the on-call."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class TransientError(Exception):
    """A download failure worth retrying: network trouble, HTTP 5xx/429, a CLI that failed."""


class PermanentError(Exception):
    """A download failure retrying cannot fix (HTTP 404, 403; no s3/gs backend in the image)."""


def log(message: str) -> None:
    """One line per event on stderr, flushed, so `kubectl logs` shows progress as it happens."""
    print(f"fetch-bundle: {message}", file=sys.stderr, flush=True)


def display_uri(uri: str) -> str:
    """The URI without query or fragment: presigned URLs carry credentials that logs must not."""
    parts = urllib.parse.urlsplit(uri)
    if parts.query or parts.fragment:
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")) + "?..."
    return uri


def human_size(n: int) -> str:
    """Bytes as people read them in logs: 1.2 GiB."""
    value, unit = float(n), "B"
    for bigger in ("KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"


# --------------------------------------------------------------------------- manifest


@dataclass(frozen=True)
class Artifact:
    """One file of the bundle, as the manifest describes it."""

    name: str
    uri: str
    sha256: str
    size_bytes: Optional[int]
    path: str  # relative to DEST, POSIX separators
    md5: Optional[str] = None  # DVC's checksum of the same bytes; checked only when recorded

    @property
    def label(self) -> str:
        """How messages name the artifact: its name and where it comes from."""
        return f"{self.name} ({display_uri(self.uri)})"


@dataclass(frozen=True)
class Manifest:
    release: str
    artifacts: List[Artifact]


def load_manifest(path: Path) -> Manifest:
    """Read and validate the manifest up front, so bad input fails before any byte is fetched."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise FetchError(f"cannot read manifest {path}: {err.strerror or err}", EXIT_USAGE) from err
    except ValueError as err:
        raise FetchError(f"manifest {path} is not valid JSON: {err}", EXIT_USAGE) from err
    where = f"manifest {path}"
    if not isinstance(data, dict):
        raise FetchError(f"{where}: expected a JSON object with 'release' and 'artifacts'", EXIT_USAGE)
    release = data.get("release")
    if not isinstance(release, str) or not release:
        raise FetchError(f"{where}: 'release' must be a non-empty string, e.g. "
                         "\"chat-assistant/v1.3.0-4f2a9c1d07e5\"", EXIT_USAGE)
    items = data.get("artifacts")
    if not isinstance(items, list) or not items:
        raise FetchError(f"{where}: 'artifacts' must be a non-empty list", EXIT_USAGE)
    artifacts = [parse_artifact(item, f"{where}: artifacts[{i}]") for i, item in enumerate(items)]
    check_unique(artifacts, where)
    return Manifest(release=release, artifacts=artifacts)


def parse_artifact(item: object, where: str) -> Artifact:
    """Check one artifact entry; every message says which entry and how to fix it."""
    if not isinstance(item, dict):
        raise FetchError(f"{where}: expected an object with {sorted(_ARTIFACT_KEYS)}", EXIT_USAGE)
    unknown = sorted(set(item) - _ARTIFACT_KEYS)
    if unknown:
        raise FetchError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(_ARTIFACT_KEYS)}",
                         EXIT_USAGE)
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise FetchError(f"{where}: 'name' must be letters, digits, '.', '_' or '-' "
                         f"(it names the cache marker file), got {name!r}", EXIT_USAGE)
    where = f"{where} ({name})"
    uri = item.get("uri")
    if not isinstance(uri, str) or not uri:
        raise FetchError(f"{where}: 'uri' must be a non-empty string", EXIT_USAGE)
    sha = item.get("sha256")
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha.lower()):
        raise FetchError(f"{where}: 'sha256' must be 64 hex digits, got {sha!r}", EXIT_USAGE)
    md5 = item.get("md5")
    if md5 is not None and (not isinstance(md5, str) or not _MD5.fullmatch(md5.lower())):
        raise FetchError(f"{where}: 'md5' must be 32 hex digits or absent, got {md5!r}", EXIT_USAGE)
    size = item.get("size_bytes")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise FetchError(f"{where}: 'size_bytes' must be a non-negative integer or null, "
                         f"got {size!r}", EXIT_USAGE)
    problem = uri_problem(uri)
    if problem:
        raise FetchError(f"{where}: {problem}", EXIT_USAGE)
    rel = item.get("path")
    problem = relative_path_problem(rel)
    if problem:
        raise FetchError(f"{where}: 'path' {rel!r} {problem}", EXIT_USAGE)
    return Artifact(name=name, uri=uri, sha256=sha.lower(), size_bytes=size,
                    path=str(PurePosixPath(str(rel))), md5=md5.lower() if md5 else None)


def relative_path_problem(rel: object) -> Optional[str]:
    """Why `rel` may not be used as a path under DEST, or None: the manifest must not escape it."""
    if not isinstance(rel, str) or not rel.strip():
        return "must be a non-empty relative path, e.g. \"model/weights.tar\""
    p = PurePosixPath(rel)
    if p.is_absolute():
        return "is absolute; write a path relative to --dest"
    if ".." in p.parts:
        return "contains '..' and would leave --dest; write a path inside it"
    if not p.parts:
        return "names --dest itself; write the file's path inside it"
    if p.parts[0] in (MARKER_DIR, LOCK_FILE):
        return f"is reserved for the fetcher's own files ({MARKER_DIR}/, {LOCK_FILE})"
    if is_archive(str(p)) and not strip_archive_suffix(p.name):
        return "is an archive suffix with no name to extract into"
    return None


def check_unique(artifacts: List[Artifact], where: str) -> None:
    """Two artifacts with one name would share a marker; with one path they'd overwrite."""
    for attr in ("name", "path"):
        seen: Dict[str, str] = {}
        for a in artifacts:
            key = getattr(a, attr)
            if key in seen:
                raise FetchError(f"{where}: artifacts {seen[key]!r} and {a.name!r} have the same "
                                 f"{attr} {key!r}; each artifact needs its own", EXIT_USAGE)
            seen[key] = a.name


# --------------------------------------------------------------------------- URI schemes


def hf_url(uri: str, endpoint: str = DEFAULT_HF_ENDPOINT) -> str:
    """Map hf://<org>/<repo>@<40-hex revision>/<path> to the Hub's resolve URL.

    The revision must be a full commit hash: a branch or tag can move, and the pod must fetch the
    bytes the release was evaluated with. The path is required: a bare repo is many files, and
    the manifest lists files.
    """
    rest = uri[len("hf://"):] if uri.startswith("hf://") else None
    repo, sep, tail = (rest or "").partition("@")
    segments = repo.split("/")
    if rest is None or not sep or len(segments) != 2 or not all(segments):
        raise ValueError(f"{uri!r} is not an hf:// URI: write hf://<org>/<repo>@<40-hex commit>/<file>")
    revision, _, path = tail.partition("/")
    if not _HF_REVISION.fullmatch(revision):
        raise ValueError(f"{uri!r}: revision {revision!r} is not a 40-hex commit hash; pin the "
                         "commit (a branch or tag can move)")
    if not path or ".." in PurePosixPath(path).parts or path.startswith("/"):
        raise ValueError(f"{uri!r} names no file in the repo: write "
                         f"hf://{repo}@{revision}/<path of the file in the repo>")
    quoted_repo = urllib.parse.quote(repo, safe="/")
    return f"{endpoint.rstrip('/')}/{quoted_repo}/resolve/{revision}/{urllib.parse.quote(path, safe='/')}"


def bucket_key(uri: str) -> Tuple[str, str]:
    """Split s3://bucket/key or gs://bucket/key; both parts are required."""
    parts = urllib.parse.urlsplit(uri)
    key = parts.path.lstrip("/")
    if not parts.netloc or not key:
        raise ValueError(f"{uri!r} needs a bucket and a key: {parts.scheme}://<bucket>/<key>")
    return parts.netloc, key


def check_http(uri: str) -> None:
    """An http(s) URI needs a host."""
    if not urllib.parse.urlsplit(uri).netloc:
        raise ValueError(f"{uri!r} has no host")


def fetch_http(artifact: Artifact, partial: Path) -> Optional[Digests]:
    """Download an http(s) URI; returns the digests computed while streaming."""
    return http_download(artifact, artifact.uri, partial, {})


def fetch_hf(artifact: Artifact, partial: Path) -> Optional[Digests]:
    """Download from the Hugging Face Hub (or the mirror in HF_ENDPOINT), with HF_TOKEN if set."""
    url = hf_url(artifact.uri, os.environ.get("HF_ENDPOINT") or DEFAULT_HF_ENDPOINT)
    token = os.environ.get("HF_TOKEN")
    private = {"Authorization": f"Bearer {token}"} if token else {}
    return http_download(artifact, url, partial, private)


def fetch_s3(artifact: Artifact, partial: Path) -> Optional[Digests]:
    """Copy from S3 with the aws CLI if present, else boto3; None: the caller hashes the file."""
    bucket, key = bucket_key(artifact.uri)
    if shutil.which("aws"):
        run_cli(["aws", "s3", "cp", artifact.uri, str(partial), "--only-show-errors"])
        return None
    try:
        import boto3  # type: ignore[import-not-found]  # optional; not every image has it
    except ImportError:
        raise PermanentError("cannot read s3:// URIs: neither the `aws` CLI is on PATH nor is "
                             "boto3 importable; use a serving image with one of them") from None
    try:
        boto3.client("s3").download_file(bucket, key, str(partial))
    except Exception as err:  # botocore's errors are many; all are worth a retry here
        raise TransientError(f"boto3: {err}") from err
    return None


def fetch_gs(artifact: Artifact, partial: Path) -> Optional[Digests]:
    """Copy from GCS with gcloud if present, else google-cloud-storage; None: caller hashes."""
    bucket, key = bucket_key(artifact.uri)
    if shutil.which("gcloud"):
        run_cli(["gcloud", "storage", "cp", artifact.uri, str(partial)])
        return None
    try:
        from google.cloud import storage  # type: ignore[import-not-found]  # optional
    except ImportError:
        raise PermanentError("cannot read gs:// URIs: neither the `gcloud` CLI is on PATH nor is "
                             "google-cloud-storage importable; use a serving image with one of "
                             "them") from None
    try:
        storage.Client().bucket(bucket).blob(key).download_to_filename(str(partial))
    except Exception as err:  # google.api_core errors are many; all are worth a retry here
        raise TransientError(f"google-cloud-storage: {err}") from err
    return None


Fetcher = Callable[[Artifact, Path], Optional[Digests]]

# scheme -> (check the URI without I/O: raises ValueError, download it to a partial file)
SCHEMES: Dict[str, Tuple[Callable[[str], object], Fetcher]] = {
    "https": (check_http, fetch_http),
    "http": (check_http, fetch_http),
    "hf": (hf_url, fetch_hf),
    "s3": (bucket_key, fetch_s3),
    "gs": (bucket_key, fetch_gs),
}


def uri_problem(uri: str) -> Optional[str]:
    """Why the fetcher cannot read `uri`, or None; checked for every artifact before any download."""
    scheme = uri.partition("://")[0].lower() if "://" in uri else ""
    if scheme not in SCHEMES:
        return (f"unsupported URI scheme {scheme or '(none)'!r} in {display_uri(uri)!r}; "
                f"use one of {', '.join(s + '://' for s in SCHEMES)}")
    try:
        SCHEMES[scheme][0](uri)
    except ValueError as err:
        return str(err)
    return None


def run_cli(command: List[str]) -> None:
    """Run a copy CLI; its own errors go to our stderr. A non-zero exit is worth a retry."""
    try:
        result = subprocess.run(command, stdin=subprocess.DEVNULL, check=False)
    except OSError as err:
        raise TransientError(f"cannot run {command[0]}: {err}") from err
    if result.returncode != 0:
        raise TransientError(f"`{' '.join(command[:3])} ...` exited {result.returncode}")


def http_download(artifact: Artifact, url: str, partial: Path, private: Dict[str, str]) -> Digests:
    """Stream `url` into `partial`, hashing as it goes; classify failures for the retry loop.

    `private` headers (credentials) are not forwarded on redirects: the Hub redirects to a CDN,
    which must not see the token (and presigned URLs reject a second Authorization).
    """
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    for key, value in private.items():
        request.add_unredirected_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
            check_content_length(artifact, response.headers.get("Content-Length"))
            with open(partial, "wb") as out:
                return copy_hashing(artifact, response, out)
    except urllib.error.HTTPError as err:
        err.close()
        message = f"HTTP {err.code} {err.reason}"
        if url != artifact.uri:  # hf://: say which URL it resolved to
            message += f" from {display_uri(url)}"
        if err.code == 429 or err.code >= 500:
            raise TransientError(message) from None
        raise PermanentError(message) from None
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError,
            socket.timeout) as err:
        reason = getattr(err, "reason", None) or err
        raise TransientError(f"{type(err).__name__}: {reason}") from err


def check_content_length(artifact: Artifact, header: Optional[str]) -> None:
    """Fail before the first byte when the server announces the wrong size: saves a 100 GB read."""
    if artifact.size_bytes is None or header is None or not header.isdigit():
        return
    if int(header) != artifact.size_bytes:
        raise size_mismatch(artifact, int(header))


def copy_hashing(artifact: Artifact, source: BinaryIO, out: BinaryIO) -> Digests:
    """Copy in chunks, hashing while streaming; stop as soon as the size is exceeded."""
    hashers = new_hashers(artifact)
    written = 0
    while True:
        chunk = source.read(CHUNK_BYTES)
        if not chunk:
            return {name: h.hexdigest() for name, h in hashers.items()}
        written += len(chunk)
        if artifact.size_bytes is not None and written > artifact.size_bytes:
            raise size_mismatch(artifact, written, at_least=True)
        for h in hashers.values():
            h.update(chunk)
        out.write(chunk)


def new_hashers(artifact: Artifact) -> Dict[str, Any]:
    """sha256 always; md5 only when the release records one, so other artifacts pay nothing.

    md5 is not the security anchor here (sha256 is), hence usedforsecurity=False: FIPS-mode
    OpenSSL builds refuse md5 otherwise.
    """
    hashers = {"sha256": hashlib.sha256()}
    if artifact.md5 is not None:
        hashers["md5"] = hashlib.md5(usedforsecurity=False)
    return hashers


# --------------------------------------------------------------------------- verify and cache


REFUSAL = "refusing to start: the bundle does not match the release"


def size_mismatch(artifact: Artifact, got: int, at_least: bool = False) -> FetchError:
    """The exit-3 error for a wrong size; final, because the same URI will serve the same bytes."""
    more = "at least " if at_least else ""
    return FetchError(f"size mismatch for {artifact.label}: expected {artifact.size_bytes} bytes, "
                      f"got {more}{got}; {REFUSAL}", EXIT_MISMATCH)


def first_mismatch(artifact: Artifact, digests: Digests) -> Optional[FetchError]:
    """The exit-3 error for the first recorded checksum the bytes fail (sha256, then md5), naming
    both digests so the release can be checked; None when every recorded checksum matches."""
    for algorithm, got in digests.items():
        expected = getattr(artifact, algorithm)
        if got != expected:
            return FetchError(f"{algorithm} mismatch for {artifact.label}: expected {expected}, "
                              f"got {got}; {REFUSAL}", EXIT_MISMATCH)
    return None


def checked(digests: Digests) -> str:
    """How logs say what was verified: "sha256 ok" or "sha256 ok, md5 ok"."""
    return ", ".join(f"{algorithm} ok" for algorithm in digests)


def hash_file(artifact: Artifact, path: Path) -> Digests:
    """The artifact's recorded checksums of a file on disk, read in chunks (up to hundreds of GB)."""
    hashers = new_hashers(artifact)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK_BYTES), b""):
            for h in hashers.values():
                h.update(chunk)
    return {name: h.hexdigest() for name, h in hashers.items()}


def marker_path(dest: Path, artifact: Artifact) -> Path:
    return dest / MARKER_DIR / f"{artifact.name}.json"


def write_marker(dest: Path, artifact: Artifact, target: Path) -> None:
    """Record that `target`, as it is now (size, mtime_ns), has the release's checksums."""
    st = target.stat()
    marker = marker_path(dest, artifact)
    marker.parent.mkdir(parents=True, exist_ok=True)
    body = {"name": artifact.name, "path": artifact.path, "uri": display_uri(artifact.uri),
            "sha256": artifact.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if artifact.md5 is not None:
        body["md5"] = artifact.md5
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, marker)


def marker_matches(dest: Path, artifact: Artifact, target: Path) -> bool:
    """True when the marker vouches for `target` as it is now: no need to hash it again.

    Any change to the file (size, mtime), a different expected sha256, md5 or path, a recorded
    md5 the marker does not vouch for, or an unreadable marker means no: the caller then re-hashes
    rather than trusting the cache.
    """
    try:
        marker = json.loads(marker_path(dest, artifact).read_text(encoding="utf-8"))
        st = target.stat()
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict):
        return False
    if artifact.size_bytes is not None and st.st_size != artifact.size_bytes:
        return False
    if artifact.md5 is not None and marker.get("md5") != artifact.md5:
        return False
    return (marker.get("sha256") == artifact.sha256 and marker.get("path") == artifact.path
            and marker.get("size") == st.st_size and marker.get("mtime_ns") == st.st_mtime_ns)


def reuse_local(dest: Path, artifact: Artifact, target: Path) -> Optional[str]:
    """Use a file already at `target` if it is the right one: "marker", "rehashed" or None.

    A node-local cache makes a restart cheap; a stale or missing marker costs a re-hash (local
    disk speed), never a download, unless the bytes are wrong, in which case they are deleted.
    """
    if not target.exists():
        return None
    if not target.is_file():
        raise FetchError(f"{artifact.name}: {target} exists and is not a file; remove it",
                         EXIT_USAGE)
    if marker_matches(dest, artifact, target):
        log(f"{artifact.name}: cached, verified")
        return "marker"
    size = target.stat().st_size
    if artifact.size_bytes is None or size == artifact.size_bytes:
        log(f"{artifact.name}: found {target} without a current cache marker; re-hashing "
            f"{human_size(size)}")
        digests = hash_file(artifact, target)
        if first_mismatch(artifact, digests) is None:
            write_marker(dest, artifact, target)
            log(f"{artifact.name}: cached, re-verified ({checked(digests)})")
            return "rehashed"
    log(f"{artifact.name}: local copy at {target} is not the release's; deleting it")
    target.unlink()
    return None


def backoff_delay(attempt: int, base: float) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based): exponential, capped at 60."""
    return min(base * (2 ** (attempt - 1)), MAX_BACKOFF_SECONDS)


def download_verified(artifact: Artifact, target: Path, retries: int, backoff: float) -> None:
    """Download to `<target>.partial`, verify, and move into place; never leave a partial behind.

    Transient errors are retried (`retries` times after the first attempt); a mismatch is final:
    retrying would download the same wrong bytes, 100 GB at a time.
    """
    partial = target.with_name(target.name + ".partial")
    fetch = SCHEMES[artifact.uri.partition("://")[0].lower()][1]
    attempts = retries + 1
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        for attempt in range(1, attempts + 1):
            log(f"{artifact.name}: downloading {display_uri(artifact.uri)} "
                f"(attempt {attempt}/{attempts})")
            try:
                digests = fetch(artifact, partial)
                break
            except PermanentError as err:
                raise FetchError(f"download of {artifact.label} failed: {err} (not retried)",
                                 EXIT_DOWNLOAD) from None
            except TransientError as err:
                with contextlib.suppress(FileNotFoundError):
                    partial.unlink()
                if attempt == attempts:
                    raise FetchError(f"download of {artifact.label} failed after {attempts} "
                                     f"attempts: {err}", EXIT_DOWNLOAD) from None
                delay = backoff_delay(attempt, backoff)
                log(f"{artifact.name}: attempt {attempt}/{attempts} failed: {err}; "
                    f"retrying in {delay:.2f}s")
                time.sleep(delay)
        verify(artifact, partial, digests)
        os.replace(partial, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()


def verify(artifact: Artifact, partial: Path, digests: Optional[Digests]) -> None:
    """Check size then every recorded checksum of the downloaded file; exit 3 on any difference."""
    size = partial.stat().st_size
    if artifact.size_bytes is not None and size != artifact.size_bytes:
        raise size_mismatch(artifact, size)
    actual = digests if digests is not None else hash_file(artifact, partial)
    mismatch = first_mismatch(artifact, actual)
    if mismatch is not None:
        raise mismatch
    log(f"{artifact.name}: ok ({human_size(size)}, {checked(actual)})")


# --------------------------------------------------------------------------- archives


def is_archive(path: str) -> bool:
    return path.endswith(ARCHIVE_SUFFIXES)


def strip_archive_suffix(name: str) -> str:
    """weights.tar.gz -> weights; the directory an archive is extracted into."""
    for suffix in ARCHIVE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def extraction_dir(target: Path) -> Path:
    """model/weights.tar -> model/weights (a sibling directory of the archive)."""
    return target.with_name(strip_archive_suffix(target.name))


def escapes(path: PurePosixPath) -> bool:
    """True when a relative path climbs above its root ('a/../../b'), or is absolute."""
    if path.is_absolute():
        return True
    depth = 0
    for part in path.parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


def unsafe_member(member: tarfile.TarInfo) -> Optional[str]:
    """Why extracting `member` could write outside the directory, or None.

    Checked for every member before anything is written, on every Python; `filter="data"` adds
    the standard library's own checks where it exists (3.12, and 3.9.17+/3.10.12+/3.11.4+).
    """
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts:
        return f"member {member.name!r} has an absolute path or '..'"
    if member.issym() and escapes(name.parent / member.linkname):
        return f"symlink {member.name!r} -> {member.linkname!r} points outside the archive"
    if member.islnk() and escapes(PurePosixPath(member.linkname)):
        return f"hard link {member.name!r} -> {member.linkname!r} points outside the archive"
    if member.isdev():
        return f"member {member.name!r} is a device or FIFO"
    return None


def extract_archive(artifact: Artifact, archive: Path) -> None:
    """Extract into a temporary sibling, then rename: a crash never leaves a half-extracted dir."""
    out = extraction_dir(archive)
    prefix = f".{out.name}.extract-"
    for stale in out.parent.iterdir():  # left by a run killed mid-extraction
        if stale.name.startswith(prefix):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=out.parent))
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                problem = unsafe_member(member)
                if problem:
                    raise FetchError(f"archive {artifact.label} is unsafe: {problem}; refusing "
                                     "to extract it", EXIT_MISMATCH)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, members=members, filter="data")
            else:  # pragma: no cover - old Pythons; members were checked above
                tar.extractall(tmp, members=members)
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700; the serving container may run as another uid
        if out.exists():
            shutil.rmtree(out)
        os.rename(tmp, out)
    except tarfile.TarError as err:
        raise FetchError(f"cannot extract {artifact.label}: {err}", EXIT_MISMATCH) from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"{artifact.name}: extracted to {out}")


# --------------------------------------------------------------------------- the run


def fetch_artifact(dest: Path, artifact: Artifact, retries: int, backoff: float) -> None:
    """Make DEST/<path> the verified artifact (from cache or network) and extract archives."""
    target = dest / artifact.path
    reused = reuse_local(dest, artifact, target)
    if reused is None:
        download_verified(artifact, target, retries, backoff)
        write_marker(dest, artifact, target)
    if is_archive(artifact.path):
        if reused == "marker" and extraction_dir(target).is_dir():
            log(f"{artifact.name}: already extracted to {extraction_dir(target)}")
        else:
            extract_archive(artifact, target)


@contextlib.contextmanager
def dest_lock(dest: Path) -> Iterator[None]:
    """Serialize fetchers sharing DEST (two pods of one release on a node, one hostPath cache).

    Without it both would write the same .partial and a garbled file would fail its sha256:
    a false "refusing to start". The second pod waits, then finds everything cached.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not Linux; no locking
        yield
        return
    with open(dest / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another fetcher using {dest}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad usage; 2 means "download failed" here, so usage exits 1."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        log(f"error: {message}")
        sys.exit(EXIT_USAGE)


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = _Parser(prog="fetch_bundle.py",
                     description="Download and verify a release's bundle before the model serves.")
    parser.add_argument("--manifest", required=True, type=Path,
                        help="JSON: {release, artifacts: [{name, uri, sha256, md5?, size_bytes, path}]}")
    parser.add_argument("--dest", required=True, type=Path,
                        help="directory the artifact paths are relative to (the node-local cache)")
    parser.add_argument("--retries", type=int, default=5,
                        help="retries after the first attempt for transient errors (default 5)")
    parser.add_argument("--backoff", type=float, default=2.0,
                        help="first retry delay in seconds, doubling, capped at 60 (default 2.0)")
    args = parser.parse_args(argv)
    if args.retries < 0:
        parser.error("--retries must be 0 or more")
    if not args.backoff >= 0:
        parser.error("--backoff must be 0 or more seconds")
    return args


def run(manifest_path: Path, dest: Path, retries: int, backoff: float) -> int:
    """Fetch every artifact in manifest order; the first failure ends the run with its code."""
    manifest = load_manifest(manifest_path)
    dest.mkdir(parents=True, exist_ok=True)
    log(f"release {manifest.release}: {len(manifest.artifacts)} artifact(s) into {dest}")
    with dest_lock(dest):
        for artifact in manifest.artifacts:
            fetch_artifact(dest, artifact, retries, backoff)
    log(f"release {manifest.release} is ready in {dest}")
    return EXIT_OK


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        return run(args.manifest, args.dest, args.retries, args.backoff)
    except FetchError as err:
        log(f"error: {err}")
        return err.exit_code
    except OSError as err:  # disk full, permissions: not the network, so not retried
        log(f"error: {err}")
        return EXIT_DOWNLOAD


if __name__ == "__main__":
    sys.exit(main())
