"""Talk to the CrossGuard policy pack over its real gRPC protocol, as the Pulumi engine does.

The pack is started exactly as the engine starts it (`python -u -m pulumi.policy <engine address>
<pack dir>`): it binds 127.0.0.1:0 and prints its port as the first line on stdout. The resources
recorded by the offline engine are sent with `Analyze` (one per resource) and `AnalyzeStack` (all
at once); values the engine would not know yet travel as its unknown sentinel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .offline_engine import RecordedResource

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # the engine's wire value for "known after apply"
START_TIMEOUT_SECONDS = 30.0


class PolicyPackError(RuntimeError):
    """The pack did not start or answer; the message carries its stderr."""


@dataclass(frozen=True)
class Diagnostic:
    policy: str
    message: str  # as on the wire: the pack puts the policy's description and a newline first
    mandatory: bool
    urn: str
    description: str = ""

    @property
    def level(self) -> str:
        return "mandatory" if self.mandatory else "advisory"

    @property
    def text(self) -> str:
        """The message without the policy's description, for people."""
        return self.message.removeprefix(f"{self.description}\n")


def wire_value(value: Any) -> Any:
    """Plain JSON-like data for a protobuf Struct, with pulumi's Unknown as the engine's sentinel."""
    if isinstance(value, dict):
        return {k: wire_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [wire_value(v) for v in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    return UNKNOWN  # pulumi.output.Unknown and anything else not yet resolved


class PolicyPack:
    """A running pack process and a channel to it; use as a context manager."""

    def __init__(self, pack_dir: Path, *, project: str, stack: str, dry_run: bool = True,
                 config: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        """`cwd` defaults to the repository (the pack's parent); the Python analyzer shim runs the
        pack from inside its folder with `pack_dir` "." instead."""
        env = {**os.environ, "PULUMI_PROJECT": project, "PULUMI_STACK": stack,
               "PULUMI_DRY_RUN": "true" if dry_run else "false", "PULUMI_CONFIG": json.dumps(config or {})}
        self._process = subprocess.Popen(
            [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:0", str(pack_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            cwd=Path(pack_dir).parent if cwd is None else cwd)
        self._stderr: list[str] = []
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        self._connect_lock = threading.Lock()
        self._stub_or_none: Any = None
        self._channel: Any = None
        self._pending: dict[str, Any] = {}  # urn -> Analyze future, in flight while the program runs
        self._start_error: PolicyPackError | None = None

    @property
    def _stub(self) -> Any:
        """The channel, opened once the pack prints its port: callers start the pack, do other work
        (run the program), and only wait for the pack's start-up when they first talk to it."""
        with self._connect_lock:
            if self._start_error is not None:
                raise self._start_error
            if self._stub_or_none is None:
                port = self._read_port()
                import grpc
                from pulumi.runtime.proto import analyzer_pb2_grpc

                self._channel = grpc.insecure_channel(f"127.0.0.1:{port}")
                self._stub_or_none = analyzer_pb2_grpc.AnalyzerStub(self._channel)
            return self._stub_or_none

    def _drain_stderr(self) -> None:
        assert self._process.stderr is not None
        for line in self._process.stderr:
            self._stderr.append(line)

    def _read_port(self) -> int:
        assert self._process.stdout is not None
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(self._process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(START_TIMEOUT_SECONDS)
        line = result[0].strip() if result else ""
        if not line.isdigit():
            self.close()
            self._start_error = PolicyPackError(
                f"the policy pack did not start (first line {line!r}):\n{''.join(self._stderr)}")
            raise self._start_error
        return int(line)

    def __enter__(self) -> PolicyPack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        for stream in (self._process.stdout, self._process.stderr):
            if stream is not None:
                stream.close()

    def info(self) -> Any:
        from google.protobuf import empty_pb2

        return self._stub.GetAnalyzerInfo(empty_pb2.Empty())

    def configure(self, policy_config: dict[str, dict[str, Any]]) -> None:
        """CrossGuard's per-stack config: {"route-weights": {"enforcementLevel": "advisory"}}."""
        from pulumi.runtime.proto import analyzer_pb2

        levels = {"advisory": analyzer_pb2.ADVISORY, "mandatory": analyzer_pb2.MANDATORY,
                  "disabled": analyzer_pb2.DISABLED}
        config = {name: analyzer_pb2.PolicyConfig(
            enforcementLevel=levels[settings.get("enforcementLevel", "advisory")],
            properties=_struct({k: v for k, v in settings.items() if k != "enforcementLevel"}))
            for name, settings in policy_config.items()}
        self._stub.Configure(analyzer_pb2.ConfigureAnalyzerRequest(policyConfig=config))

    def analyze(self, resources: Iterable[RecordedResource]) -> list[Diagnostic]:
        """What `pulumi preview` asks: `Analyze` for each custom resource, then `AnalyzeStack` over all.

        Resources already handed to `submit` are not sent again: their answers are collected here.
        Diagnostics come in the order of `resources`, whatever order the answers arrived in.
        """
        custom = [r for r in resources if r.custom]
        for resource in custom:
            self.submit(resource)
        return [d for r in custom for d in _diagnostics(self._pending.pop(r.urn).result().diagnostics, r.urn)] + \
            self.analyze_stack(custom)

    def submit(self, resource: RecordedResource) -> None:
        """Send `Analyze` for a custom resource without waiting: the pack works on it in its own
        process while this one goes on (the program registering the next resources)."""
        if resource.custom and resource.urn not in self._pending:
            self._pending[resource.urn] = self._stub.Analyze.future(self._analyze_request(resource))

    def analyze_resource(self, resource: RecordedResource) -> list[Diagnostic]:
        return _diagnostics(self._stub.Analyze(self._analyze_request(resource)).diagnostics, resource.urn)

    @staticmethod
    def _analyze_request(resource: RecordedResource) -> Any:
        from pulumi.runtime.proto import analyzer_pb2

        return analyzer_pb2.AnalyzeRequest(type=resource.type, properties=_struct(resource.inputs),
                                           urn=resource.urn, name=resource.name)

    def analyze_stack(self, resources: Iterable[RecordedResource]) -> list[Diagnostic]:
        from pulumi.runtime.proto import analyzer_pb2

        request = analyzer_pb2.AnalyzeStackRequest(resources=[
            analyzer_pb2.AnalyzerResource(type=r.type, properties=_struct(r.inputs), urn=r.urn, name=r.name,
                                          parent=r.parent) for r in resources])
        return _diagnostics(self._stub.AnalyzeStack(request).diagnostics, "")


def _struct(inputs: dict[str, Any]) -> Any:
    from google.protobuf import struct_pb2

    properties = struct_pb2.Struct()
    properties.update(wire_value(inputs))
    return properties


def _diagnostics(raw: Iterable[Any], default_urn: str) -> list[Diagnostic]:
    from pulumi.runtime.proto import analyzer_pb2

    return [Diagnostic(d.policyName, d.message, d.enforcementLevel == analyzer_pb2.MANDATORY, d.urn or default_urn,
                       d.description) for d in raw]
