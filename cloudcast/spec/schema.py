"""The JSON Schema of the spec, generated from the models."""

from __future__ import annotations

import json
from typing import Any

from cloudcast.spec.models import Spec

SCHEMA_ID = "https://cloudcast.dev/schema/spec-v1.json"


def json_schema() -> dict[str, Any]:
    """The spec's JSON Schema (draft 2020-12), by-alias so `$schema` appears as written."""
    schema = Spec.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    return schema


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
