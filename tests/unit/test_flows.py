"""verify's policy flows without hosts: which flows, the scripts, verdicts, the matrix, JUnit."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from cloudcast.inventory.hosts import Host, Inventory
from cloudcast.plan import NetworkPlan, build_plan
from cloudcast.spec import load_spec
from cloudcast.ssh import Fleet
from cloudcast.ssh.transport import Result
from cloudcast.verify.flows import (
    Flow,
    FlowCheck,
    FlowResult,
    Verdict,
    listener_script,
    parse_listeners,
    parse_probes,
    plan_flows,
    probe_script,
    verify_flows,
)
from cloudcast.verify.probe import Probe, VerifyResult, probe_addresses, verify
from cloudcast.verify.reports import junit_xml
from tests.conftest import EXAMPLES
from tests.unit.bootstrap_cases import lab_inventory


def tiers() -> NetworkPlan:
    return build_plan(load_spec(EXAMPLES / "lab-policy.json"))[0]


def test_every_allowed_flow_and_the_denied_ones_that_matter() -> None:
    plan = tiers()
    flows = plan_flows(plan, {n.name for n in plan.nodes})
    allowed = {str(f) for f in flows if f.allowed}
    assert allowed == {
        "web1 -> app1 tcp/8080", "web2 -> app1 tcp/8080", "app1 -> db1 tcp/5432",
        *(f"admin -> {n} tcp/22" for n in ("web1", "web2", "app1", "db1")),
    }
    denied = {str(f) for f in flows if not f.allowed}
    assert {"web1 -> db1 tcp/5432", "web2 -> db1 tcp/5432", "db1 -> app1 tcp/8080", "web1 -> admin tcp/22"} <= denied
    assert not any(f.protocol == "icmp" for f in flows)  # network.ping: echo is the matrix's
    assert all(f.rule is not None for f in flows if f.allowed)


def test_ranges_are_probed_at_both_ends_and_the_denied_sample_is_bounded() -> None:
    spec = load_spec(EXAMPLES / "lab-policy.json")
    doc = json.loads(spec.model_dump_json(by_alias=True, exclude_none=True))
    doc["policy"][0]["ports"] = [{"first": 8000, "last": 8099}]
    doc["network"]["ping"] = False
    from cloudcast.spec import parse_spec

    plan = build_plan(parse_spec(doc))[0]
    flows = plan_flows(plan, {n.name for n in plan.nodes}, max_denied=5)
    assert {f.port for f in flows if f.allowed and f.dst == "app1" and f.src == "web1"} == {8000, 8099}
    denied = [f for f in flows if not f.allowed]
    assert len(denied) == 5
    assert denied == [f for f in plan_flows(plan, {n.name for n in plan.nodes}, max_denied=5) if not f.allowed]
    every = plan_flows(plan, {n.name for n in plan.nodes}, max_denied=1000)
    assert any(f.protocol == "icmp" and not f.allowed for f in every)  # ping off: echo is denied


def test_members_are_not_probed_from_their_own_site() -> None:
    doc = json.loads((EXAMPLES / "lab-gateways.json").read_text())
    doc["policy"] = [{"from": ["east"], "to": ["west"], "ports": [80]}]
    from cloudcast.spec import parse_spec

    plan = build_plan(parse_spec(doc))[0]
    flows = plan_flows(plan, {n.name for n in plan.nodes}, max_denied=10_000)
    site = {n.name: n.site for n in plan.nodes}
    member = {n.name for n in plan.nodes if not n.vpn}
    assert not [f for f in flows if not f.allowed and f.dst in member and site[f.src] == site[f.dst]]
    assert any(str(f) == "east1 -> west1 tcp/80" for f in flows)


def test_scripts_are_posix_sh_and_quote_what_they_carry() -> None:
    listen = listener_script([("tcp", 8080), ("udp", 53)])
    assert "for spec in tcp:8080 udp:53; do" in listen and "setsid timeout 90 socat" in listen
    probes = probe_script([(0, "tcp", "10.16.0.3", 8080), (1, "icmp", "10.16.0.4", None), (2, "sctp", "x", 1)])
    assert "probe 0 tcp 10.16.0.3 8080 &" in probes and "probe 1 icmp 10.16.0.4 0 &" in probes
    assert "sctp" not in probes
    for script in (listen, probes):
        check = subprocess.run(["sh", "-n"], input=script, capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
    assert parse_probes("0 reached open\n1 blocked no-reply\nnoise\nx reached y\n") == {
        0: (True, "open"), 1: (False, "no-reply"),
    }
    assert parse_listeners("busy tcp 22\nstarted tcp 8080 4242\nstarted udp 53 x\n") == [("tcp/8080", "4242")]


def test_verdicts() -> None:
    allowed, denied = Flow("a", "b", "tcp", 80, True, 0), Flow("a", "b", "tcp", 81, False)
    assert FlowCheck(allowed, True).verdict is Verdict.REACHABLE
    assert FlowCheck(allowed, False).verdict is Verdict.LOST
    assert FlowCheck(denied, False).verdict is Verdict.BLOCKED
    assert FlowCheck(denied, True).verdict is Verdict.LEAKED
    assert FlowCheck(denied, None).verdict is Verdict.UNKNOWN
    assert [FlowCheck(f, r).ok for f, r in ((allowed, True), (denied, False), (denied, True), (allowed, None))] == [
        True, True, False, False,
    ]


# --- verify over a fake fleet: each host answers as a firewall that follows the plan -----------


@dataclass
class FakeNet:
    plan: NetworkPlan
    inventory: Inventory
    leaks: set[tuple[str, str, int | None]] = field(default_factory=set)  # (src, dst, port) let through
    drops: set[tuple[str, str, int | None]] = field(default_factory=set)  # allowed, yet dropped
    ran: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.by_addr = {a: n for n, a in probe_addresses(self.plan, self.inventory).items()}

    def connect(self, host: Host) -> FakeHost:
        return FakeHost(self, host.name)


@dataclass
class FakeHost:
    net: FakeNet
    name: str

    def run(self, cmd: str, *, stdin: bytes | None = None, timeout: float = 120.0) -> Result:
        script = (stdin or b"").decode() or cmd
        self.net.ran.append((self.name, script))
        if script.startswith("kill "):
            return Result(0, "", "")
        if "for spec in" in script:
            specs = re.search(r"for spec in ([^;]*);", script)
            assert specs is not None
            out = [f"started {s.replace(':', ' ')} {100 + i}" for i, s in enumerate(specs.group(1).split())]
            return Result(0, "\n".join(out), "")
        if "once()" in script:
            return Result(0, self._probes(script), "")
        # the ping matrix
        targets = re.search(r"for t in ([^;]*); do probe", script)
        assert targets is not None
        return Result(0, "\n".join(f"ok {t} 0.3 1" for t in targets.group(1).split()), "")

    def _probes(self, script: str) -> str:
        policy = self.net.plan.policy
        assert policy is not None
        out = []
        for ident, proto, addr, port in re.findall(r"^probe (\d+) (\w+) (\S+) (\d+) &$", script, re.M):
            dst = self.net.by_addr[addr]
            p = None if proto == "icmp" else int(port)
            through = policy.allows(self.name, dst, proto, p)
            key = (self.name, dst, p)
            through = (through or key in self.net.leaks) and key not in self.net.drops
            out.append(f"{ident} {'reached open' if through else 'blocked timeout'}")
        return "\n".join(out)

    def close(self) -> None:
        pass


def fleet_of(net: FakeNet) -> Fleet:
    return Fleet(connector=net)  # type: ignore[arg-type]


def run_verify(mutate: Callable[[FakeNet], None] = lambda net: None) -> tuple[VerifyResult, FakeNet]:
    plan = tiers()
    net = FakeNet(plan, lab_inventory(plan))
    mutate(net)
    return verify(plan, net.inventory, fleet_of(net), retry_seconds=1), net


def test_a_policy_that_holds_passes_and_says_so() -> None:
    result, net = run_verify()
    assert result.ok and result.flows is not None and result.flows.ok
    flows = result.flows
    assert flows.count(Verdict.REACHABLE) == 7 and flows.count(Verdict.BLOCKED) == len(flows.checks) - 7
    assert flows.listeners["db1"] == ["tcp/5432", "tcp/22"]
    kills = [(host, s) for host, s in net.ran if s.startswith("kill ")]
    assert sorted(host for host, _ in kills) == sorted(flows.listeners)  # every listener stopped
    text = result.render_matrix()
    assert "policy flows (✓ allowed and reachable, ⊘ denied and blocked, ✗ violation):" in text
    assert "7 allowed flows reachable, 21 denied flows blocked, 0 violations" in text
    doc = result.to_dict()
    assert doc["ok"] and doc["flows"]["allowed_reachable"] == 7 and doc["flows"]["violations"] == []
    check = next(c for c in doc["flows"]["checks"] if (c["src"], c["dst"], c["port"]) == ("web1", "db1", 5432))
    assert check["verdict"] == "denied-blocked" and check["allowed"] is False


def test_a_leak_and_a_blocked_flow_are_violations() -> None:
    def mutate(net: FakeNet) -> None:
        net.leaks.add(("web1", "db1", 5432))
        net.drops.add(("app1", "db1", 5432))

    result, _ = run_verify(mutate)
    assert not result.ok and result.flows is not None
    bad = {(str(c.flow), c.verdict) for c in result.flows.violations}
    assert bad == {
        ("web1 -> db1 tcp/5432", Verdict.LEAKED),
        ("app1 -> db1 tcp/5432", Verdict.LOST),
    }
    text = result.render_matrix()
    assert "✗ web1 -> db1 tcp/5432: violation: denied but reached (no rule allows it; open)" in text
    assert "✗ app1 -> db1 tcp/5432: violation: allowed but blocked (policy[1]; timeout)" in text
    grid = text.split("policy flows")[1].splitlines()
    web1 = next(line for line in grid if line.startswith("web1 "))
    assert "✗" in web1
    xml = junit_xml(result, tiers())
    assert 'name="tiers.policy"' in xml and 'failures="2"' in xml.split('name="tiers.policy"')[1].split(">")[0]
    assert "web1 -&gt; db1 tcp/5432: violation: denied but reached" in xml


def test_a_source_that_cannot_be_reached_leaves_its_flows_unproven() -> None:
    plan = tiers()
    net = FakeNet(plan, lab_inventory(plan))
    result = verify_flows(plan, net.inventory, fleet_of(net), probe_addresses(plan, net.inventory), down={"admin"})
    unknown = [c for c in result.checks if c.verdict is Verdict.UNKNOWN]
    assert unknown and all(c.flow.src == "admin" for c in unknown)
    assert "admin" in result.errors and not result.ok


def test_ping_off_probes_echo_only_where_a_rule_allows_it() -> None:
    from cloudcast.spec import parse_spec

    doc = json.loads((EXAMPLES / "lab-policy.json").read_text())
    doc["network"]["ping"] = False
    doc["policy"].append({"from": ["admin"], "to": ["web"], "protocol": "icmp"})
    plan = build_plan(parse_spec(doc))[0]
    net = FakeNet(plan, lab_inventory(plan))
    result = verify(plan, net.inventory, fleet_of(net), retry_seconds=1)
    assert set(result.matrix["admin"]) == {"web1", "web2"}
    assert result.matrix["web1"] == {}
    assert result.ok, result.render_matrix()
    web1 = result.render_matrix().splitlines()[1].split()
    assert web1 == ["web1", "·", "-", "-", "-", "-"]  # not probed: the policy denies echo


@pytest.mark.parametrize("ok", [True, False])
def test_the_flow_result_travels_as_records(ok: bool) -> None:
    flow = Flow("a", "b", "udp", 53, True, 3)
    result = FlowResult([FlowCheck(flow, ok, "reply" if ok else "no-reply")])
    data = result.to_dict()
    assert data["ok"] is ok and data["checks"][0]["rule"] == 3 and data["checks"][0]["protocol"] == "udp"
    assert VerifyResult(["a", "b"], 1420, matrix={"a": {"b": Probe(True)}}, flows=result).ok is ok


def test_a_violation_alone_is_the_error_apply_and_verify_raise() -> None:
    from cloudcast.pipeline.apply import verify_error

    def mutate(net: FakeNet) -> None:
        net.leaks.add(("web1", "db1", 5432))

    result, _ = run_verify(mutate)
    err = verify_error(result, result.render_matrix())
    assert err.message == "1 flows break the access policy: web1 -> db1 tcp/5432 (violation: denied but reached)"
