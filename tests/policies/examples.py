"""The example environments as the engine would hand them to the pack, and ways to break them.

`recorded(env)` runs the Pulumi program under the offline engine (once per environment and test
session) and returns a fresh deep copy, so tests mutate freely. `with_inputs` / `with_release`
change one resource's inputs; `program_on_copy` mutates the example files in a temporary copy of
the repository (infra/ included) and runs the program there, for violations the program itself
can produce.
"""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any, Callable

from reconciler.adapters.offline_engine import RecordedResource, run_program
from reconciler.core.policy import PlannedResource
from tests.conftest import ROOT, copy_example

ENVIRONMENTS = ("staging", "prod")


@cache
def _recorded(root: Path, env: str) -> tuple[RecordedResource, ...]:
    run = run_program(root / "infra", project="sluice", stack=env, config={"environment": env}, preview=True)
    return tuple(run.resources)


def recorded(env: str, root: Path = ROOT) -> list[RecordedResource]:
    return copy.deepcopy(list(_recorded(root, env)))


def program_on_copy(tmp_path: Path, env: str, mutate: Callable[[Path], None]) -> list[RecordedResource]:
    """Copy the example repository (and infra/) to tmp_path, let `mutate(root)` edit it, run the program."""
    root = copy_example(tmp_path / "repo")
    shutil.copytree(ROOT / "infra", root / "infra", ignore=shutil.ignore_patterns("__pycache__"))
    mutate(root)
    run = run_program(root / "infra", project="sluice", stack=env, config={"environment": env}, preview=True)
    return list(run.resources)


def planned(resources: list[RecordedResource]) -> list[PlannedResource]:
    return [PlannedResource(r.urn, r.type, r.name, r.inputs) for r in resources]


def find(resources: list[RecordedResource], kind: str, name: str) -> RecordedResource:
    """The resource whose type ends in `:<kind>` and whose name is `name`."""
    matches = [r for r in resources if r.type.endswith(f":{kind}") and r.name == name]
    assert len(matches) == 1, f"{kind} {name}: {len(matches)} matches"
    return matches[0]


def with_inputs(resources: list[RecordedResource], kind: str, name: str,
                change: Callable[[dict[str, Any]], Any]) -> list[RecordedResource]:
    """A copy of `resources` in which `change` edited the inputs of one resource in place."""
    target = find(resources, kind, name)
    inputs = copy.deepcopy(target.inputs)
    change(inputs)
    return [replace(r, inputs=inputs) if r is target else r for r in resources]


def with_release(resources: list[RecordedResource], name: str,
                 change: Callable[[dict[str, Any]], Any]) -> list[RecordedResource]:
    """Edit the parsed `release.json` envelope of ConfigMap `name` ({"full_id", ..., "release": {...}})."""
    def edit(inputs: dict[str, Any]) -> None:
        doc = json.loads(inputs["data"]["release.json"])
        change(doc)
        inputs["data"]["release.json"] = json.dumps(doc, indent=2, sort_keys=True)

    return with_inputs(resources, "ConfigMap", name, edit)


def without(resources: list[RecordedResource], kind: str, name: str) -> list[RecordedResource]:
    target = find(resources, kind, name)
    return [r for r in resources if r is not target]


def weighted_routes(inputs: dict[str, Any]) -> list[dict[str, Any]]:
    return [route for route in inputs["spec"]["http"] if route["name"].endswith("-weighted")]


def set_weights(weights: dict[str, float]) -> Callable[[dict[str, Any]], None]:
    """Set the weights of every weighted route: {"v1-2-0": 95, "v1-3-0": 5}."""
    def change(inputs: dict[str, Any]) -> None:
        for route in weighted_routes(inputs):
            for destination in route["route"]:
                destination["weight"] = float(weights[destination["destination"]["subset"]])

    return change


def pod_spec(inputs: dict[str, Any]) -> dict[str, Any]:
    return inputs["spec"]["template"]["spec"]
