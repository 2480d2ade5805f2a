"""Run the Pulumi program in-process under the SDK's official mocks: an offline engine.

No CLI, no plugins, no cloud: every resource the program registers is recorded with its inputs
(camelCase wire names, numbers as floats, as the real engine would send them to a provider or a
policy pack) and its parent. Lookups the program makes (the EKS cluster) get placeholder answers
under `.invalid` names, so nothing here can be mistaken for a cloud preview.
"""

from __future__ import annotations

import asyncio
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

OFFLINE_ACCOUNT = "000000000000"
OFFLINE_LOOKUPS: dict[str, dict[str, Any]] = {
    "aws:eks/getCluster:getCluster": {
        "endpoint": "https://eks.offline.invalid",
        "certificateAuthorities": [{"data": "b2ZmbGluZS1wcmV2aWV3"}],
        "vpcConfig": {"subnetIds": ["subnet-offline-a", "subnet-offline-b"]},
    },
}


@dataclass(frozen=True)
class RecordedResource:
    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    provider: str  # "<provider urn>::<id>", empty for the default provider
    inputs: dict[str, Any]
    custom_timeouts: dict[str, str] = field(default_factory=dict)  # create/update/delete, where set


@dataclass(frozen=True)
class ProgramRun:
    resources: list[RecordedResource]
    outputs: dict[str, Any]


def run_program(program_dir: Path, *, project: str, stack: str, config: dict[str, str],
                preview: bool, on_resource: Callable[[RecordedResource], None] | None = None) -> ProgramRun:
    """Run `program_dir/__main__.py` as the engine would and return what it registered.

    `on_resource` sees each resource as it registers (on the SDK's worker threads), as the engine
    hands each step to its analyzers while the program still runs.
    """
    import pulumi
    from pulumi.runtime import mocks, settings
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    class Recorder(pulumi.runtime.Mocks):
        def __init__(self) -> None:
            self.inputs: dict[tuple[str, str], dict[str, Any]] = {}  # registrations run on worker threads

        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
            self.inputs[(args.typ, args.name)] = args.inputs
            outputs = dict(args.inputs)
            if args.typ.startswith("aws:"):
                outputs.setdefault("name", args.name)
                outputs["arn"] = f"arn:aws:offline:::{OFFLINE_ACCOUNT}:{args.name}"
            return f"{args.name}-offline-id", outputs

        def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
            return OFFLINE_LOOKUPS.get(args.token, {})

    class RecordingMonitor(mocks.MockMonitor):
        def __init__(self, recorder: Recorder) -> None:
            super().__init__(recorder)
            self.records: list[RecordedResource] = []

        def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
            response = super().RegisterResource(request)
            if request.type != "pulumi:pulumi:Stack":
                timeouts = {key: getattr(request.customTimeouts, key) for key in ("create", "update", "delete")
                            if getattr(request.customTimeouts, key)}
                record = RecordedResource(response.urn, request.type, request.name, request.parent,
                                          request.custom, request.provider, recorder.inputs[(request.type, request.name)],
                                          timeouts)
                self.records.append(record)
                if on_resource is not None:
                    on_resource(record)
            return response

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        settings.ROOT.set(None)
        recorder = Recorder()
        monitor = RecordingMonitor(recorder)
        pulumi.runtime.set_mocks(recorder, project=project, stack=stack, preview=preview, monitor=monitor)
        pulumi.runtime.set_all_config({f"{project}:{key}": value for key, value in config.items()})
        _sync_await(run_pulumi_func(lambda: runpy.run_path(str(program_dir), run_name="__main__")))
        outputs = dict(settings.get_root_resource().outputs)
    finally:
        settings.ROOT.set(None)
        asyncio.set_event_loop(None)
        loop.close()
    return ProgramRun(monitor.records, outputs)
