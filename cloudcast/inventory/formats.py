"""The inventory in formats other tools read: JSON, /etc/hosts, ssh_config, Ansible YAML.

Values are checked where they are written: one that would add a line, a field, a host pattern
or an Ansible template is refused (UnsafeValueError), never written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import yaml

from cloudcast.errors import UnsafeValueError
from cloudcast.inventory.hosts import Inventory
from cloudcast.plan.model import NetworkPlan, NodePlan
from cloudcast.sinks import is_hostname, one_line, one_word

#: an ssh_config(5) argument that needs no quotes
_SSH_BARE = re.compile(r"[A-Za-z0-9._~/:@%+,\[\]-]+")
#: what starts a Jinja expression, statement or comment: Ansible templates inventory variables
_JINJA = ("{{", "{%", "{#")


def _names(node: NodePlan) -> tuple[str, str]:
    """(name, fqdn), refused unless both are host names (each is one hosts field or Host pattern)."""
    for value in (node.name, node.fqdn):
        if not is_hostname(value):
            raise UnsafeValueError(f"node {node.name[:60]!r}: {value[:80]!r} is not a host name")
    return node.name, node.fqdn


def _ssh_value(value: str, what: str) -> str:
    """One ssh_config argument: bare when plain, else in double quotes (which cannot hold '"' or '\\')."""
    one_line(value, what)
    if '"' in value or "\\" in value:
        raise UnsafeValueError(f"{what}: refusing {value[:60]!r}: ssh_config cannot quote '\"' or '\\'")
    return value if _SSH_BARE.fullmatch(value) else f'"{value}"'


def _ansible_str(value: str, what: str) -> str:
    """A variable's value, refused if Ansible would template it or pass it to ssh as an option."""
    one_line(value, what)
    if any(mark in value for mark in _JINJA):
        raise UnsafeValueError(f"{what}: refusing {value[:60]!r}: Ansible would evaluate it as a template")
    if value.startswith("-"):
        raise UnsafeValueError(f"{what}: refusing {value[:60]!r}: ssh would take it for an option")
    return value


def render_inventory(
    plan: NetworkPlan, inv: Inventory, fmt: str, *, known_hosts: Sequence[Path] = ()
) -> str:
    """`fmt` is one of json, hosts, ssh-config, ansible.

    `known_hosts`: the files holding the hosts' recorded keys; the ssh config names them
    (`UserKnownHostsFile`) with `StrictHostKeyChecking yes`, so `ssh -F` checks every host key
    against what cloudcast recorded instead of failing (or trusting a new key).
    """
    rows = []
    for node in plan.nodes:
        host = inv.host(node.name)
        rows.append((node, host))
    if fmt == "hosts":
        lines = []
        for n, _ in rows:
            name, fqdn = _names(n)
            lines.append(f"{one_word(n.overlay_ip, f'node {name}: overlay_ip')}\t{fqdn} {name}\n")
        return "".join(lines)
    if fmt == "ssh-config":
        out = []
        files = " ".join(_ssh_value(str(path), "known_hosts file") for path in known_hosts)
        for n, h in rows:
            name, fqdn = _names(n)
            out.append(
                f"Host {name} {fqdn}\n"
                f"  HostName {_ssh_value(h.ssh_host, f'node {name}: ssh host')}\n"
                f"  Port {int(h.ssh_port)}\n"
                f"  User {_ssh_value(h.ssh_user, f'node {name}: ssh user')}\n"
            )
            if h.ssh_key:
                out.append(f"  IdentityFile {_ssh_value(h.ssh_key, f'node {name}: ssh key')}\n")
            if files:
                out.append(f"  UserKnownHostsFile {files}\n  StrictHostKeyChecking yes\n")
        return "".join(out)
    if fmt == "ansible":
        groups: dict[str, dict[str, object]] = {}
        for n, h in rows:
            name, fqdn = _names(n)
            vars_: dict[str, object] = {
                "ansible_host": h.ssh_host,
                "ansible_port": h.ssh_port,
                "ansible_user": h.ssh_user,
                "overlay_ip": n.overlay_ip,
                "fqdn": fqdn,
            }
            if h.ssh_key:
                vars_["ansible_ssh_private_key_file"] = h.ssh_key
            for key, value in vars_.items():
                if isinstance(value, str):
                    _ansible_str(value, f"node {name}: {key}")
            site = f"node {name}: site"
            group = _ansible_str(one_word(n.site.replace("-", "_"), site), site)
            groups.setdefault(group, {"hosts": {}})["hosts"][name] = vars_  # type: ignore[index]
        return yaml.safe_dump({"all": {"children": groups}}, sort_keys=True)
    return json.dumps(host_records(plan, inv), indent=2, sort_keys=True) + "\n"


def host_records(plan: NetworkPlan, inv: Inventory) -> list[dict[str, object]]:
    """Every node's host with its overlay address and name (what `--format json` prints)."""
    return [{**inv.host(n.name).to_dict(), "overlay_ip": n.overlay_ip, "fqdn": n.fqdn} for n in plan.nodes]
