"""JSON Schemas exported from the models, so editors and CI check files as people type.

The models are the source of truth; `schemas/*.schema.json` are generated and committed, and a
test fails when they drift.
"""

from __future__ import annotations

import json

from .environment import Environment
from .release import Release

SCHEMA_FILES = {"release.schema.json": Release, "environment.schema.json": Environment}


def schema_documents() -> dict[str, str]:
    """File name -> JSON text (stable: sorted keys, trailing newline)."""
    out = {}
    for name, model in SCHEMA_FILES.items():
        schema = model.model_json_schema(mode="validation")
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                  "$id": f"https://sluice.dev/schemas/{name}", **schema}
        out[name] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out
