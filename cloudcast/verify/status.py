"""Live tunnel state per node, like `weave status peers`.

WireGuard: `wg show IF dump` (latest handshake, transfer). IPsec: `swanctl --list-sas` (IKE SA
state and age, child SAs installed out of those planned, bytes through them).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from rich.table import Table

from cloudcast.bootstrap.desired import ipsec_conns
from cloudcast.bootstrap.facts import parse_facts
from cloudcast.bootstrap.paths import Paths
from cloudcast.inventory.hosts import Inventory
from cloudcast.plan.model import NetworkPlan
from cloudcast.ssh import Fleet, describe
from cloudcast.ssh.wgdump import PeerFact, peer_lines
from cloudcast.state.store import WorkDir, load_state
from cloudcast.verify.probe import VerifyResult
from cloudcast.verify.table import grid, to_text

STALE_AFTER = 180  # seconds: WireGuard re-handshakes every 2 minutes on a live tunnel


@dataclass(frozen=True, slots=True)
class PeerStatus:
    name: str  # the node this key belongs to, or the key itself when unknown
    public_key: str
    endpoint: str | None
    handshake_age: int | None  # seconds since the latest handshake (IPsec: IKE SA age); None: never
    rx: int
    tx: int
    state: str | None = None  # IPsec: the IKE SA's state (ESTABLISHED, CONNECTING...); None: WireGuard
    children: int | None = None  # IPsec: child SAs planned for this peer
    children_up: int | None = None  # IPsec: child SAs INSTALLED

    @property
    def stale(self) -> bool:
        if self.state is not None or self.children is not None:
            return self.state != "ESTABLISHED" or (self.children_up or 0) < (self.children or 0)
        return self.handshake_age is None or self.handshake_age > STALE_AFTER

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "public_key": self.public_key,
            "endpoint": self.endpoint,
            "handshake_age": self.handshake_age,
            "rx": self.rx,
            "tx": self.tx,
            "stale": self.stale,
            **(
                {"state": self.state, "children": self.children, "children_up": self.children_up}
                if self.children is not None
                else {}
            ),
        }


@dataclass(frozen=True, slots=True)
class NodeStatus:
    name: str
    up: bool
    peers: tuple[PeerStatus, ...] = ()
    error: str | None = None
    failed_over: tuple[str, ...] = ()  # primaries its failover agent found down

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "up": self.up,
            "error": self.error,
            "failed_over": list(self.failed_over),
            "peers": [p.to_dict() for p in self.peers],
        }


@dataclass
class StatusResult:
    nodes: list[NodeStatus] = field(default_factory=list)

    @property
    def stale(self) -> list[tuple[str, str]]:
        return [(n.name, p.name) for n in self.nodes for p in n.peers if p.stale]

    def to_dict(self) -> dict[str, Any]:
        return {"type": "status", "nodes": [n.to_dict() for n in self.nodes]}

    def render(self) -> str:
        lines = []
        for node in self.nodes:
            if node.error:
                lines.append(f"{node.name}: {node.error}")
                continue
            if not node.up:
                lines.append(f"{node.name}: {node.error or 'interface down'}")
                continue
            down = f"  (failed over: {', '.join(node.failed_over)} down, its traffic on the standby)"
            lines.append(f"{node.name}:{down if node.failed_over else ''}")
            if node.peers:
                lines.append(to_text(_peer_table(node.peers), indent=2))
        return "\n".join(lines) + "\n"


def _peer_table(peers: Collection[PeerStatus]) -> Table:
    """One row per peer: WireGuard's handshake, or IPsec's IKE state and child SAs."""
    table = grid()
    for justify in ("left",) * 5 + ("right", "right", "left"):
        table.add_column(justify=justify, no_wrap=True)
    for p in peers:
        age = "never" if p.handshake_age is None else f"{p.handshake_age}s ago"
        if p.children is not None:
            shake = f"established {age}" if p.handshake_age is not None else ""
            cells = [p.state or "no IKE SA", shake, f"{p.children_up or 0}/{p.children} child SAs"]
        else:
            cells = ["handshake", age, ""]
        traffic = [f"rx {_size(p.rx)}", f"tx {_size(p.tx)}", "STALE" if p.stale else ""]
        table.add_row(p.name, p.endpoint or "(no endpoint)", *cells, *traffic)
    return table


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def status_script(interface: str) -> str:
    i = shlex.quote(interface)
    state = shlex.quote(Paths(interface).failover_state)
    # peer lines: never the interface's private key nor a preshared key (see `peer_lines`)
    return f"""
if ip link show dev {i} >/dev/null 2>&1; then
  echo iface=1
  {peer_lines(interface)}
fi
[ -f {state} ] && sed 's/^/failed_over=/' {state}
echo "now=$(date +%s)"
"""


def ipsec_status_script() -> str:
    return """
if swanctl --stats >/dev/null 2>&1; then
  echo iface=1
  swanctl --list-sas 2>/dev/null | sed 's/^/sa\t/'
fi
echo "now=$(date +%s)"
"""


_IKE = re.compile(r"^(\S+): #\d+, ([A-Z_]+), IKEv\d")
_REMOTE = re.compile(r"^  remote '[^']*' @ (\S+)\[\d+\]")
_ESTABLISHED = re.compile(r"^  established (\d+)s ago")
_CHILD = re.compile(r"^  (\S+): #\d+, reqid \d+, ([A-Z_]+),")
_BYTES = re.compile(r"^    (in|out) +\S+, +(\d+) bytes")


@dataclass
class _Sa:
    state: str
    endpoint: str | None = None
    age: int | None = None
    up: set[str] = field(default_factory=set)
    rx: int = 0
    tx: int = 0


def parse_sas(text: str) -> dict[str, PeerStatus]:
    """Connection name -> state from `swanctl --list-sas` (lines prefixed `sa<TAB>`)."""
    found: dict[str, _Sa] = {}
    sa: _Sa | None = None
    for raw in text.splitlines():
        if not raw.startswith("sa\t"):
            continue
        line = raw[3:]
        if m := _IKE.match(line):
            sa = found.setdefault(m.group(1), _Sa(m.group(2)))
            if m.group(2) == "ESTABLISHED":  # of duplicate IKE SAs, an established one counts
                sa.state = "ESTABLISHED"
        elif sa is None:
            continue
        elif m := _REMOTE.match(line):
            sa.endpoint = m.group(1)
        elif m := _ESTABLISHED.match(line):
            sa.age = int(m.group(1)) if sa.age is None else min(sa.age, int(m.group(1)))
        elif m := _CHILD.match(line):
            if m.group(2) == "INSTALLED":
                sa.up.add(m.group(1))
        elif m := _BYTES.match(line):
            if m.group(1) == "in":
                sa.rx += int(m.group(2))
            else:
                sa.tx += int(m.group(2))
    return {
        name: PeerStatus(name, "", x.endpoint, x.age, x.rx, x.tx, state=x.state, children_up=len(x.up))
        for name, x in found.items()
    }


def peer_status(peer: PeerFact, now: int, names: Mapping[str, str]) -> PeerStatus:
    age = max(0, now - peer.latest_handshake) if peer.latest_handshake else None
    return PeerStatus(
        name=names.get(peer.public_key, peer.public_key[:10] + "…"),
        public_key=peer.public_key,
        endpoint=peer.endpoint,
        handshake_age=age,
        rx=peer.rx,
        tx=peer.tx,
    )


def status(
    plan: NetworkPlan,
    inventory: Inventory,
    workdir: WorkDir,
    fleet: Fleet,
    *,
    public_keys: Mapping[str, str] | None = None,
    only: Collection[str] | None = None,
) -> StatusResult:
    """Per VPN node (or those in `only`): each peer's endpoint, latest handshake age, transfer, stale flag.

    Peers are named by their public keys: `public_keys`, else those in `workdir`'s state.
    """
    keys = public_keys if public_keys is not None else load_state(workdir).public_keys
    names = {key: name for name, key in keys.items()}
    known = {h.name for h in inventory.hosts}

    def one(name: str) -> NodeStatus:
        transport = fleet.connect(inventory.host(name))
        try:
            out = transport.run("sh -s", stdin=status_script(plan.interface).encode(), timeout=30)
        finally:
            transport.close()
        facts = parse_facts(out.stdout)
        peers = tuple(peer_status(p, facts.now, names) for p in facts.peers)
        ordered = tuple(sorted(peers, key=lambda p: p.name))
        return NodeStatus(name, facts.iface, ordered, failed_over=facts.failed_over)

    def one_ipsec(name: str) -> NodeStatus:
        transport = fleet.connect(inventory.host(name))
        try:
            out = transport.run("sh -s", stdin=ipsec_status_script().encode(), timeout=30)
        finally:
            transport.close()
        running = "iface=1" in out.stdout.splitlines()
        if not running:
            return NodeStatus(name, False, error="charon is not running")
        sas = parse_sas(out.stdout)
        planned = ipsec_conns(plan, plan.node(name), inventory, dict.fromkeys(plan.pairs(), ""))
        peers = []
        for c in planned:
            live = sas.get(c.name)
            base = live or PeerStatus(c.peer, "", c.remote_addr, None, 0, 0, state=None, children_up=0)
            peers.append(replace(base, name=c.peer, children=len(c.children)))
        return NodeStatus(name, running, tuple(sorted(peers, key=lambda p: p.name)))

    vpn = [n.name for n in plan.nodes if n.vpn and (only is None or n.name in only)]
    probe = one_ipsec if plan.transport == "ipsec" else one
    outcomes = fleet.fan_out([n for n in vpn if n in known], probe, key=lambda n: n)
    result = StatusResult()
    for name in vpn:
        outcome = outcomes.get(name)
        if outcome is not None and outcome.value is not None:
            result.nodes.append(outcome.value)
            continue
        err = outcome.error if outcome is not None else None
        message = "not in the inventory" if err is None else describe(err)
        result.nodes.append(NodeStatus(name, False, error=message))
    return result


def explain_failed_pairs(failed: Collection[tuple[str, str]], live: StatusResult) -> list[str]:
    """One line per failed pair whose source peers directly with its target: that tunnel's state.

    Tells a dead path (no handshake, nothing received) from a live tunnel whose traffic is lost
    beyond it (routes, firewall); pairs that go through a hub or relay have no direct tunnel.
    """
    nodes = {n.name: n for n in live.nodes}
    lines = []
    for src, dst in failed:
        node = nodes.get(src)
        if node is None:
            continue
        if not node.up:
            lines.append(f"{src} -> {dst}: {node.error or 'tunnel interface down'} on {src}")
            continue
        peer = next((p for p in node.peers if p.name == dst), None)
        if peer is None:
            continue
        age = "never" if peer.handshake_age is None else f"{peer.handshake_age}s ago"
        what = f"IKE SA {peer.state or 'missing'}" if peer.children is not None else f"handshake {age}"
        lines.append(
            f"{src} -> {dst}: endpoint {peer.endpoint or '(none: waits for the peer)'}, {what}, "
            f"rx {_size(peer.rx)}, tx {_size(peer.tx)}"
        )
    return lines


def explain_failures(
    result: VerifyResult,
    plan: NetworkPlan,
    inventory: Inventory,
    workdir: WorkDir,
    fleet: Fleet,
    *,
    public_keys: Mapping[str, str] | None = None,
    down: Collection[str] = (),
) -> None:
    """Fill `result.tunnels` with the live state of the failed pairs' tunnels (no-op when none failed)."""
    sources = {src for src, _ in result.failed_pairs} - set(down) - set(result.errors)
    if not sources:
        return
    live = status(plan, inventory, workdir, fleet, public_keys=public_keys, only=sources)
    result.tunnels = explain_failed_pairs(result.failed_pairs, live)
