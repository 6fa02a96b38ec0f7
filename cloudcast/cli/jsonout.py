"""`--json`: one JSON object per line, each in the one envelope every command shares.

    {"schema": "cloudcast/v1", "type": "...", "timestamp": "2025-01-31T12:00:00.000000Z", ...}

The payload's fields sit beside the envelope's (as in Terraform's `-json` lines); which fields a
`type` carries is the JSON Schema `cloudcast schema --events` prints (`cli/eventschema.py`).
Errors are records too (`type: "error"`, with the exit status), so a pipeline reading stdout
never has to scrape stderr.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from rich.console import Console

from cloudcast.errors import CloudcastError, ExitStatus, SpecError

SCHEMA = "cloudcast/v1"
ENVELOPE = ("schema", "type", "timestamp")


def timestamp() -> str:
    """RFC 3339 in UTC with microseconds, like Terraform's `@timestamp`."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record(kind: str, payload: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The envelope around `payload`; a payload key that would shadow the envelope is refused."""
    data = dict(payload or {})
    clash = [key for key in ENVELOPE if key in data]
    if clash:
        raise ValueError(f"payload of {kind!r} has envelope keys {clash}")
    return {"schema": SCHEMA, "type": kind, "timestamp": timestamp(), **data}


def emit(console: Console, kind: str, payload: Mapping[str, Any] | None = None) -> None:
    """Write one record as one line (no markup, no wrapping)."""
    line = json.dumps(record(kind, payload), sort_keys=False)
    console.print(line, markup=False, highlight=False, soft_wrap=True)


def diagnostics(problems: list[str]) -> list[dict[str, Any]]:
    """Spec problems as `terraform validate -json` diagnostics, each naming its spec path.

    A problem line is `path: message` (`spec/load.py`, `spec/check.py`); the path is the part
    before the first ": " when it reads like one (`sites[2].cidr`, `(spec)`).
    """
    out = []
    for line in problems:
        path, sep, summary = line.partition(": ")
        if not sep or " " in path or not path:
            path, summary = "(spec)", line
        out.append({"severity": "error", "summary": summary, "detail": line, "path": path})
    return out


def error_payload(exc: BaseException, status: ExitStatus) -> dict[str, Any]:
    """The `error` record for an exception (one line, the fix, the exit status)."""
    if isinstance(exc, CloudcastError):
        payload: dict[str, Any] = {
            "error": type(exc).__name__,
            "message": exc.message,
            "hint": exc.hint,
            "exit_status": int(status),
        }
        if isinstance(exc, SpecError):
            payload["diagnostics"] = diagnostics(exc.problems)
        return payload
    return {
        "error": "InternalError",
        "message": f"internal error: {type(exc).__name__}: {exc}",
        "hint": "run with --debug for a traceback",
        "exit_status": int(status),
    }
