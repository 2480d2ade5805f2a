"""The evaluator's libraries (httpx, h11, rapidfuzz, prometheus_client) load only when the
evaluator runs: `reconciler --help` and `reconciler validate` never import them (they are an
optional extra, and the CLI starts fast). Checked in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

HEAVY = ("httpx", "h11", "rapidfuzz", "prometheus_client", "reconciler.evaluator")
PROBE = (
    "import sys\n"
    "from reconciler.cli.main import main\n"
    "try:\n"
    "    code = main(sys.argv[1:])\n"
    "except SystemExit as exit:\n"
    "    code = exit.code\n"
    f"print('loaded:', [m for m in {HEAVY!r} if m in sys.modules], file=sys.stderr)\n"
)


@pytest.mark.parametrize("argv", [["--help"], ["validate", str(ROOT)]])
def test_the_cli_does_not_load_the_evaluator(argv: list[str]) -> None:
    ran = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=ROOT, capture_output=True, text=True,
                         env=os.environ | {"PYTHONPATH": str(ROOT)}, timeout=120)
    assert "loaded: []" in ran.stderr, ran.stderr
