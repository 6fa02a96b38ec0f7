"""The JSON Schema of every `-json` record (`cloudcast schema --events`): the cloudcast/v1 contract.

Each record is one JSON object on one line: the envelope (`schema`, `type`, `timestamp`) and the
fields its `type` carries. A record type gains fields only with a new schema version; programs
should ignore fields they do not know inside `matrix`, `nodes`, `hosts` and lab payloads.
"""

from __future__ import annotations

import json
from typing import Any

from cloudcast.cli.jsonout import SCHEMA

SCHEMA_ID = "https://cloudcast.dev/schemas/events/v1.json"

_STR = {"type": "string"}
_INT = {"type": "integer", "minimum": 0}
_NUM = {"type": "number"}
_BOOL = {"type": "boolean"}
_STRS = {"type": "array", "items": _STR}
_PAIR = {"type": "array", "items": _STR, "minItems": 2, "maxItems": 2}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _obj(props: dict[str, Any], *, required: list[str] | None = None, extra: bool = False) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": list(props) if required is None else required,
        "additionalProperties": extra,
    }


_COUNTS = _obj({"add": _INT, "change": _INT, "destroy": _INT})
_DIAGNOSTIC = _obj(
    {
        "severity": {"enum": ["error", "warning"]},
        "summary": _STR,
        "detail": _STR,
        "path": {**_STR, "description": "where in the spec, e.g. sites[2].cidr; (spec) for the whole"},
    }
)
_PROBE = _obj(
    {"ok": _BOOL, "latency_ms": _nullable(_NUM), "mtu_ok": _nullable(_BOOL), "error": _nullable(_STR)}
)
_PEER = _obj(
    {
        "name": _STR,
        "public_key": _STR,
        "endpoint": _nullable(_STR),
        "handshake_age": _nullable(_INT),
        "rx": _INT,
        "tx": _INT,
        "stale": _BOOL,
        "state": _nullable(_STR),
        "children": _nullable(_INT),
        "children_up": _nullable(_INT),
    },
    required=["name", "public_key", "endpoint", "handshake_age", "rx", "tx", "stale"],
)
_HOST_RESULT = _obj(
    {
        "name": _STR,
        "ok": _BOOL,
        "actions": _STRS,
        "error": _nullable(_STR),
        "public_key": _nullable(_STR),
        "seconds": _NUM,
    },
    required=["name", "ok"],
    extra=True,
)

#: type -> (description, payload properties, required payload properties or None for all, extra)
PAYLOADS: dict[str, tuple[str, dict[str, Any], list[str] | None, bool]] = {
    "progress": (
        "What a stage is doing, as it happens (the text people see on stderr without -json).",
        {
            "stage": _STR,
            "host": {**_STR, "description": "node or resource ('' for the stage)"},
            "message": _STR,
        },
        None,
        False,
    ),
    "error": (
        "The command failed; the last record. `exit_status` is the process's exit code.",
        {
            "error": {**_STR, "description": "the error's class, e.g. SpecError, TerraformError"},
            "message": _STR,
            "hint": _nullable(_STR),
            "exit_status": {"type": "integer"},
            "diagnostics": {"type": "array", "items": _DIAGNOSTIC},
        },
        ["error", "message", "hint", "exit_status"],
        False,
    ),
    "validate": (
        "`validate`: the spec's problems, each with its spec path (like `terraform validate -json`).",
        {
            "format_version": {"const": "1.0"},
            "valid": _BOOL,
            "error_count": _INT,
            "warning_count": _INT,
            "diagnostics": {"type": "array", "items": _DIAGNOSTIC},
            "checks": _STRS,
            "sites": _INT,
            "nodes": _INT,
        },
        ["format_version", "valid", "error_count", "warning_count", "diagnostics"],
        False,
    ),
    "plan": (
        "`plan` (and `apply` before it asks): what would change.",
        {
            "network": _STR,
            "changes": _BOOL,
            "resources": _COUNTS,
            "sites": {
                "type": "object",
                "additionalProperties": _obj({"add": _STRS, "change": _STRS, "destroy": _STRS}),
            },
            "nodes": {
                "type": "array",
                "items": _obj(
                    {
                        "name": _STR,
                        "site": _STR,
                        "overlay_ip": _STR,
                        "fqdn": _STR,
                        "vpn": _BOOL,
                        "behind_nat": _STR,
                        "peers": _STRS,
                    }
                ),
            },
            "pairs": _INT,
            "hosts": {
                "type": "array",
                "items": _obj(
                    {"node": _STR, "change": {"enum": ["add", "remove", "update"]}, "details": _STRS}
                ),
            },
            "hosts_counted": _BOOL,
            "routes": _STRS,
            "warnings": _STRS,
            "targets": {**_STRS, "description": "-target: the nodes the run is limited to; [] for all"},
            "planfile": _nullable(_STR),
        },
        ["network", "changes", "resources", "sites", "nodes", "pairs", "hosts", "routes", "warnings"],
        False,
    ),
    "apply": (
        "`apply` succeeded (a failed apply ends with `verify`, if it got that far, and `error`).",
        {
            "network": _STR,
            "ok": {"const": True},
            "resources": _COUNTS,
            "hosts": {"type": "array", "items": _HOST_RESULT},
            "targets": _STRS,
            "verified": _BOOL,
        },
        None,
        False,
    ),
    "destroy_plan": (
        "`destroy`, before it asks: the Terraform resources, machines and static hosts it removes.",
        {"network": _STR, "resources": _STRS, "machines": _STRS, "cleaned": _STRS},
        None,
        False,
    ),
    "destroy": (
        "`destroy` succeeded.",
        {"network": _STR, "ok": {"const": True}, "notes": _STRS},
        None,
        False,
    ),
    "verify": (
        "`verify` (and `apply` at its end): the matrix of ordered pairs; `ok` only when every pair "
        "and every don't-fragment probe passed.",
        {
            "ok": _BOOL,
            "mtu": _INT,
            "nodes": _STRS,
            "matrix": {
                "type": "object",
                "additionalProperties": {"type": "object", "additionalProperties": _PROBE},
            },
            "failed_pairs": {"type": "array", "items": _PAIR},
            "mtu_failed_pairs": {"type": "array", "items": _PAIR},
            "errors": {"type": "object", "additionalProperties": _STR},
            "tunnels": _STRS,
            "seconds": _NUM,
            "flows": {
                "type": "object",
                "description": "only with an access policy: every flow probed (verify/flows.py "
                "FlowResult.to_dict), its verdict and the violations",
                "required": ["ok", "checks", "violations"],
            },
        },
        ["ok", "mtu", "nodes", "matrix", "failed_pairs", "mtu_failed_pairs", "errors", "tunnels", "seconds"],
        False,
    ),
    "status": (
        "`status`: per VPN node, each peer's endpoint, handshake age and transfer.",
        {
            "nodes": {
                "type": "array",
                "items": _obj(
                    {
                        "name": _STR,
                        "up": _BOOL,
                        "error": _nullable(_STR),
                        "failed_over": _STRS,
                        "peers": {"type": "array", "items": _PEER},
                    }
                ),
            },
            "stale": {"type": "array", "items": _PAIR},
        },
        None,
        False,
    ),
    "output": (
        "`output`: the inventory; `hosts` for --format json, else the rendered `text`.",
        {
            "format": {"enum": ["json", "hosts", "ssh-config", "ansible"]},
            "hosts": {
                "type": "array",
                "items": _obj({"name": _STR, "overlay_ip": _STR, "fqdn": _STR}, extra=True),
            },
            "text": _STR,
        },
        ["format"],
        False,
    ),
}
#: `lab ...` records: the lab's own models (cloudcast/lab), whose fields the lab documents
LAB_TYPES = (
    "lab.up",
    "lab.down",
    "lab.status",
    "lab.host-up",
    "lab.host-down",
    "lab.host-reboot",
    "lab.image",
)


def event_schema() -> dict[str, Any]:
    envelope = {
        "schema": {"const": SCHEMA},
        "type": _STR,
        "timestamp": {
            "type": "string",
            "format": "date-time",
            "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$",
        },
    }
    defs: dict[str, Any] = {}
    for kind, (description, props, required, extra) in PAYLOADS.items():
        needed = list(props) if required is None else required
        defs[kind] = {
            "description": description,
            **_obj(
                {**envelope, "type": {"const": kind}, **props}, required=[*envelope, *needed], extra=extra
            ),
        }
    for kind in LAB_TYPES:
        defs[kind] = {
            "description": f"`{kind.replace('.', ' ')}`: the lab's record (see `cloudcast lab --help`).",
            **_obj({**envelope, "type": {"const": kind}}, required=list(envelope), extra=True),
        }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "cloudcast -json records (cloudcast/v1)",
        "description": __doc__.strip().splitlines()[0] if __doc__ else "",
        "type": "object",
        "required": list(envelope),
        "oneOf": [{"$ref": f"#/$defs/{kind}"} for kind in defs],
        "$defs": defs,
    }


def event_schema_text() -> str:
    return json.dumps(event_schema(), indent=2, sort_keys=False) + "\n"
