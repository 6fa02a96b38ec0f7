"""Automatic failover without hosts: the rules in the plan, the agent script, its actions."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

from cloudcast.bootstrap.actions import apply_actions, teardown_actions
from cloudcast.bootstrap.desired import desired_state
from cloudcast.bootstrap.facts import Facts
from cloudcast.plan import build_plan
from cloudcast.plan.model import Failover
from cloudcast.spec import load_spec
from tests.conftest import EXAMPLES
from tests.unit.test_lans_units import P, inventory, lab_lan_spec, psks


def test_spokes_hand_hub1s_addresses_to_hub2_when_it_is_down() -> None:
    plan, alloc = build_plan(load_spec(EXAMPLES / "lab-hub.json"))
    spoke1 = plan.node("spoke1")
    assert spoke1.failover == (
        Failover(
            watch="hub1",
            address="10.44.0.1",
            peers=(
                ("hub1", ("10.44.0.1/32",)),
                ("hub2", ("10.44.0.2/32", "10.21.0.0/24", "10.44.0.4/32", "10.44.0.5/32")),
            ),
        ),
    )
    # the hubs themselves change nothing; and with hub1 already down there is nothing to watch
    assert plan.node("hub1").failover == plan.node("hub2").failover == ()
    down, _ = build_plan(load_spec(EXAMPLES / "lab-hub.json"), alloc, down={"hub1"})
    assert all(n.failover == () for n in down.nodes)
    # what the agent switches to is exactly what `apply` plans with hub1 down
    assert {link.peer: link.allowed_ips for link in down.node("spoke1").peers} == dict(spoke1.failover[0].peers)


def test_members_and_remote_gateways_move_to_the_standby_gateway() -> None:
    plan, _ = build_plan(lab_lan_spec())
    ma, gwb = plan.node("ma"), plan.node("gwb")
    [member] = ma.failover
    assert member.watch == "gwa" and member.address == plan.node("gwa").overlay_ip  # not its LAN address
    assert (member.gateway, member.routes) == ("gwa2", ma.routes)
    [remote] = gwb.failover
    assert dict(remote.peers)["gwa2"] == ("10.9.0.2/32", "10.1.0.0/24")
    assert plan.node("gwa2").forwards  # a standby forwards already: taking over needs nothing on it
    ipsec, _ = build_plan(lab_lan_spec(transport="ipsec"))
    assert all(n.failover == () for n in ipsec.nodes)  # IPsec fails over at the next apply


def test_nat_nodes_move_to_the_standby_relay() -> None:
    mesh, alloc = build_plan(load_spec(EXAMPLES / "lab.json"))  # alpha relays charlie <-> delta
    assert mesh.node("bravo").forwards  # the next public node stands by to relay
    assert [n.name for n in mesh.nodes if n.failover] == ["charlie", "delta"]
    [rule] = mesh.node("charlie").failover
    assert rule.watch == "alpha" and rule.address == mesh.node("alpha").overlay_ip
    assert dict(rule.peers) == {"alpha": ("10.15.0.1/32",), "bravo": ("10.15.0.2/32", "10.15.0.4/32")}
    down, _ = build_plan(load_spec(EXAMPLES / "lab.json"), alloc, down={"alpha"})
    assert {link.peer: link.allowed_ips for link in down.node("charlie").peers} == dict(rule.peers)


def keys(plan: object) -> dict[str, str]:
    return {n.name: f"{n.name:A<43}=" for n in plan.nodes}  # type: ignore[attr-defined]


def test_the_agent_script_is_valid_sh_and_switches_both_ways(tmp_path: Path) -> None:
    plan, _ = build_plan(lab_lan_spec())
    gwb = desired_state(plan, plan.node("gwb"), inventory(plan), keys(plan), psks(plan))
    agent = gwb.file(P.failover)
    assert agent is not None and agent.mode == 0o700
    text = agent.content.decode()
    assert subprocess.run(["sh", "-n"], input=text, text=True).returncode == 0
    standby, primary = keys(plan)["gwa2"], keys(plan)["gwa"]
    fail = f"wg set cc0 peer {standby} allowed-ips 10.1.0.0/24,10.9.0.2/32"
    back = f"wg set cc0 peer {primary} allowed-ips 10.1.0.0/24,10.9.0.1/32"
    # the side that gains addresses is set first, both ways
    assert text.index(fail) < text.index(f"wg set cc0 peer {primary} allowed-ips 10.9.0.1/32")
    assert text.index(back) < text.index(f"wg set cc0 peer {standby} allowed-ips 10.9.0.2/32")
    assert f"ping -n -q -c 1 -W 1 {plan.node('gwa').overlay_ip}" in text
    assert '[ "$down1" = 0 ] || echo gwa; } > /run/cloudcast-cc0-failover.state.new' in text  # for status
    # armed by an answer, or by a handshake with the primary (a first probe may be lost)
    assert f'wg show cc0 latest-handshakes | grep -q "^"{primary}"\t[1-9]"' in text
    ma = desired_state(plan, plan.node("ma"), inventory(plan), keys(plan), psks(plan))
    member = ma.file(P.failover)
    assert member is not None
    assert "latest-handshakes" not in member.content.decode()  # a member has no tunnel
    assert "ip route replace 10.2.0.0/24 via 10.1.0.11 proto 241" in member.content.decode()
    assert "ip route replace 10.2.0.0/24 via 10.1.0.10 proto 241" in member.content.decode()  # restore


def test_the_agent_starts_once_restarts_on_change_and_stops_when_unplanned() -> None:
    plan, _ = build_plan(lab_lan_spec())
    gwb = desired_state(plan, plan.node("gwb"), inventory(plan), keys(plan), psks(plan))
    files = {f.path: f.sha256 for f in gwb.files}
    running = Facts(tools=frozenset({"ip"}), iface=True, hashes=files, failover=True)
    assert not [a for a in apply_actions(gwb, running) if a.kind == "failover"]
    changed = replace(running, hashes={**files, P.failover: "0" * 64})
    [restart] = [a for a in apply_actions(gwb, changed) if a.kind == "failover"]
    assert restart.description == "restart the failover agent" and "setsid sh" in (restart.command or "")
    with_systemd = desired_state(plan, plan.node("gwb"), inventory(plan), keys(plan), psks(plan), systemd=True)
    assert with_systemd.file(P.failover_unit) is not None
    [unit] = [a for a in apply_actions(with_systemd, replace(changed, systemd=True)) if a.kind == "failover"]
    assert "systemctl restart cloudcast-cc0-failover.service" in (unit.command or "")
    gwa2 = desired_state(plan, plan.node("gwa2"), inventory(plan), keys(plan), psks(plan))
    assert gwa2.file(P.failover) is None
    [stop] = [a for a in apply_actions(gwa2, running) if a.kind == "failover"]
    assert stop.description == "stop the failover agent"
    assert "stop the failover agent" in [a.description for a in teardown_actions(gwb, running)]
