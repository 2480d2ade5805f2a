"""Digests of a file on disk, read once in chunks: release artifacts are up to hundreds of GB."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

CHUNK_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class FileDigests:
    sha256: str
    size: int
    md5: str | None = None  # only when asked: it costs as much again as sha256


def file_digests(path: Path, md5: bool = False) -> FileDigests:
    """sha256 and size of `path` (and md5, for a DVC reference), in one pass."""
    sha256, size = hashlib.sha256(), 0
    md5_digest = hashlib.md5(usedforsecurity=False) if md5 else None
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            sha256.update(chunk)
            if md5_digest is not None:
                md5_digest.update(chunk)
            size += len(chunk)
    return FileDigests(sha256.hexdigest(), size, md5_digest.hexdigest() if md5_digest else None)
