"""The inventory in formats other tools read: JSON, /etc/hosts, ssh_config, Ansible YAML."""

from __future__ import annotations

import json

import yaml

from cloudcast.inventory.hosts import Inventory
from cloudcast.plan.model import NetworkPlan


def render_inventory(plan: NetworkPlan, inv: Inventory, fmt: str) -> str:
    """`fmt` is one of json, hosts, ssh-config, ansible."""
    rows = []
    for node in plan.nodes:
        host = inv.host(node.name)
        rows.append((node, host))
    if fmt == "hosts":
        return "".join(f"{n.overlay_ip}\t{n.fqdn} {n.name}\n" for n, _ in rows)
    if fmt == "ssh-config":
        out = []
        for n, h in rows:
            out.append(
                f"Host {n.name} {n.fqdn}\n  HostName {h.ssh_host}\n  Port {h.ssh_port}\n  User {h.ssh_user}\n"
            )
            if h.ssh_key:
                out.append(f"  IdentityFile {h.ssh_key}\n")
        return "".join(out)
    if fmt == "ansible":
        groups: dict[str, dict[str, object]] = {}
        for n, h in rows:
            vars_ = {
                "ansible_host": h.ssh_host,
                "ansible_port": h.ssh_port,
                "ansible_user": h.ssh_user,
                "overlay_ip": n.overlay_ip,
                "fqdn": n.fqdn,
            }
            if h.ssh_key:
                vars_["ansible_ssh_private_key_file"] = h.ssh_key
            groups.setdefault(n.site.replace("-", "_"), {"hosts": {}})["hosts"][n.name] = vars_  # type: ignore[index]
        return yaml.safe_dump({"all": {"children": groups}}, sort_keys=True)
    data = [{**h.to_dict(), "overlay_ip": n.overlay_ip, "fqdn": n.fqdn} for n, h in rows]
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
