"""Start the policy pack exactly as the engine does and call it over gRPC (a small test helper).

`python -u -m pulumi.policy <engine address> policies/`, cwd the repository root, with the engine's
environment (PULUMI_PROJECT, PULUMI_STACK, PULUMI_DRY_RUN, PULUMI_CONFIG); the first stdout line is
the port. Calls use the engine's own stubs (`pulumi.runtime.proto`). The production client is
`reconciler/adapters/policy_client.py`; this one stays close to the wire on purpose (raw levels,
one call at a time) so the tests see what the engine would.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import grpc
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from reconciler.adapters.offline_engine import RecordedResource
from tests.conftest import ROOT

LEVELS = {analyzer_pb2.ADVISORY: "advisory", analyzer_pb2.MANDATORY: "mandatory",
          analyzer_pb2.DISABLED: "disabled", analyzer_pb2.REMEDIATE: "remediate"}


@dataclass(frozen=True)
class Diagnostic:
    policy: str
    level: str  # "mandatory" | "advisory"
    message: str  # the pack prefixes the policy's description and a newline
    urn: str


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(value)
    return out


class PackProcess:
    def __init__(self, stack: str = "staging", start_timeout: float = 30.0, *, cwd: Path = ROOT,
                 program: str = "policies/") -> None:
        env = {**os.environ, "PULUMI_PROJECT": "sluice", "PULUMI_STACK": stack, "PULUMI_DRY_RUN": "true",
               "PULUMI_CONFIG": "{}"}
        self._stderr = tempfile.TemporaryFile()
        started = time.perf_counter()
        self.process = subprocess.Popen([sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:0", program],
                                        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=self._stderr)
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], start_timeout)
        line = self.process.stdout.readline().decode().strip() if ready else ""
        if not line.isdigit():
            self.close()
            raise RuntimeError(f"the policy pack did not start (first line {line!r}):\n{self.stderr()}")
        self.start_seconds = time.perf_counter() - started
        self.port = int(line)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.stub = analyzer_pb2_grpc.AnalyzerStub(self.channel)

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def close(self) -> None:
        if getattr(self, "channel", None) is not None:
            self.channel.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr.close()

    # -- the Analyzer protocol ------------------------------------------------------------------

    def info(self) -> Any:
        return self.stub.GetAnalyzerInfo(empty_pb2.Empty())

    def configure(self, config: dict[str, dict[str, Any]]) -> None:
        """CrossGuard policy config, e.g. {"route-weights": {"enforcementLevel": "advisory"}}; {} resets."""
        by_name = {"advisory": analyzer_pb2.ADVISORY, "mandatory": analyzer_pb2.MANDATORY,
                   "disabled": analyzer_pb2.DISABLED}
        request = analyzer_pb2.ConfigureAnalyzerRequest(policyConfig={
            name: analyzer_pb2.PolicyConfig(
                enforcementLevel=by_name[settings.get("enforcementLevel", "advisory")],
                properties=struct({k: v for k, v in settings.items() if k != "enforcementLevel"}))
            for name, settings in config.items()})
        self.stub.Configure(request)

    def analyze(self, resource: RecordedResource) -> list[Diagnostic]:
        response = self.stub.Analyze(analyzer_pb2.AnalyzeRequest(
            type=resource.type, name=resource.name, urn=resource.urn, properties=struct(resource.inputs)))
        return _diagnostics(response.diagnostics, resource.urn)

    def analyze_stack(self, resources: Iterable[RecordedResource]) -> list[Diagnostic]:
        response = self.stub.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=[
            analyzer_pb2.AnalyzerResource(type=r.type, name=r.name, urn=r.urn, parent=r.parent,
                                          properties=struct(r.inputs))
            for r in resources]))
        return _diagnostics(response.diagnostics, "")

    def preview(self, resources: list[RecordedResource]) -> list[Diagnostic]:
        """What `pulumi preview` asks: Analyze for each resource, then AnalyzeStack over all."""
        return [d for r in resources for d in self.analyze(r)] + self.analyze_stack(resources)


def _diagnostics(raw: Iterable[Any], urn: str) -> list[Diagnostic]:
    return [Diagnostic(d.policyName, LEVELS[d.enforcementLevel], d.message, d.urn or urn) for d in raw]
