"""The Pulumi program: stack config -> load the repository -> desired state -> components -> exports.

A pure function of the commit plus stack config (no clock, no network beyond the providers). It
refuses a repository with errors, so `pulumi preview` fails with the same messages as
`reconciler validate`. One stack per environment: `sluice:environment` names environments/<env>.yaml.
"""

from pathlib import Path

import pulumi

from environment_stack import deploy
from reconciler.adapters.deployable import load_desired_state

config = pulumi.Config("sluice")
try:
    state = load_desired_state(Path(__file__).resolve().parents[1], config.require("environment"))
except ValueError as error:
    raise pulumi.RunError(str(error)) from None
deploy(state, config)
