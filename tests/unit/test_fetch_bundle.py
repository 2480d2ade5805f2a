"""The serving pods' init container: reconciler/runtime/fetch_bundle.py.

The script runs as the pod runs it (a subprocess, `python3 fetch_bundle.py ...`) against a real
HTTP server on loopback that counts requests, so "not retried" and "served from cache" are
asserted as request counts, not inferred from logs. Pure helpers are imported and tested directly.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any, Iterator
from urllib.parse import unquote, urlsplit

import pytest

from reconciler.adapters.repo_loader import load_repository
from reconciler.core.release import Artifact
from reconciler.core.serving_manifests import bundle_files
from reconciler.runtime import fetch_bundle
from tests.conftest import ROOT

SCRIPT = Path(fetch_bundle.__file__).resolve()
REV = "7327bd9f6efbbe6101dc6cc4736302b3cbb6e425"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# --------------------------------------------------------------------------- the HTTP server


@dataclass
class FakeServer:
    """Serves `payloads` by path; counts requests; fails or redirects paths on demand."""

    base: str = ""
    payloads: dict[str, bytes] = field(default_factory=dict)
    failures: dict[str, list[int]] = field(default_factory=dict)  # path -> statuses to send first
    redirects: dict[str, str] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    headers: dict[str, list[dict[str, str]]] = field(default_factory=lambda: defaultdict(list))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, path: str, data: bytes) -> str:
        self.payloads[path] = data
        return self.base + path

    def fail(self, path: str, times: int, status: int = 503) -> None:
        self.failures[path] = [status] * times

    @property
    def total(self) -> int:
        return sum(self.requests.values())


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        state: FakeServer = self.server.state  # type: ignore[attr-defined]
        path = unquote(urlsplit(self.path).path)
        with state.lock:
            state.requests[path] += 1
            state.headers[path].append(dict(self.headers.items()))
            pending = state.failures.get(path)
            status = pending.pop(0) if pending else None
        if status is not None:
            self.send_error(status)
        elif path in state.redirects:
            self.send_response(302)
            self.send_header("Location", state.redirects[path])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path in state.payloads:
            body = state.payloads[path]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the http.server API
        pass


@pytest.fixture
def server() -> Iterator[FakeServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    state = FakeServer(base=f"http://127.0.0.1:{httpd.server_address[1]}")
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


# --------------------------------------------------------------------------- running the script


def art(name: str, uri: str, data: bytes, path: str, **overrides: Any) -> dict[str, Any]:
    entry = {"name": name, "uri": uri, "sha256": sha(data), "size_bytes": len(data), "path": path}
    entry.update(overrides)
    return entry


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without proxies or Hub settings that would reroute requests."""
    env = {k: v for k, v in os.environ.items()
           if not k.lower().endswith("_proxy") and not k.startswith("HF_")}
    env.update(extra)
    return env


def fetch(tmp_path: Path, artifacts: list[dict[str, Any]] | dict[str, Any] | str, *args: str,
          dest: Path | None = None, env: dict[str, str] | None = None,
          retries: int = 3) -> subprocess.CompletedProcess[str]:
    """Run the script as the pod does; `artifacts` may be a whole manifest or raw text."""
    if isinstance(artifacts, list):
        manifest: Any = {"release": "chat-assistant/v1.3.0-4f2a9c1d07e5", "artifacts": artifacts}
    else:
        manifest = artifacts
    manifest_path = tmp_path / "manifest.json"
    manifest_path.write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    command = [sys.executable, str(SCRIPT), "--manifest", str(manifest_path),
               "--dest", str(dest or tmp_path / "dest"), "--retries", str(retries),
               "--backoff", "0.01", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60,
                          env=env if env is not None else clean_env())


def fetch_in_process(tmp_path: Path, artifacts: list[dict[str, Any]] | dict[str, Any] | str,
                     capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Call main() directly: for manifest checks, which exit before any I/O (and save a start)."""
    manifest: Any = artifacts
    if isinstance(artifacts, list):
        manifest = {"release": "chat-assistant/v1.3.0-4f2a9c1d07e5", "artifacts": artifacts}
    manifest_path = tmp_path / "manifest.json"
    manifest_path.write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    code = fetch_bundle.main(["--manifest", str(manifest_path), "--dest", str(tmp_path / "dest")])
    assert not (tmp_path / "dest").exists()  # refused before creating anything
    return code, capsys.readouterr().err


def leftovers(dest: Path) -> list[str]:
    """Partial downloads and temporary extraction directories: a failed run leaves none."""
    return sorted(str(p.relative_to(dest)) for p in dest.rglob("*")
                  if p.name.endswith(".partial") or ".extract-" in p.name)


# --------------------------------------------------------------------------- downloads


def test_downloads_every_artifact_to_its_path(tmp_path: Path, server: FakeServer) -> None:
    weights, tokenizer = os.urandom(3 * 1024 * 1024 + 17), b'{"vocab": {}}'
    result = fetch(tmp_path, [
        art("weights", server.add("/w.safetensors", weights), weights, "model/weights.safetensors"),
        art("tokenizer", server.add("/t.json", tokenizer), tokenizer, "model/tokenizer.json",
            size_bytes=None),
    ])
    assert result.returncode == 0, result.stderr
    dest = tmp_path / "dest"
    assert (dest / "model/weights.safetensors").read_bytes() == weights
    assert (dest / "model/tokenizer.json").read_bytes() == tokenizer
    assert "fetch-bundle: weights: ok (3.0 MiB, sha256 ok)" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"fetch-bundle: release chat-assistant/v1.3.0-4f2a9c1d07e5 is ready in {dest}")
    marker = json.loads((dest / ".verified/weights.json").read_text())
    st = (dest / "model/weights.safetensors").stat()
    assert marker["sha256"] == sha(weights)
    assert (marker["size"], marker["mtime_ns"]) == (st.st_size, st.st_mtime_ns)
    assert leftovers(dest) == []


def test_sha256_mismatch_is_final(tmp_path: Path, server: FakeServer) -> None:
    served, expected = b"not the weights", b"the weights the release was evaluated with"
    uri = server.add("/w.bin", served)
    result = fetch(tmp_path, [art("weights", uri, expected, "model/w.bin", size_bytes=None)])
    assert result.returncode == fetch_bundle.EXIT_MISMATCH == 3
    assert (f"sha256 mismatch for weights ({uri}): expected {sha(expected)}, got {sha(served)}; "
            "refusing to start: the bundle does not match the release") in result.stderr
    dest = tmp_path / "dest"
    assert not (dest / "model/w.bin").exists()
    assert leftovers(dest) == []
    assert not (dest / ".verified/weights.json").exists()
    assert server.requests["/w.bin"] == 1  # a wrong hash is never downloaded again


@pytest.mark.parametrize("delta", [1, -1])
def test_size_mismatch_exits_3(tmp_path: Path, server: FakeServer, delta: int) -> None:
    data = b"0123456789"
    uri = server.add("/w.bin", data)
    result = fetch(tmp_path, [art("weights", uri, data, "w.bin", size_bytes=len(data) + delta)])
    assert result.returncode == 3
    assert f"size mismatch for weights ({uri}): expected {len(data) + delta} bytes, got 10" in result.stderr
    assert not (tmp_path / "dest/w.bin").exists()
    assert leftovers(tmp_path / "dest") == []
    assert server.requests["/w.bin"] == 1


@pytest.mark.parametrize("status", [503, 429])
def test_transient_errors_are_retried(tmp_path: Path, server: FakeServer, status: int) -> None:
    data = b"weights"
    uri = server.add("/w.bin", data)
    server.fail("/w.bin", 2, status)
    result = fetch(tmp_path, [art("weights", uri, data, "w.bin")], retries=3)
    assert result.returncode == 0, result.stderr
    assert server.requests["/w.bin"] == 3
    assert f"fetch-bundle: weights: downloading {uri} (attempt 3/4)" in result.stderr
    assert f"attempt 1/4 failed: HTTP {status}" in result.stderr
    assert (tmp_path / "dest/w.bin").read_bytes() == data


def test_gives_up_after_retries(tmp_path: Path, server: FakeServer) -> None:
    data = b"weights"
    uri = server.add("/w.bin", data)
    server.fail("/w.bin", 100)
    result = fetch(tmp_path, [art("weights", uri, data, "w.bin")], retries=2)
    assert result.returncode == fetch_bundle.EXIT_DOWNLOAD == 2
    assert server.requests["/w.bin"] == 3  # the first attempt and --retries 2 retries
    assert f"download of weights ({uri}) failed after 3 attempts: HTTP 503" in result.stderr
    assert leftovers(tmp_path / "dest") == []


def test_not_found_is_not_retried(tmp_path: Path, server: FakeServer) -> None:
    uri = f"{server.base}/missing.bin"
    result = fetch(tmp_path, [art("weights", uri, b"x", "w.bin")], retries=5)
    assert result.returncode == 2
    assert server.requests["/missing.bin"] == 1
    assert "HTTP 404" in result.stderr and "(not retried)" in result.stderr


def test_connection_refused_is_retried_then_fails(tmp_path: Path, server: FakeServer) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = fetch(tmp_path, [art("weights", f"http://127.0.0.1:{port}/w", b"x", "w")], retries=1)
    assert result.returncode == 2
    assert "(attempt 2/2)" in result.stderr and "failed after 2 attempts" in result.stderr


# --------------------------------------------------------------------------- the node-local cache


def test_second_run_is_served_from_the_marker(tmp_path: Path, server: FakeServer) -> None:
    data = os.urandom(1024)
    artifacts = [art("weights", server.add("/w.bin", data), data, "model/w.bin")]
    assert fetch(tmp_path, artifacts).returncode == 0
    assert server.total == 1
    again = fetch(tmp_path, artifacts)
    assert again.returncode == 0, again.stderr
    assert server.total == 1  # no network at all
    assert "fetch-bundle: weights: cached, verified" in again.stderr


def test_touched_file_is_rehashed_not_downloaded(tmp_path: Path, server: FakeServer) -> None:
    data = os.urandom(1024)
    artifacts = [art("weights", server.add("/w.bin", data), data, "model/w.bin")]
    assert fetch(tmp_path, artifacts).returncode == 0
    target = tmp_path / "dest/model/w.bin"
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    again = fetch(tmp_path, artifacts)
    assert again.returncode == 0, again.stderr
    assert server.total == 1
    assert "weights: cached, re-verified (sha256 ok)" in again.stderr
    marker = json.loads((tmp_path / "dest/.verified/weights.json").read_text())
    assert marker["mtime_ns"] == target.stat().st_mtime_ns  # the marker is current again
    assert "cached, verified" in fetch(tmp_path, artifacts).stderr


@pytest.mark.parametrize("corrupt", ["same size", "truncated", "no marker"])
def test_corrupted_file_is_downloaded_again(tmp_path: Path, server: FakeServer,
                                            corrupt: str) -> None:
    data = os.urandom(1024)
    artifacts = [art("weights", server.add("/w.bin", data), data, "model/w.bin")]
    assert fetch(tmp_path, artifacts).returncode == 0
    target = tmp_path / "dest/model/w.bin"
    if corrupt == "same size":
        target.write_bytes(bytes(1024))
    elif corrupt == "truncated":
        target.write_bytes(data[:100])
    else:
        (tmp_path / "dest/.verified/weights.json").unlink()
        target.write_bytes(b"stale")
    again = fetch(tmp_path, artifacts)
    assert again.returncode == 0, again.stderr
    assert server.total == 2
    assert target.read_bytes() == data
    assert "is not the release's; deleting it" in again.stderr


def test_a_new_release_hash_does_not_trust_the_old_marker(tmp_path: Path,
                                                          server: FakeServer) -> None:
    old, new = b"v1 weights", b"v2 weights"
    assert fetch(tmp_path, [art("weights", server.add("/v1", old), old, "w.bin")]).returncode == 0
    result = fetch(tmp_path, [art("weights", server.add("/v2", new), new, "w.bin")])
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "dest/w.bin").read_bytes() == new
    assert server.requests["/v2"] == 1


def test_concurrent_fetchers_share_one_download(tmp_path: Path, server: FakeServer) -> None:
    data = os.urandom(4 * 1024 * 1024)
    manifest = {"release": "m/v1.0.0-abc1234",
                "artifacts": [art("weights", server.add("/w.bin", data), data, "w.bin")]}
    manifest_path = tmp_path / "manifest.json"
    manifest_path.write_text(json.dumps(manifest))
    command = [sys.executable, str(SCRIPT), "--manifest", str(manifest_path),
               "--dest", str(tmp_path / "dest"), "--backoff", "0.01"]
    procs = [subprocess.Popen(command, env=clean_env(), stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert server.total == 1
    assert (tmp_path / "dest/w.bin").read_bytes() == data


# --------------------------------------------------------------------------- md5 (DVC references)


def test_recorded_md5_is_checked_and_kept_in_the_marker(tmp_path: Path, server: FakeServer) -> None:
    data = os.urandom(4096)
    artifacts = [art("weights", server.add("/w.bin", data), data, "model/w.bin", md5=md5(data))]
    result = fetch(tmp_path, artifacts)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "dest/model/w.bin").read_bytes() == data
    assert "fetch-bundle: weights: ok (4.0 KiB, sha256 ok, md5 ok)" in result.stderr
    marker = json.loads((tmp_path / "dest/.verified/weights.json").read_text())
    assert (marker["sha256"], marker["md5"]) == (sha(data), md5(data))
    assert "cached, verified" in fetch(tmp_path, artifacts).stderr
    assert server.total == 1


def test_md5_mismatch_is_final_and_moves_nothing_into_place(tmp_path: Path,
                                                            server: FakeServer) -> None:
    """sha256 right, md5 wrong: the release's record disagrees with itself, so the pod stops."""
    data, other = b"the weights", b"other bytes"
    uri = server.add("/w.bin", data)
    result = fetch(tmp_path, [art("weights", uri, data, "model/w.bin", md5=md5(other))])
    assert result.returncode == fetch_bundle.EXIT_MISMATCH == 3
    assert (f"md5 mismatch for weights ({uri}): expected {md5(other)}, got {md5(data)}; "
            "refusing to start: the bundle does not match the release") in result.stderr
    dest = tmp_path / "dest"
    assert not (dest / "model/w.bin").exists()
    assert not (dest / ".verified/weights.json").exists()
    assert leftovers(dest) == []
    assert server.requests["/w.bin"] == 1  # final: never downloaded again


def test_sha256_is_reported_first_when_both_digests_differ(tmp_path: Path,
                                                           server: FakeServer) -> None:
    served, expected = b"served", b"expected"
    uri = server.add("/w.bin", served)
    result = fetch(tmp_path, [art("weights", uri, expected, "w.bin", size_bytes=None,
                                  md5=md5(expected))])
    assert result.returncode == 3
    assert f"sha256 mismatch for weights ({uri}): expected {sha(expected)}" in result.stderr
    assert "md5 mismatch" not in result.stderr


def test_without_md5_none_is_computed_or_recorded(tmp_path: Path, server: FakeServer) -> None:
    data = b"tokenizer"
    result = fetch(tmp_path, [art("tokenizer", server.add("/t", data), data, "t.json")])
    assert result.returncode == 0, result.stderr
    assert "tokenizer: ok (9 B, sha256 ok)" in result.stderr and "md5 ok" not in result.stderr
    assert "md5" not in json.loads((tmp_path / "dest/.verified/tokenizer.json").read_text())


def test_a_marker_that_never_checked_md5_does_not_vouch_for_it(tmp_path: Path,
                                                              server: FakeServer) -> None:
    """A file verified by sha256 alone (an older release or fetcher) is re-hashed once the release
    records an md5, and a wrong md5 is caught although the marker's sha256 and mtime still fit."""
    data = os.urandom(2048)
    uri = server.add("/w.bin", data)
    assert fetch(tmp_path, [art("weights", uri, data, "w.bin")]).returncode == 0
    wrong = fetch(tmp_path, [art("weights", uri, data, "w.bin", md5=md5(b"other"))])
    assert wrong.returncode == 3, wrong.stderr
    assert "cached, verified" not in wrong.stderr
    assert f"md5 mismatch for weights ({uri}): expected {md5(b'other')}" in wrong.stderr
    assert not (tmp_path / "dest/w.bin").exists()
    assert fetch(tmp_path, [art("weights", uri, data, "w.bin")]).returncode == 0
    right = fetch(tmp_path, [art("weights", uri, data, "w.bin", md5=md5(data))])
    assert right.returncode == 0, right.stderr
    assert "weights: cached, re-verified (sha256 ok, md5 ok)" in right.stderr
    assert json.loads((tmp_path / "dest/.verified/weights.json").read_text())["md5"] == md5(data)
    assert server.requests["/w.bin"] == 3  # first run, the refused run, the run after it


# --------------------------------------------------------------------------- archives


def make_tar(files: dict[str, bytes], mode: str = "w", links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:  # type: ignore[call-overload]
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buffer.getvalue()


@pytest.mark.parametrize(("suffix", "mode"), [(".tar", "w"), (".tgz", "w:gz")])
def test_archive_is_extracted_next_to_it(tmp_path: Path, server: FakeServer, suffix: str,
                                         mode: str) -> None:
    files = {"config.json": b"{}", "shards/model-00001.safetensors": b"\x00" * 64}
    data = make_tar(files, mode, links={"shards/latest": "model-00001.safetensors"})
    artifacts = [art("weights", server.add("/w", data), data, f"model/weights{suffix}")]
    result = fetch(tmp_path, artifacts)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "dest/model/weights"
    for name, content in files.items():
        assert (out / name).read_bytes() == content
    assert (out / "shards/latest").read_bytes() == b"\x00" * 64
    assert out.stat().st_mode & 0o777 == 0o755  # readable by a serving container of another uid
    assert leftovers(tmp_path / "dest") == []
    again = fetch(tmp_path, artifacts)
    assert "weights: already extracted to" in again.stderr
    assert server.total == 1


def test_archive_is_extracted_again_when_the_directory_is_missing(tmp_path: Path,
                                                                 server: FakeServer) -> None:
    data = make_tar({"a.txt": b"a"})
    artifacts = [art("weights", server.add("/w", data), data, "weights.tar")]
    assert fetch(tmp_path, artifacts).returncode == 0
    (tmp_path / "dest/weights/a.txt").unlink()
    (tmp_path / "dest/weights").rmdir()
    assert fetch(tmp_path, artifacts).returncode == 0
    assert (tmp_path / "dest/weights/a.txt").read_bytes() == b"a"
    assert server.total == 1


@pytest.mark.parametrize(("files", "links", "problem"), [
    ({"ok.txt": b"ok", "../evil": b"evil"}, {}, "'../evil' has an absolute path or '..'"),
    ({"/abs-evil": b"evil"}, {}, "absolute path or '..'"),
    ({}, {"link": "../../evil"}, "symlink 'link' -> '../../evil' points outside"),
    ({}, {"link": "/etc/passwd"}, "points outside the archive"),
])
def test_unsafe_archive_is_refused(tmp_path: Path, server: FakeServer, files: dict[str, bytes],
                                   links: dict[str, str], problem: str) -> None:
    data = make_tar(files, links=links)
    dest = tmp_path / "sandbox/dest"
    result = fetch(tmp_path, [art("weights", server.add("/w", data), data, "model/weights.tar")],
                   dest=dest)
    assert result.returncode == 3
    assert "archive weights" in result.stderr and problem in result.stderr
    assert not (dest / "model/weights").exists()
    assert not any((tmp_path / "sandbox").rglob("evil")) and not Path("/abs-evil").exists()
    assert leftovers(dest) == []


# --------------------------------------------------------------------------- hf://


def test_hf_uri_uses_the_endpoint_and_token(tmp_path: Path, server: FakeServer) -> None:
    data = b'{"architectures": ["LlamaForCausalLM"]}'
    server.add(f"/org/repo/resolve/{REV}/sub dir/config.json", data)
    uri = f"hf://org/repo@{REV}/sub dir/config.json"
    env = clean_env(HF_ENDPOINT=server.base + "/", HF_TOKEN="hf_secret")
    result = fetch(tmp_path, [art("config", uri, data, "model/config.json")], env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "dest/model/config.json").read_bytes() == data
    [headers] = server.headers[f"/org/repo/resolve/{REV}/sub dir/config.json"]
    assert headers["Authorization"] == "Bearer hf_secret"
    assert "hf_secret" not in result.stderr


def test_hf_without_token_sends_no_authorization(tmp_path: Path, server: FakeServer) -> None:
    data = b"tok"
    server.add(f"/org/repo/resolve/{REV}/tokenizer.json", data)
    env = clean_env(HF_ENDPOINT=server.base)
    uri = f"hf://org/repo@{REV}/tokenizer.json"
    assert fetch(tmp_path, [art("tok", uri, data, "t.json")], env=env).returncode == 0
    [headers] = server.headers[f"/org/repo/resolve/{REV}/tokenizer.json"]
    assert "Authorization" not in headers


def test_hf_token_is_not_forwarded_on_redirect(tmp_path: Path, server: FakeServer) -> None:
    data = b"weights from the CDN"
    server.redirects[f"/org/repo/resolve/{REV}/w.bin"] = server.add("/cdn/w.bin", data)
    env = clean_env(HF_ENDPOINT=server.base, HF_TOKEN="hf_secret")
    result = fetch(tmp_path, [art("w", f"hf://org/repo@{REV}/w.bin", data, "w.bin")], env=env)
    assert result.returncode == 0, result.stderr
    assert server.headers[f"/org/repo/resolve/{REV}/w.bin"][0]["Authorization"] == "Bearer hf_secret"
    assert "Authorization" not in server.headers["/cdn/w.bin"][0]


@pytest.mark.parametrize(("uri", "problem"), [
    (f"hf://org/repo@{REV}", "names no file in the repo"),
    (f"hf://org/repo@{REV}/", "names no file in the repo"),
    ("hf://org/repo@main/config.json", "is not a 40-hex commit hash"),
    (f"hf://org/repo@{REV[:12]}/config.json", "is not a 40-hex commit hash"),
    ("hf://org/repo/config.json", "is not an hf:// URI"),
])
def test_bad_hf_uri_exits_1_before_any_download(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                uri: str, problem: str) -> None:
    artifacts = [art("first", "https://example.invalid/first", b"x", "first"),
                 art("config", uri, b"x", "config.json")]
    code, stderr = fetch_in_process(tmp_path, artifacts, capsys)
    assert code == fetch_bundle.EXIT_USAGE == 1
    assert "artifacts[1] (config)" in stderr and problem in stderr


# --------------------------------------------------------------------------- bad manifests


@pytest.mark.parametrize(("path", "problem"), [
    ("../x", "contains '..'"),
    ("model/../../x", "contains '..'"),
    ("/etc/x", "is absolute"),
    ("", "must be a non-empty relative path"),
    (".verified/w.json", "is reserved"),
])
def test_path_must_stay_inside_dest(tmp_path: Path, capsys: pytest.CaptureFixture[str], path: str,
                                    problem: str) -> None:
    code, stderr = fetch_in_process(tmp_path, [art("weights", "https://h/w", b"x", path)], capsys)
    assert code == 1
    assert f"artifacts[0] (weights): 'path' {path!r} {problem}" in stderr


def test_path_outside_dest_exits_1_from_the_cli(tmp_path: Path, server: FakeServer) -> None:
    result = fetch(tmp_path, [art("weights", server.base + "/w", b"x", "../x")])
    assert result.returncode == 1
    assert "'path' '../x' contains '..' and would leave --dest" in result.stderr
    assert server.total == 0 and not (tmp_path / "x").exists()


def test_unknown_scheme_names_the_artifact(tmp_path: Path) -> None:
    result = fetch(tmp_path, [art("tokenizer", "ftp://host/t.json", b"x", "t.json")])
    assert result.returncode == 1
    assert "(tokenizer): unsupported URI scheme 'ftp'" in result.stderr


@pytest.mark.parametrize(("manifest", "problem"), [
    ("{not json", "is not valid JSON"),
    ({"artifacts": []}, "'release' must be a non-empty string"),
    ({"release": "r", "artifacts": []}, "'artifacts' must be a non-empty list"),
    ([art("w", "https://h/w", b"x", "w", sha256="abc")], "'sha256' must be 64 hex digits"),
    ([art("w", "https://h/w", b"x", "w", md5=sha(b"x"))], "'md5' must be 32 hex digits or absent"),
    ([art("w", "https://h/w", b"x", "w", md5=12345)], "'md5' must be 32 hex digits or absent"),
    ([art("w", "https://h/w", b"x", "w", size_bytes=-1)], "'size_bytes' must be"),
    ([art("w", "https://h/w", b"x", "w", sha265="typo")], "unknown field(s) ['sha265']"),
    ([art("w/x", "https://h/w", b"x", "w")], "'name' must be letters"),
    ([art("w", "s3://bucket", b"x", "w")], "needs a bucket and a key"),
    ([art("w", "https://h/a", b"x", "a"), art("w", "https://h/b", b"x", "b")], "the same name"),
    ([art("a", "https://h/a", b"x", "w"), art("b", "https://h/b", b"x", "w")], "the same path"),
])
def test_bad_manifest_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str], manifest: Any,
                              problem: str) -> None:
    code, stderr = fetch_in_process(tmp_path, manifest, capsys)
    assert code == 1
    assert problem in stderr


def test_usage_errors_exit_1_not_2(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--dest", str(tmp_path)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "--manifest" in result.stderr


# --------------------------------------------------------------------------- s3:// and gs://

FAKE_CLI = """#!{python}
import os, shutil, sys
with open(os.environ["FAKE_CLI_LOG"], "a") as log:
    log.write(" ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]) + "\\n")
failures = os.environ.get("FAKE_CLI_FAILURES")
if failures and os.path.exists(failures):
    left = int(open(failures).read())
    if left > 0:
        open(failures, "w").write(str(left - 1))
        sys.exit(1)
source, target = sys.argv[3], sys.argv[4]
shutil.copyfile(os.path.join(os.environ["FAKE_CLOUD"], source.split("://", 1)[1]), target)
"""


@pytest.fixture
def cloud(tmp_path: Path) -> dict[str, str]:
    """A bin/ with fake `aws` and `gcloud` that copy from a local "bucket" directory."""
    bin_dir, bucket = tmp_path / "bin", tmp_path / "cloud/bucket"
    bin_dir.mkdir()
    bucket.mkdir(parents=True)
    for tool in ("aws", "gcloud"):
        script = bin_dir / tool
        script.write_text(FAKE_CLI.format(python=sys.executable))
        script.chmod(0o755)
    return clean_env(PATH=str(bin_dir), FAKE_CLOUD=str(tmp_path / "cloud"),
                     FAKE_CLI_LOG=str(tmp_path / "cli.log"),
                     FAKE_CLI_FAILURES=str(tmp_path / "failures"))


@pytest.mark.parametrize(("scheme", "command"), [
    ("s3", "aws s3 cp s3://bucket/w.bin {partial} --only-show-errors"),
    ("gs", "gcloud storage cp gs://bucket/w.bin {partial}"),
])
def test_bucket_uris_use_the_cli(tmp_path: Path, cloud: dict[str, str], scheme: str,
                                 command: str) -> None:
    data = os.urandom(2048)
    (tmp_path / "cloud/bucket/w.bin").write_bytes(data)
    (tmp_path / "failures").write_text("1")
    result = fetch(tmp_path, [art("weights", f"{scheme}://bucket/w.bin", data, "model/w.bin")],
                   env=cloud)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "dest/model/w.bin").read_bytes() == data
    partial = tmp_path / "dest/model/w.bin.partial"
    assert (tmp_path / "cli.log").read_text().splitlines() == [command.format(partial=partial)] * 2
    assert "attempt 1/4 failed" in result.stderr and "exited 1" in result.stderr


def test_bucket_copy_is_hashed_after_the_cli(tmp_path: Path, cloud: dict[str, str]) -> None:
    (tmp_path / "cloud/bucket/w.bin").write_bytes(b"tampered")
    result = fetch(tmp_path, [art("weights", "s3://bucket/w.bin", b"original", "w.bin",
                                  size_bytes=None)], env=cloud)
    assert result.returncode == 3
    assert "sha256 mismatch for weights (s3://bucket/w.bin)" in result.stderr
    assert not (tmp_path / "dest/w.bin").exists() and leftovers(tmp_path / "dest") == []
    assert len((tmp_path / "cli.log").read_text().splitlines()) == 1


def test_bucket_copy_checks_the_recorded_md5(tmp_path: Path, cloud: dict[str, str]) -> None:
    """The CLI copies without hashing, so both digests are computed from the file afterwards."""
    data = b"weights from the bucket"
    (tmp_path / "cloud/bucket/w.bin").write_bytes(data)
    ok = fetch(tmp_path, [art("weights", "gs://bucket/w.bin", data, "w.bin", md5=md5(data))],
               env=cloud)
    assert ok.returncode == 0, ok.stderr
    assert "sha256 ok, md5 ok" in ok.stderr
    bad = fetch(tmp_path, [art("weights", "gs://bucket/w.bin", data, "w2.bin", md5="0" * 32)],
                dest=tmp_path / "dest2", env=cloud)
    assert bad.returncode == 3
    assert f"md5 mismatch for weights (gs://bucket/w.bin): expected {'0' * 32}, got {md5(data)}" in bad.stderr
    assert not (tmp_path / "dest2/w2.bin").exists() and leftovers(tmp_path / "dest2") == []


def test_release_manifest_carries_md5_only_when_recorded(tmp_path: Path,
                                                         cloud: dict[str, str]) -> None:
    """bundle_files, the init container's input, adds md5 for an artifact that records one (and
    only then, so existing manifests do not change); the fetcher checks what it was given."""
    release = load_repository(ROOT).repository.release("chat-assistant", "1.3.0")
    assert release is not None
    assert all("md5" not in entry for entry in bundle_files(release))
    data = b"weights tracked by DVC"
    (tmp_path / "cloud/bucket/w.bin").write_bytes(data)
    weights = Artifact(uri="s3://bucket/w.bin", sha256=sha(data), md5=md5(data), size_bytes=len(data))
    imported = release.model_copy(update={"bundle": release.bundle.model_copy(update={"weights": weights})})
    entries = {entry["name"]: entry for entry in bundle_files(imported)}
    assert entries["weights"]["md5"] == md5(data)
    assert [name for name, entry in entries.items() if "md5" in entry] == ["weights"]
    ok = fetch(tmp_path, [entries["weights"]], env=cloud)
    assert ok.returncode == 0, ok.stderr
    assert "weights: ok (22 B, sha256 ok, md5 ok)" in ok.stderr
    assert (tmp_path / "dest/weights/w.bin").read_bytes() == data


def test_s3_falls_back_to_boto3(tmp_path: Path) -> None:
    data = b"from boto3"
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "boto3.py").write_text(
        "import shutil\n"
        "class _S3:\n"
        "    def download_file(self, bucket, key, filename):\n"
        f"        shutil.copyfile({str(tmp_path)!r} + '/' + bucket + '/' + key, filename)\n"
        "def client(name):\n"
        "    assert name == 's3'\n"
        "    return _S3()\n")
    (tmp_path / "bucket").mkdir()
    (tmp_path / "bucket/w.bin").write_bytes(data)
    (tmp_path / "empty-bin").mkdir()
    env = clean_env(PATH=str(tmp_path / "empty-bin"), PYTHONPATH=str(modules))
    result = fetch(tmp_path, [art("weights", "s3://bucket/w.bin", data, "w.bin")], env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "dest/w.bin").read_bytes() == data


@pytest.mark.parametrize(("scheme", "names"), [
    ("s3", ("`aws` CLI", "boto3")),
    ("gs", ("`gcloud` CLI", "google-cloud-storage")),
])
def test_bucket_uri_without_any_backend_fails_clearly(tmp_path: Path, scheme: str,
                                                      names: tuple[str, str]) -> None:
    modules = tmp_path / "modules"
    (modules / "google/cloud").mkdir(parents=True)
    (modules / "boto3.py").write_text("raise ImportError('hidden by the test')\n")
    (modules / "google/__init__.py").write_text("")
    (modules / "google/cloud/__init__.py").write_text("")
    (modules / "google/cloud/storage.py").write_text("raise ImportError('hidden by the test')\n")
    (tmp_path / "empty-bin").mkdir()
    env = clean_env(PATH=str(tmp_path / "empty-bin"), PYTHONPATH=str(modules))
    result = fetch(tmp_path, [art("weights", f"{scheme}://bucket/w.bin", b"x", "w.bin")], env=env)
    assert result.returncode == 2
    assert all(name in result.stderr for name in names), result.stderr
    assert "(not retried)" in result.stderr


# --------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(("uri", "endpoint", "url"), [
    (f"hf://meta-llama/Llama-Guard-3-8B@{REV}/model-00001-of-00004.safetensors",
     "https://huggingface.co",
     f"https://huggingface.co/meta-llama/Llama-Guard-3-8B/resolve/{REV}/model-00001-of-00004.safetensors"),
    (f"hf://org/repo@{REV}/a dir/b#c.json", "http://mirror:8080/hub/",
     f"http://mirror:8080/hub/org/repo/resolve/{REV}/a%20dir/b%23c.json"),
])
def test_hf_url(uri: str, endpoint: str, url: str) -> None:
    assert fetch_bundle.hf_url(uri, endpoint) == url


@pytest.mark.parametrize("uri", [
    f"hf://org@{REV}/f", f"hf://org/repo/extra@{REV}/f", f"hf://org/repo@{REV}/../f",
    "hf://org/repo@v1.0/f", "https://huggingface.co/org/repo",
])
def test_hf_url_rejects(uri: str) -> None:
    with pytest.raises(ValueError, match="hf://"):
        fetch_bundle.hf_url(uri)


def test_small_helpers() -> None:
    fb = fetch_bundle
    assert fb.bucket_key("s3://bucket/dir/key.bin") == ("bucket", "dir/key.bin")
    assert fb.extraction_dir(Path("model/weights.tar.gz")) == Path("model/weights")
    assert fb.extraction_dir(Path("model/weights.tgz")) == Path("model/weights")
    assert [fb.backoff_delay(n, 2.0) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]
    assert fb.display_uri("https://b.s3.amazonaws.com/k?X-Amz-Signature=s") == (
        "https://b.s3.amazonaws.com/k?...")
    assert [fb.human_size(n) for n in (5, 2048, 1288490189)] == ["5 B", "2.0 KiB", "1.2 GiB"]
    assert fb.escapes(PurePosixPath("a/../../b")) and not fb.escapes(PurePosixPath("a/../b"))
    assert fb.uri_problem("ftp://h/x") is not None and fb.uri_problem("https://h/x") is None


def test_stays_standalone_and_python39_compatible() -> None:
    """It ships in a ConfigMap into a vLLM image: stdlib only, and no syntax newer than 3.9."""
    tree = ast.parse(SCRIPT.read_text(), feature_version=(3, 9))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    optional = {"boto3", "google"}  # imported lazily, only when the image has no CLI
    assert imported - optional <= set(sys.stdlib_module_names)
    assert not any(isinstance(node, ast.Match) for node in ast.walk(tree))
