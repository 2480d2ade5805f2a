"""`reconciler schema [--out DIR] [--check]`: write (or check) the JSON Schemas of the file formats."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import exit_codes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("schemas"), help="directory (default: %(default)s)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if the files on disk differ from the models")


def run(args: argparse.Namespace) -> int:
    from ..adapters.files import write_atomically
    from ..core.schemas import schema_documents

    stale = []
    for name, text in schema_documents().items():
        path = args.out / name
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            args.out.mkdir(parents=True, exist_ok=True)
            write_atomically(path, text)
            print(f"wrote {path}")
    if args.check and stale:
        for path in stale:
            print(f"{path}: stale; run `reconciler schema` and commit the result", file=sys.stderr)
        return exit_codes.FINDINGS
    if not stale:
        print(f"schemas in {args.out} are up to date")
    return exit_codes.OK
