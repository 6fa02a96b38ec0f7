"""Prove the overlay: from every node, ping every other node.

VPN nodes are probed at their overlay address; members of a gateways/hub site (which run no
VPN) at their private (LAN) address, so member-to-member pairs prove the site LANs reach each
other through the gateways, and gateway-to-remote-member pairs the routes behind them.

Each node runs all of its probes in one SSH command (in parallel on the host), and nodes are
probed in parallel. A pair is retried for a few seconds before it counts as down: a fresh
mesh can lose the first packets of a pair while both ends race to handshake.
"""

from __future__ import annotations

import math
import shlex
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from cloudcast.bootstrap.paths import LIBIPSEC_MTU
from cloudcast.inventory.hosts import Inventory
from cloudcast.plan.model import NetworkPlan
from cloudcast.sinks import ip_or_none, is_hostname
from cloudcast.ssh import Fleet, describe
from cloudcast.verify.flows import FlowResult, verify_flows
from cloudcast.verify.table import grid, to_text

STAGE = "verify"
#: seconds to keep retrying a host's SSH: the hosts verify and status reach should be up already
CONNECT_BUDGET = 10.0


@dataclass(frozen=True, slots=True)
class Probe:
    ok: bool
    latency_ms: float | None = None
    mtu_ok: bool | None = None  # the don't-fragment probe at the planned MTU (None: not tried)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "latency_ms": self.latency_ms, "mtu_ok": self.mtu_ok, "error": self.error}


@dataclass
class VerifyResult:
    nodes: list[str]
    mtu: int
    lans: bool = False  # members (at their LAN addresses) are part of the matrix
    matrix: dict[str, dict[str, Probe]] = field(default_factory=dict)  # src -> dst -> probe
    errors: dict[str, str] = field(default_factory=dict)  # src nodes that could not be probed
    tunnels: list[str] = field(default_factory=list)  # state of the failed pairs' tunnels
    seconds: float = 0.0
    flows: FlowResult | None = None  # the access policy's flows (None: the spec has no policy)

    @property
    def failed_pairs(self) -> list[tuple[str, str]]:
        return [(s, d) for s, row in self.matrix.items() for d, p in row.items() if not p.ok]

    @property
    def mtu_failed_pairs(self) -> list[tuple[str, str]]:
        return [(s, d) for s, row in self.matrix.items() for d, p in row.items() if p.mtu_ok is False]

    @property
    def ok(self) -> bool:
        flows_ok = self.flows is None or self.flows.ok
        return not self.failed_pairs and not self.mtu_failed_pairs and flows_ok

    def render_matrix(self) -> str:
        """An N x N grid (rows probe columns): ✓ reached, ✗ not, · itself, - not probed (the
        policy denies echo); then a summary, and the policy's flows."""
        width = max([len(n) for n in self.nodes] + [4])
        table = grid()
        table.show_header = True
        table.add_column("", min_width=width, no_wrap=True)
        for name in self.nodes:
            table.add_column(name, justify="center", min_width=width, no_wrap=True)
        for src in self.nodes:
            cells = []
            for dst in self.nodes:
                probe = self.matrix.get(src, {}).get(dst)
                if src == dst or self.matrix.get(src) is None or probe is not None:
                    cells.append("·" if src == dst else "✓" if probe and probe.ok else "✗")
                else:
                    cells.append("-")
            table.add_row(src, *cells)
        lines = [to_text(table)]
        total = sum(len(row) for row in self.matrix.values())
        bad = self.failed_pairs
        over = "the overlay and site LANs" if self.lans else "the overlay"
        lines.append(f"{total - len(bad)}/{total} pairs reachable over {over}")
        if bad:
            lines.append("unreachable: " + ", ".join(f"{a}->{b}" for a, b in bad))
        mtu_bad = self.mtu_failed_pairs
        if mtu_bad:
            lines.append(
                f"MTU {self.mtu} does not fit (don't-fragment probe lost): "
                + ", ".join(f"{a}->{b}" for a, b in mtu_bad)
            )
        elif total - len(bad):
            lines.append(f"don't-fragment probes at MTU {self.mtu} passed")
        for src, err in sorted(self.errors.items()):
            lines.append(f"{src}: {err}")
        if self.tunnels:
            lines.append("tunnels of the unreachable pairs:")
            lines += [f"  {line}" for line in self.tunnels]
        text = "\n".join(lines) + "\n"
        return text + self.flows.render(self.nodes) if self.flows is not None else text

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "mtu": self.mtu,
            "nodes": list(self.nodes),
            "matrix": {s: {d: p.to_dict() for d, p in row.items()} for s, row in self.matrix.items()},
            "failed_pairs": [list(p) for p in self.failed_pairs],
            "mtu_failed_pairs": [list(p) for p in self.mtu_failed_pairs],
            "errors": dict(self.errors),
            "tunnels": list(self.tunnels),
            "seconds": round(self.seconds, 3),
            **({"flows": self.flows.to_dict()} if self.flows is not None else {}),
        }


def probe_script(targets: list[str], *, mtu: int, retry_seconds: float) -> str:
    """Shell that pings every target in parallel, retrying each until `retry_seconds` pass.

    Prints `ok ADDR MS MTU_OK` or `fail ADDR` per target.
    """
    size = mtu - 28  # IPv4 + ICMP headers
    tries = max(2, math.ceil(retry_seconds / 2.2))  # a failed try costs ~2.2 s: two 1 s waits, a pause
    # Few processes per probe: with N nodes probing N-1 peers each at once, every fork counts.
    # The full-size don't-fragment ping proves reachability and the MTU together; only when it
    # fails does a small ping tell "unreachable" from "MTU too big".
    return f"""
probe() {{
  n=0
  while :; do
    if out=$(ping -n -c 1 -W 1 -M do -s {size} "$1" 2>&1); then m=1; break; fi
    if out=$(ping -n -c 1 -W 1 "$1" 2>&1); then
      m=0
      ping -n -c 2 -i 0.2 -W 1 -M do -s {size} "$1" >/dev/null 2>&1 && m=1
      break
    fi
    n=$((n + 1))
    if [ "$n" -ge {tries} ]; then echo "fail $1"; return; fi
    sleep 0.2
  done
  ms=${{out#*time=}}
  ms=${{ms%% ms*}}
  case "$ms" in *[!0-9.]*|"") ms=0 ;; esac
  echo "ok $1 $ms $m"
}}
for t in {" ".join(shlex.quote(t) for t in targets)}; do probe "$t" & done
wait
"""


def parse_probes(text: str) -> dict[str, Probe]:
    """Address -> probe from what `probe_script` printed."""
    found: dict[str, Probe] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == "ok":
            try:
                ms = float(parts[2])
            except ValueError:
                ms = None
            found[parts[1]] = Probe(True, ms, parts[3] == "1")
        elif len(parts) == 2 and parts[0] == "fail":
            found[parts[1]] = Probe(False, error="no reply")
    return found


def verify(
    plan: NetworkPlan,
    inventory: Inventory,
    fleet: Fleet,
    *,
    retry_seconds: float = 15.0,
    down: Collection[str] = (),
) -> VerifyResult:
    """Probe every ordered pair of nodes (see the module docstring); never raises for one node."""
    started = time.monotonic()
    reporter = fleet.reporter
    addr = probe_addresses(plan, inventory)
    # kernel-libipsec's TUN device has a fixed MTU (1400): IPsec is probed at that size
    mtu = min(plan.mtu, LIBIPSEC_MTU) if plan.transport == "ipsec" else plan.mtu
    result = VerifyResult(
        nodes=[n.name for n in plan.nodes if n.name in addr],
        mtu=mtu,
        lans=any(not n.vpn for n in plan.nodes if n.name in addr),
    )
    known = {h.name for h in inventory.hosts}

    def run(name: str) -> dict[str, Probe]:
        others = [n for n in result.nodes if n != name and _echoes(plan, name, n)]
        if not others:
            return {}
        script = probe_script([addr[o] for o in others], mtu=mtu, retry_seconds=retry_seconds)
        transport = fleet.connect(inventory.host(name))
        try:
            out = transport.run("sh -s", stdin=script.encode(), timeout=retry_seconds + 30)
        finally:
            transport.close()
        by_addr = parse_probes(out.stdout)
        row = {o: by_addr.get(addr[o], Probe(False, error="no result")) for o in others}
        good = sum(p.ok for p in row.values())
        reporter.event(name, STAGE, f"{good}/{len(row)} peers reachable")
        return row

    # nodes the bootstrapper found down are not connected to again (they are probed as targets)
    sources = [n for n in result.nodes if n in known and n not in down]
    outcomes = fleet.fan_out(sources, run, key=lambda n: n)
    for src in result.nodes:
        others = [n for n in result.nodes if n != src]
        outcome = outcomes.get(src)
        if outcome is not None and outcome.ok and outcome.value is not None:
            result.matrix[src] = outcome.value
            continue
        err = outcome.error if outcome is not None else None
        if err is not None:
            message = describe(err)
        else:
            message = "down (unreachable over SSH)" if src in down else "not in the inventory"
        result.errors[src] = message
        result.matrix[src] = {o: Probe(False, error=message) for o in others}
        reporter.event(src, STAGE, f"cannot probe from here: {message}")
    if plan.policy is not None:
        result.flows = verify_flows(plan, inventory, fleet, {n: addr[n] for n in result.nodes}, down=down)
    result.seconds = time.monotonic() - started
    return result


def _echoes(plan: NetworkPlan, src: str, dst: str) -> bool:
    """`src` may ping `dst`: always without a policy; with one, by network.ping or a rule."""
    return plan.policy is None or plan.policy.allows(src, dst, "icmp")


def probe_addresses(plan: NetworkPlan, inventory: Inventory) -> dict[str, str]:
    """Node -> the address others probe: overlay for VPN nodes, the private one for members."""
    known = {h.name: h for h in inventory.hosts}
    out: dict[str, str] = {}
    for node in plan.nodes:
        if node.vpn:
            out[node.name] = node.overlay_ip
            continue
        host = known.get(node.name)
        address = node.private_ip or (host.private_ip if host else None)
        # an address goes into the probe script: an IP address or a host name, nothing else
        address = ip_or_none(address) or (address if address and is_hostname(address) else None)
        if address:
            out[node.name] = address
    return out
