"""What a plan would change: Terraform resources per site, nodes, peers, and host-side changes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cloudcast.plan.model import NetworkPlan
from cloudcast.plan.policy import policy_changes
from cloudcast.terraform.compile import module_name
from cloudcast.terraform.views import PlanView, SiteChanges


@dataclass
class HostChange:
    node: str
    kind: str  # "add" | "remove" | "update"
    details: list[str] = field(default_factory=list)


@dataclass
class PlanSummary:
    plan: NetworkPlan
    sites: dict[str, SiteChanges]
    hosts: list[HostChange]
    routes: list[str] = field(default_factory=list)
    # False for `plan --skip-bootstrap`: host changes are listed but do not count as changes.
    include_hosts: bool = True

    @property
    def has_changes(self) -> bool:
        hosts = bool(self.hosts) and self.include_hosts
        return bool(hosts or self.routes or any(not c.empty for c in self.sites.values()))

    def counts(self) -> tuple[int, int, int]:
        add = sum(len(c.add) for c in self.sites.values())
        change = sum(len(c.change) for c in self.sites.values())
        destroy = sum(len(c.destroy) for c in self.sites.values())
        return add, change, destroy

    def to_dict(self) -> dict[str, Any]:
        add, change, destroy = self.counts()
        return {
            "network": self.plan.name,
            "changes": self.has_changes,
            "resources": {"add": add, "change": change, "destroy": destroy},
            "sites": {
                name: {"add": c.add, "change": c.change, "destroy": c.destroy}
                for name, c in sorted(self.sites.items())
            },
            "nodes": [
                {
                    "name": n.name,
                    "site": n.site,
                    "overlay_ip": n.overlay_ip,
                    "fqdn": n.fqdn,
                    "vpn": n.vpn,
                    "behind_nat": n.behind_nat,
                    "peers": [link.peer for link in n.peers],
                }
                for n in self.plan.nodes
            ],
            "pairs": len(self.plan.pairs()),
            "hosts": [{"node": h.node, "change": h.kind, "details": h.details} for h in self.hosts],
            "hosts_counted": self.include_hosts,
            "routes": self.routes,
            "warnings": list(self.plan.warnings),
        }


def summarize(plan: NetworkPlan, tf_plan: dict[str, Any] | None, applied: dict[str, Any]) -> PlanSummary:
    """Combine Terraform's plan with the host-side diff against the last applied plan."""
    by_module = PlanView(tf_plan or {}).by_module()
    sites = {s.name: by_module.get(module_name(s.name), SiteChanges()) for s in plan.sites}
    return PlanSummary(plan=plan, sites=sites, hosts=host_changes(plan, applied.get("plan")))


def host_changes(plan: NetworkPlan, previous: dict[str, Any] | None) -> list[HostChange]:
    """Per node, what the bootstrapper would change compared with the last applied plan."""
    before = {n["name"]: n for n in (previous or {}).get("nodes", [])}
    out: list[HostChange] = []
    for node in plan.nodes:
        old = before.pop(node.name, None)
        peers = {link.peer for link in node.peers}
        if old is None:
            out.append(HostChange(node.name, "add", [f"overlay {node.overlay_ip}", f"{len(peers)} peers"]))
            continue
        details: list[str] = []
        old_peers = {p["peer"] for p in old.get("peers", [])}
        if added := sorted(peers - old_peers):
            details.append("peers +" + ",".join(added))
        if removed := sorted(old_peers - peers):
            details.append("peers -" + ",".join(removed))
        old_links = {p["peer"]: p for p in old.get("peers", [])}
        changed = [
            link.peer
            for link in node.peers
            if link.peer in old_links
            and (
                list(link.allowed_ips) != list(old_links[link.peer].get("allowed_ips", []))
                or link.endpoint != old_links[link.peer].get("endpoint")
                or link.keepalive != old_links[link.peer].get("keepalive")
            )
        ]
        if changed:
            details.append("peer settings ~" + ",".join(sorted(changed)))
        for key in ("overlay_ip", "forwards", "routes", "fqdn"):
            new_value = getattr(node, key)
            new_value = list(new_value) if isinstance(new_value, tuple) else new_value
            if old.get(key) != new_value:
                details.append(f"{key} {old.get(key)} -> {new_value}")
        details += policy_changes((previous or {}).get("policy"), plan.policy, node.name)
        if details:
            out.append(HostChange(node.name, "update", details))
    for name in sorted(before):
        out.append(HostChange(name, "remove", ["interface, files and names removed"]))
    prev_top = {k: (previous or {}).get(k) for k in ("mtu", "port", "domain", "transport")}
    if previous and any(prev_top[k] != getattr(plan, k) for k in prev_top):
        for node in plan.nodes:
            if not any(h.node == node.name for h in out):
                out.append(HostChange(node.name, "update", ["network settings changed"]))
    return out
