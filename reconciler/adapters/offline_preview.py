"""An offline preview: the program under the SDK's mocks, its resources judged by the policy pack
over gRPC, and (with a base ref) what would be created, changed or deleted against that ref.

For reviewers and CI without cloud credentials or a Pulumi backend. It is not a cloud preview:
nothing is read from AWS or the cluster, and the real engine would pass provider-checked inputs
(with defaults added) where this passes the program's own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

from ..core.policy import count_rules
from ..core.resource_diff import Change, PlannedResource, diff_resources
from .base_ref import exported
from .offline_engine import RecordedResource, run_program
from .policy_client import Diagnostic, PolicyPack, PolicyPackError

PROJECT = "sluice"


@dataclass
class PreviewResult:
    environment: str
    resources: list[RecordedResource]
    diagnostics: list[Diagnostic]
    policy_count: int  # the pack's policy rules (core.policy.count_rules, as plan counts them)
    base: str | None = None
    changes: list[Change] | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def mandatory(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.mandatory]


def planned(resources: list[RecordedResource]) -> list[PlannedResource]:
    return [PlannedResource(r.type, r.name, r.inputs, r.custom) for r in resources]


def run_offline(root: Path, environment: str, preview: bool = True,
                on_resource: Callable[[RecordedResource], None] | None = None) -> list[RecordedResource]:
    return run_program(root / "infra", project=PROJECT, stack=environment, config={"environment": environment},
                       preview=preview, on_resource=on_resource).resources


def offline_preview(root: Path, environment: str, base: str | None = None) -> PreviewResult:
    """As the engine runs a preview with a policy pack: the pack starts with the program, and each
    resource goes to it as it registers, so the pack's `Analyze` work runs (in its own process)
    while the program goes on; `AnalyzeStack` follows once the program is done."""
    started = time.perf_counter()
    with PolicyPack(root / "policies", project=PROJECT, stack=environment) as pack:
        resources = run_offline(root, environment, on_resource=partial(_submit, pack))
        timings = {"program": time.perf_counter() - started}
        changes = None
        if base is not None:
            changes = _changes_against(root, base, environment, resources)
            timings["base program"] = time.perf_counter() - started - timings["program"]
        waited = time.perf_counter()
        policy_count = count_rules(p.name for p in pack.info().policies)
        diagnostics = pack.analyze(resources)
    timings["policy pack after the program"] = time.perf_counter() - waited
    return PreviewResult(environment, resources, diagnostics, policy_count, base, changes, timings)


def _submit(pack: PolicyPack, resource: RecordedResource) -> None:
    try:
        pack.submit(resource)
    except PolicyPackError:
        pass  # the pack did not start: `analyze` meets the same error after the program and reports it


def _changes_against(root: Path, base: str, environment: str, resources: list[RecordedResource]) -> list[Change]:
    with exported(root, base, with_program=True) as tmp:
        exists = (tmp / "environments" / f"{environment}.yaml").exists()  # else: all of it is new
        base_resources = run_offline(tmp, environment) if exists else []
    return diff_resources(planned(base_resources), planned(resources))
