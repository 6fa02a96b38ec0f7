"""Prove the access policy both ways: every allowed flow gets through, denied ones do not.

From the plan's compiled policy: every flow a rule allows (each source to each destination, on
the first and last port of each span), and a sample of flows it denies (sources a port of the
destination is not open to, SSH over the overlay, ICMP echo when `network.ping` is off). Where
nothing listens on a probed port, the destination runs a probe listener (socat, for a minute);
then every source probes its flows in parallel, in one SSH command:

- tcp: a connect; established or refused (the host's own RST) means the firewall let it in,
  a timeout means it dropped it;
- udp: a datagram; a reply or an ICMP port unreachable means it got in, silence that it did
  not (a UDP service that never answers reads as blocked);
- icmp: an echo request.

A flow is a violation when it is allowed and blocked, or denied and reached.
"""

from __future__ import annotations

import hashlib
import shlex
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cloudcast.inventory.hosts import Inventory
from cloudcast.plan.model import NetworkPlan
from cloudcast.plan.policy import PolicyPlan
from cloudcast.ssh import Fleet, describe
from cloudcast.verify.table import grid, to_text

STAGE = "verify"
#: denied flows probed at most (a deterministic sample beyond)
MAX_DENIED = 48
#: seconds a probe listener lives at most (it is stopped as soon as the probes are done)
LISTEN_SECONDS = 90
PROBE_WORD = "cc-probe"


class Verdict(StrEnum):
    REACHABLE = "allowed-reachable"
    BLOCKED = "denied-blocked"
    LOST = "violation: allowed but blocked"
    LEAKED = "violation: denied but reached"
    UNKNOWN = "not probed"


@dataclass(frozen=True, slots=True)
class Flow:
    """One probe: `src` to `dst` over `protocol` (to `port`), and whether the policy allows it."""

    src: str
    dst: str
    protocol: str  # tcp | udp | icmp
    port: int | None  # None for icmp
    allowed: bool
    rule: int | None = None  # the rule allowing it (None: denied, or echo by network.ping)

    @property
    def what(self) -> str:
        return "icmp echo" if self.port is None else f"{self.protocol}/{self.port}"

    def __str__(self) -> str:
        return f"{self.src} -> {self.dst} {self.what}"


@dataclass(frozen=True, slots=True)
class FlowCheck:
    flow: Flow
    reached: bool | None  # None: not probed (the source could not be reached)
    detail: str = ""  # open, refused, reply, timeout, no-reply, or why it was not probed

    @property
    def verdict(self) -> Verdict:
        if self.reached is None:
            return Verdict.UNKNOWN
        if self.flow.allowed:
            return Verdict.REACHABLE if self.reached else Verdict.LOST
        return Verdict.LEAKED if self.reached else Verdict.BLOCKED

    @property
    def ok(self) -> bool:
        return self.verdict in (Verdict.REACHABLE, Verdict.BLOCKED)

    def to_dict(self) -> dict[str, Any]:
        f = self.flow
        return {
            "src": f.src,
            "dst": f.dst,
            "protocol": f.protocol,
            "port": f.port,
            "allowed": f.allowed,
            "rule": f.rule,
            "reached": self.reached,
            "detail": self.detail,
            "verdict": self.verdict.value,
            "ok": self.ok,
        }


@dataclass
class FlowResult:
    checks: list[FlowCheck] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # node -> why it could not take part
    listeners: dict[str, list[str]] = field(default_factory=dict)  # node -> probe listeners run
    seconds: float = 0.0

    @property
    def violations(self) -> list[FlowCheck]:
        return [c for c in self.checks if not c.ok]

    @property
    def ok(self) -> bool:
        return not self.violations

    def count(self, verdict: Verdict) -> int:
        return sum(1 for c in self.checks if c.verdict is verdict)

    def render(self, nodes: list[str]) -> str:
        """A grid per ordered pair (✓ allowed and reachable, ⊘ denied and blocked, ✗ a
        violation), the totals, then one line per violation."""
        cells: dict[tuple[str, str], set[str]] = {}
        for c in self.checks:
            mark = {Verdict.REACHABLE: "✓", Verdict.BLOCKED: "⊘"}.get(c.verdict, "✗")
            cells.setdefault((c.flow.src, c.flow.dst), set()).add(mark)
        shown = [n for n in nodes if any(n in pair for pair in cells)]
        width = max([len(n) for n in shown] + [4])
        table = grid()
        table.show_header = True
        table.add_column("", min_width=width, no_wrap=True)
        for name in shown:
            table.add_column(name, justify="center", min_width=width, no_wrap=True)
        for src in shown:
            row = []
            for dst in shown:
                marks = cells.get((src, dst), set())
                row.append("·" if src == dst else "".join(m for m in "✗✓⊘" if m in marks) or " ")
            table.add_row(src, *row)
        lines = ["policy flows (✓ allowed and reachable, ⊘ denied and blocked, ✗ violation):"]
        lines.append(to_text(table))
        lines.append(
            f"{self.count(Verdict.REACHABLE)} allowed flows reachable, "
            f"{self.count(Verdict.BLOCKED)} denied flows blocked, {len(self.violations)} violations"
        )
        for c in self.violations:
            why = f"policy[{c.flow.rule}]" if c.flow.rule is not None else "allowed by network.ping"
            if not c.flow.allowed:
                why = "no rule allows it"
            lines.append(f"  ✗ {c.flow}: {c.verdict.value} ({why}; {c.detail})")
        for node, err in sorted(self.errors.items()):
            lines.append(f"{node}: {err}")
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [c.to_dict() for c in self.checks],
            "allowed_reachable": self.count(Verdict.REACHABLE),
            "denied_blocked": self.count(Verdict.BLOCKED),
            "violations": [c.to_dict() for c in self.violations],
            "errors": dict(self.errors),
            "listeners": {k: list(v) for k, v in sorted(self.listeners.items())},
            "seconds": round(self.seconds, 3),
        }


def _probe_ports(spans: tuple[tuple[int, int], ...]) -> list[int]:
    return list(dict.fromkeys(p for first, last in spans for p in (first, last)))


def plan_flows(plan: NetworkPlan, nodes: Collection[str], *, max_denied: int = MAX_DENIED) -> list[Flow]:
    """The flows to probe between `nodes` (those with an address): every allowed one, then a
    deterministic sample of at most `max_denied` denied ones."""
    policy = plan.policy
    if policy is None:
        return []
    names = [n.name for n in plan.nodes if n.name in nodes]
    allowed: dict[tuple[str, str, str, int | None], Flow] = {}
    for entry in policy.nodes:
        if entry.node not in nodes:
            continue
        for allow in entry.allow:
            ports: list[int | None] = [None] if allow.protocol == "icmp" else [*_probe_ports(allow.ports)]
            for src in allow.sources:
                for port in ports:
                    key = (src, entry.node, allow.protocol, port)
                    if src in nodes and key not in allowed:
                        allowed[key] = Flow(src, entry.node, allow.protocol, port, True, allow.rule)
    return [*allowed.values(), *_denied(plan, policy, names, max_denied)]


def _denied(plan: NetworkPlan, policy: PolicyPlan, names: list[str], limit: int) -> list[Flow]:
    """Flows no rule allows: each destination's open ports from the sources not allowed them,
    SSH over the overlay, and echo when `ping` is off."""
    site = {n.name: n.site for n in plan.nodes}
    vpn = {n.name: n.vpn for n in plan.nodes}
    candidates: list[Flow] = []
    for dst in names:
        interest: dict[tuple[str, int | None], None] = {("tcp", 22): None}
        for allow in policy.node(dst).allow:
            if allow.protocol == "icmp":
                interest[("icmp", None)] = None
            else:
                interest.update(dict.fromkeys((allow.protocol, p) for p, _ in allow.ports))
        if not policy.ping:
            interest[("icmp", None)] = None
        for src in names:
            # a member is reached from its own site over the site's LAN, never the overlay
            if src == dst or (site[src] == site[dst] and not vpn[dst]):
                continue
            for protocol, port in interest:
                if not policy.allows(src, dst, protocol, port):
                    candidates.append(Flow(src, dst, protocol, port, False))
    if len(candidates) <= limit:
        return candidates
    # a sample that is the same on every run, spread over the pairs
    chosen = sorted(candidates, key=lambda f: hashlib.sha256(str(f).encode()).digest())[:limit]
    keep = set(chosen)
    return [f for f in candidates if f in keep]


def listener_script(ports: list[tuple[str, int]], *, seconds: int = LISTEN_SECONDS) -> str:
    """Shell that starts a socat listener on each (protocol, port) nobody listens on yet.

    Prints `started PROTO PORT PID` or `busy PROTO PORT` per port.
    """
    specs = " ".join(f"{proto}:{int(port)}" for proto, port in ports if proto in ("tcp", "udp"))
    reply = shlex.quote(f"echo {PROBE_WORD}")
    return f"""
for spec in {specs}; do
  proto=${{spec%%:*}}; port=${{spec#*:}}
  flag=t; [ "$proto" = udp ] && flag=u
  if ss -Hln$flag "sport = :$port" 2>/dev/null | grep -q .; then echo "busy $proto $port"; continue; fi
  addr="UDP4-RECVFROM:$port,reuseaddr,fork"
  [ "$proto" = tcp ] && addr="TCP4-LISTEN:$port,reuseaddr,fork"
  setsid timeout {int(seconds)} socat "$addr" SYSTEM:{reply} </dev/null >/dev/null 2>&1 &
  echo "started $proto $port $!"
done
sleep 0.5
"""


def probe_script(probes: list[tuple[int, str, str, int | None]]) -> str:
    """Shell that probes (id, protocol, address, port) in parallel, each tried twice.

    Prints `ID reached DETAIL` or `ID blocked DETAIL` per probe.
    """
    calls = []
    for ident, proto, address, port in probes:
        if proto not in ("tcp", "udp", "icmp"):
            continue
        calls.append(f"probe {int(ident)} {proto} {shlex.quote(address)} {int(port or 0)} &")
    body = "\n".join(calls)
    return f"""
once() {{
  case $2 in
  tcp)
    out=$(timeout 4 socat -u OPEN:/dev/null "TCP4:$3:$4,connect-timeout=2" 2>&1) && {{ echo open; return; }}
    case $out in *refused*) echo refused ;; *) echo timeout ;; esac ;;
  udp)
    out=$(echo {PROBE_WORD} | timeout 4 socat -T 2 - "UDP4:$3:$4" 2>&1)
    case $out in *{PROBE_WORD}*) echo reply ;; *refused*) echo refused ;; *) echo no-reply ;; esac ;;
  icmp)
    if ping -n -c 1 -W 2 "$3" >/dev/null 2>&1; then echo reply; else echo no-reply; fi ;;
  esac
}}
probe() {{
  r=$(once "$@")
  case $r in timeout|no-reply) r=$(once "$@") ;; esac
  case $r in open|refused|reply) echo "$1 reached $r" ;; *) echo "$1 blocked $r" ;; esac
}}
{body}
wait
"""


def parse_probes(text: str) -> dict[int, tuple[bool, str]]:
    found: dict[int, tuple[bool, str]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].isdigit() and parts[1] in ("reached", "blocked"):
            found[int(parts[0])] = (parts[1] == "reached", parts[2])
    return found


def parse_listeners(text: str) -> list[tuple[str, str]]:
    """(`tcp/8080`, pid) of every listener the script started."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == "started" and parts[3].isdigit():
            out.append((f"{parts[1]}/{parts[2]}", parts[3]))
    return out


def verify_flows(
    plan: NetworkPlan,
    inventory: Inventory,
    fleet: Fleet,
    addresses: Mapping[str, str],
    *,
    down: Collection[str] = (),
) -> FlowResult:
    """Probe the policy's flows between the nodes in `addresses` (see the module docstring)."""
    started = time.monotonic()
    result = FlowResult()
    known = {h.name for h in inventory.hosts}
    live = {n for n in addresses if n in known and n not in down}
    flows = plan_flows(plan, set(addresses))
    if not flows:
        return result
    ports: dict[str, dict[tuple[str, int], None]] = {}
    for f in flows:
        if f.port is not None and f.dst in live:
            ports.setdefault(f.dst, {})[(f.protocol, f.port)] = None

    def listen(name: str) -> list[tuple[str, str]]:
        transport = fleet.connect(inventory.host(name))
        try:
            out = transport.run("sh -s", stdin=listener_script(list(ports[name])).encode(), timeout=30)
        finally:
            transport.close()
        return parse_listeners(out.stdout)

    pids: dict[str, list[str]] = {}
    for name, started_here in fleet.fan_out(sorted(ports), listen, key=lambda n: n).items():
        if started_here.ok and started_here.value is not None:
            result.listeners[name] = [what for what, _ in started_here.value]
            pids[name] = [pid for _, pid in started_here.value]
        elif started_here.error is not None:
            result.errors[name] = f"no probe listeners: {describe(started_here.error)}"

    by_src: dict[str, list[tuple[int, Flow]]] = {}
    for i, f in enumerate(flows):
        by_src.setdefault(f.src, []).append((i, f))

    def probe(name: str) -> dict[int, tuple[bool, str]]:
        probes = [(i, f.protocol, addresses[f.dst], f.port) for i, f in by_src[name]]
        transport = fleet.connect(inventory.host(name))
        try:
            out = transport.run("sh -s", stdin=probe_script(probes).encode(), timeout=60)
        finally:
            transport.close()
        return parse_probes(out.stdout)

    try:
        outcomes = fleet.fan_out(sorted(s for s in by_src if s in live), probe, key=lambda n: n)
    finally:
        _stop(fleet, inventory, pids)
    found: dict[int, tuple[bool, str]] = {}
    for name in by_src:
        outcome = outcomes.get(name)
        if outcome is not None and outcome.ok and outcome.value is not None:
            found.update(outcome.value)
        else:
            why = describe(outcome.error) if outcome and outcome.error else "down or not in the inventory"
            result.errors.setdefault(name, f"could not probe its flows: {why}")
    for i, f in enumerate(flows):
        reached, detail = found.get(i, (None, "no result"))
        result.checks.append(FlowCheck(f, reached, detail))
    bad = len(result.violations)
    fleet.reporter.event("", STAGE, f"{len(result.checks)} policy flows probed, {bad} violations")
    result.seconds = time.monotonic() - started
    return result


def _stop(fleet: Fleet, inventory: Inventory, pids: dict[str, list[str]]) -> None:
    """Stop the listeners this run started (by their pids; they time out by themselves too)."""

    def stop(name: str) -> None:
        transport = fleet.connect(inventory.host(name))
        try:
            transport.run(f"kill {' '.join(pids[name])} 2>/dev/null; true", timeout=15)
        finally:
            transport.close()

    fleet.fan_out([n for n in pids if pids[n]], stop, key=lambda n: n)
