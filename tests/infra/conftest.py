"""The program's own modules import as Pulumi imports them: with infra/ on sys.path."""

import sys

from tests.conftest import ROOT

if str(ROOT / "infra") not in sys.path:
    sys.path.insert(0, str(ROOT / "infra"))
