"""The policy pack started exactly as the engine starts it, for the gRPC tests.

A thin face over the production client (`reconciler/adapters/policy_client.py`), so the tests
exercise the same launcher and calls `reconciler preview` uses: `python -u -m pulumi.policy
<engine address> policies/` with the engine's environment, the port from the first stdout line,
and the engine's own stubs. Diagnostics keep the message as on the wire (the policy's description,
a newline, then the message) and carry `.level` ("mandatory" | "advisory").
"""

from __future__ import annotations

from pathlib import Path

from reconciler.adapters.offline_engine import RecordedResource
from reconciler.adapters.policy_client import Diagnostic, PolicyPack
from tests.conftest import ROOT

__all__ = ["Diagnostic", "PackProcess"]


class PackProcess(PolicyPack):
    def __init__(self, stack: str = "staging", *, cwd: Path = ROOT, program: str = "policies/") -> None:
        super().__init__(Path(program), project="sluice", stack=stack, cwd=cwd)

    def preview(self, resources: list[RecordedResource]) -> list[Diagnostic]:
        """What `pulumi preview` asks: Analyze for each resource, then AnalyzeStack over all."""
        return self.analyze(resources)
