"""The Sluice policy pack: thin on purpose. The rules are in `reconciler.core.policy` (pure, unit
tested) and `reconciler.adapters.policy_pack` turns them into CrossGuard policies.

The engine starts this as `python -u -m pulumi.policy <engine address> <this folder>`; the first
line on stdout must be the port `PolicyPack` prints, so nothing here prints before it.
"""

import sys
from importlib.util import find_spec
from pathlib import Path

if find_spec("reconciler") is None:  # not installed (e.g. a bare checkout): use the repository's copy
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from reconciler.adapters.policy_pack import PACK_NAME, build_policies  # noqa: E402

PolicyPack(
    name=PACK_NAME,
    policies=build_policies(),
    # Each policy sets its own level (mandatory rules block, advisory rules warn); this is only the
    # fallback for a policy without one. Stack config overrides either, per policy.
    enforcement_level=EnforcementLevel.ADVISORY,
)
