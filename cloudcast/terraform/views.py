"""Thin read-only views over Terraform's JSON (`show -json` of a plan)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SiteChanges:
    add: list[str] = field(default_factory=list)
    change: list[str] = field(default_factory=list)
    destroy: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.add or self.change or self.destroy)


class PlanView:
    """What a Terraform plan would do, per root module (one per site)."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self._doc = doc

    @property
    def changes(self) -> list[Mapping[str, Any]]:
        return [
            rc
            for rc in self._doc.get("resource_changes", []) or []
            if rc.get("change", {}).get("actions") not in (["no-op"], ["read"])
        ]

    def by_module(self) -> dict[str, SiteChanges]:
        """Resource addresses to add/change/destroy, keyed by root module name ('' = root)."""
        out: dict[str, SiteChanges] = {}
        for rc in self.changes:
            module = str(rc.get("module_address", "")).split(".")[1] if rc.get("module_address") else ""
            entry = out.setdefault(module, SiteChanges())
            actions = rc.get("change", {}).get("actions", [])
            addr = _short(str(rc.get("address", "")))
            if "create" in actions:
                entry.add.append(addr)
            if "delete" in actions:
                entry.destroy.append(addr)
            if actions == ["update"]:
                entry.change.append(addr)
        return out

    def created_instances(self, types: frozenset[str]) -> set[str]:
        """Index keys (node names) of instance-like resources of `types` that will be (re)created."""
        out: set[str] = set()
        for rc in self.changes:
            if rc.get("type") in types and "create" in rc.get("change", {}).get("actions", []):
                index = rc.get("index")
                if isinstance(index, str):
                    out.add(index)
        return out


def _short(address: str) -> str:
    """`module.site_a.aws_instance.node["web1"]` -> `aws_instance.node["web1"]`."""
    parts = address.split(".")
    if len(parts) > 2 and parts[0] == "module":
        return ".".join(parts[2:])
    return address
