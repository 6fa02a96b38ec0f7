"""What every node shares: its managed files, the /etc/hosts block, the firewall and forwarding."""

from __future__ import annotations

import shlex

from cloudcast.bootstrap.actions.model import Action, ActionKind
from cloudcast.bootstrap.desired import Desired, ManagedFile
from cloudcast.bootstrap.facts import Facts
from cloudcast.bootstrap.paths import TABLE
from cloudcast.bootstrap.render import hosts_block, splice_hosts


def _remove(path: str) -> Action:
    return Action(ActionKind.REMOVE, f"remove {path}", f"rm -f {shlex.quote(path)}")


def file_actions(desired: Desired, facts: Facts) -> tuple[list[Action], set[str]]:
    """Files that differ are written, managed ones no longer wanted removed; also the paths changed."""
    actions: list[Action] = []
    changed: set[str] = set()
    wanted = {f.path for f in desired.files}
    for f in desired.files:
        if facts.hashes.get(f.path) != f.sha256:
            actions.append(Action(ActionKind.WRITE, f"write {f.path}", file=f))
            changed.add(f.path)
    for path in desired.paths.managed:
        if path not in wanted and path in facts.hashes:
            actions.append(_remove(path))
            changed.add(path)
    if hosts_block(facts.hosts, desired.network) != desired.hosts_block:
        text = splice_hosts(facts.hosts, desired.network, desired.hosts_block)
        hosts = ManagedFile(desired.paths.hosts, text.encode(), 0o644)
        what = f"update the cloudcast {desired.network} block in /etc/hosts"
        actions.append(Action(ActionKind.WRITE, what, file=hosts))
    return actions, changed


def firewall_sysctl_actions(desired: Desired, facts: Facts, changed: set[str]) -> list[Action]:
    """Load the firewall and the forwarding sysctls when they changed or are not in effect."""
    p = desired.paths
    actions: list[Action] = []
    if p.firewall in changed or not facts.table:
        command = f"nft -f {shlex.quote(p.firewall)}"
        actions.append(Action(ActionKind.FIREWALL, f"load nftables table inet {TABLE}", command))
    if desired.forwards and (p.sysctl in changed or not facts.ip_forward):
        command = f"sysctl -q -p {shlex.quote(p.sysctl)}"
        actions.append(Action(ActionKind.SYSCTL, "enable IPv4 forwarding", command))
    return actions


def firewall_teardown(facts: Facts) -> list[Action]:
    if not facts.table:
        return []
    command = f"nft delete table inet {TABLE}"
    return [Action(ActionKind.FIREWALL, f"delete nftables table inet {TABLE}", command)]


def files_teardown(desired: Desired, facts: Facts) -> list[Action]:
    """Managed files and key pairs removed, units reloaded, the /etc/hosts block taken out."""
    p = desired.paths
    actions = [_remove(path) for path in p.managed if path in facts.hashes]
    if facts.public_key is not None:
        actions.append(_remove(p.key))
    if facts.ipsec_public_key is not None:
        actions.append(_remove(p.ipsec_key))
    if facts.systemd and any(u in facts.hashes for u in (p.dropin, p.routes_unit, p.failover_unit)):
        actions.append(Action(ActionKind.SYSTEMD, "reload systemd units", "systemctl daemon-reload"))
    if hosts_block(facts.hosts, desired.network) is not None:
        text = splice_hosts(facts.hosts, desired.network, None)
        hosts = ManagedFile(p.hosts, text.encode(), 0o644)
        what = f"remove the cloudcast {desired.network} block from /etc/hosts"
        actions.append(Action(ActionKind.WRITE, what, file=hosts))
    return actions
