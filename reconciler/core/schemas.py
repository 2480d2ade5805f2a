"""JSON Schemas exported from the models, so editors and CI check files as people type.

The models are the source of truth; `schemas/*.schema.json` are generated and committed, and a
test fails when they drift.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema

from .environment import Environment
from .release import Release
from .types import format_duration

SCHEMA_FILES = {"release.schema.json": Release, "environment.schema.json": Environment}


class _SluiceJsonSchema(GenerateJsonSchema):
    """Write defaults as people write them in YAML ("10m"), not as ISO 8601 ("PT10M") that
    would fail the duration pattern of the same schema."""

    def encode_default(self, dft: Any) -> Any:
        return super().encode_default(_as_yaml_value(dft))


def _as_yaml_value(value: Any) -> Any:
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {k: _as_yaml_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_yaml_value(v) for v in value]
    return value


def schema_documents() -> dict[str, str]:
    """File name -> JSON text (stable: sorted keys, trailing newline)."""
    out = {}
    for name, model in SCHEMA_FILES.items():
        schema = model.model_json_schema(mode="validation", schema_generator=_SluiceJsonSchema)
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                  "$id": f"https://sluice.dev/schemas/{name}", **schema}
        out[name] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out
