"""Turn Terraform's `-json` event stream into progress events."""

from __future__ import annotations

from typing import Any

from cloudcast.events import Reporter
from cloudcast.terraform.runner import EventSink

_SHOWN = {"apply_start", "apply_complete", "apply_errored", "change_summary", "planned_change"}


def terraform_sink(reporter: Reporter) -> EventSink:
    def sink(event: dict[str, Any]) -> None:
        kind = event.get("type", "")
        if kind not in _SHOWN:
            return
        hook = event.get("hook") or event.get("change") or {}
        resource = (hook.get("resource") or {}).get("addr", "")
        if kind == "change_summary":
            reporter.event("", "terraform", str(event.get("@message", "")))
        elif kind == "planned_change":
            reporter.event(resource, "terraform", f"will {hook.get('action', 'change')}")
        elif kind == "apply_start":
            reporter.event(resource, "terraform", f"{hook.get('action', 'apply')}…")
        elif kind == "apply_complete":
            secs = hook.get("elapsed_seconds")
            reporter.event(resource, "terraform", f"done ({secs}s)" if secs is not None else "done")
        elif kind == "apply_errored":
            reporter.event(resource, "terraform", "failed")

    return sink
