"""The Pulumi program under the SDK's official mocks (no CLI, no plugins): today it loads the
repository, refuses one with errors, and exports the traffic split per model."""

from __future__ import annotations

import asyncio
import runpy
from pathlib import Path

import pulumi
import pytest

PROGRAM = Path(__file__).resolve().parents[2] / "infra" / "__main__.py"


class Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


@pytest.fixture(params=[True, False], ids=["preview", "update"])
def mocked(request: pytest.FixtureRequest):
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    pulumi.runtime.settings.ROOT.set(None)
    pulumi.runtime.set_mocks(Mocks(), project="sluice", stack="test", preview=request.param)
    yield
    loop.close()


def run_program(environment: str) -> None:
    pulumi.runtime.set_all_config({"sluice:environment": environment})
    runpy.run_path(str(PROGRAM), run_name="__main__")


EXPECTED_EXPORTS = {
    "staging": {"chat-assistant.weights": {"1.2.0": 99, "1.3.0": 1},
                "code-completion.weights": {"2.0.0": 100, "2.1.0": 0}},
    "prod": {"chat-assistant.weights": {"1.2.0": 100, "1.1.0": 0},
             "code-completion.weights": {"2.0.0": 100}},
}


@pytest.mark.parametrize("environment", sorted(EXPECTED_EXPORTS))
def test_the_program_exports_the_traffic_split_of_each_example_environment(mocked: None, environment: str) -> None:
    run_program(environment)
    stack = pulumi.runtime.settings.get_root_resource()
    assert stack.outputs == EXPECTED_EXPORTS[environment]  # plain values: recorded as given, nothing unknown


def test_an_unknown_environment_is_refused_with_the_known_ones(mocked: None) -> None:
    with pytest.raises(pulumi.RunError, match=r"no environments/nowhere.yaml \(known: prod, staging\)"):
        run_program("nowhere")
