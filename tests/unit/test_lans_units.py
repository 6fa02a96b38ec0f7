"""Gateways, hubs and IPsec without hosts: planning around a dead gateway, lab LANs in the
plan and the compiled module, member routes, the swanctl config, IPsec actions and status."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from cloudcast.bootstrap.actions import apply_actions, prepare_actions
from cloudcast.bootstrap.desired import Desired, desired_state
from cloudcast.bootstrap.facts import Facts, HostRoute, parse_facts
from cloudcast.bootstrap.paths import Paths
from cloudcast.inventory.hosts import Host, Inventory
from cloudcast.plan import NetworkPlan, build_plan
from cloudcast.spec import load_spec, parse_spec
from cloudcast.terraform.compile import compile_root
from cloudcast.verify.status import parse_sas
from tests.conftest import EXAMPLES

P = Paths("cc0")


def lab_lan_spec(**network: Any) -> Any:
    return parse_spec(
        {
            "name": "t",
            "network": {"overlay": "10.9.0.0/24", "topology": "gateways", **network},
            "sites": [
                {
                    "name": "a",
                    "provider": "lab",
                    "cidr": "10.1.0.0/24",
                    "nodes": [
                        {"name": "gwa", "role": "gateway"},
                        {"name": "gwa2", "role": "gateway"},
                        {"name": "ma"},
                    ],
                },
                {
                    "name": "b",
                    "provider": "lab",
                    "cidr": "10.2.0.0/24",
                    "nodes": [{"name": "gwb", "role": "gateway", "behind_nat": True}, {"name": "mb"}],
                },
            ],
        }
    )


def inventory(plan: NetworkPlan) -> Inventory:
    hosts = []
    for n in plan.nodes:
        assert n.lab is not None
        public = n.lab.public_ip
        hosts.append(Host(n.name, n.site, "lab", public, 22, "root", "/k", public, n.private_ip))
    return Inventory(tuple(hosts), {})


PSK = "A" * 43 + "="


def psks(plan: NetworkPlan) -> dict[str, str]:
    return dict.fromkeys(plan.pairs(), PSK)


def test_lab_sites_get_stable_lan_addresses_only_outside_mesh() -> None:
    plan, alloc = build_plan(lab_lan_spec())
    assert [plan.node(n).private_ip for n in ("gwa", "gwa2", "ma", "gwb", "mb")] == [
        "10.1.0.10", "10.1.0.11", "10.1.0.12", "10.2.0.10", "10.2.0.11",
    ]
    again, _ = build_plan(lab_lan_spec(), alloc)
    assert again.to_json() == plan.to_json()
    mesh, _ = build_plan(load_spec(EXAMPLES / "lab.json"))
    assert all(n.private_ip is None for n in mesh.nodes)


def test_compiled_lab_hosts_join_their_site_lan(tmp_path: Path) -> None:
    import json

    spec = lab_lan_spec()
    plan, _ = build_plan(spec)
    compile_root(spec, plan, tmp_path, environ={})
    nodes = json.loads((tmp_path / "main.tf.json").read_text())["module"]["site_a"]["nodes"]
    assert nodes["ma"]["lan"] == "a" and nodes["ma"]["lan_ip"] == "10.1.0.12/24"
    mesh = load_spec(EXAMPLES / "lab.json")
    compile_root(mesh, build_plan(mesh)[0], tmp_path / "m", environ={})
    mesh_nodes = json.loads((tmp_path / "m" / "main.tf.json").read_text())["module"]["site_lab"]["nodes"]
    assert all("lan" not in n for n in mesh_nodes.values())


def test_a_node_never_tunnels_its_own_site_cidr() -> None:
    plan, _ = build_plan(lab_lan_spec())
    to_gwa = next(link for link in plan.node("gwa2").peers if link.peer == "gwa")
    assert "10.1.0.0/24" not in to_gwa.allowed_ips  # gwa2 is on that LAN itself
    to_gwa_from_b = next(link for link in plan.node("gwb").peers if link.peer == "gwa")
    assert "10.1.0.0/24" in to_gwa_from_b.allowed_ips


def test_a_dead_primary_gateway_is_planned_around() -> None:
    spec = lab_lan_spec()
    plan, alloc = build_plan(spec)
    assert plan.site("a").gateways == ("gwa", "gwa2") and plan.node("ma").gateway == "gwa"
    failed, _ = build_plan(spec, alloc, down={"gwa"})
    assert failed.site("a").gateways == ("gwa2", "gwa")
    assert failed.node("ma").gateway == "gwa2" and failed.node("gwa2").forwards
    gwb = {link.peer: link for link in failed.node("gwb").peers}
    assert "10.1.0.0/24" in gwb["gwa2"].allowed_ips and "10.1.0.0/24" not in gwb["gwa"].allowed_ips
    assert "gwa is down: site a fails over to gwa2" in failed.warnings
    assert failed.pairs() == plan.pairs()  # same peers, same PSKs


def test_member_routes_go_via_the_gateway_and_to_a_standby_on_the_lan() -> None:
    plan, _ = build_plan(lab_lan_spec())
    d = desired_state(plan, plan.node("ma"), inventory(plan), {}, psks(plan), systemd=True)
    assert d.routes == (
        ("10.9.0.0/24", "10.1.0.10"),
        ("10.2.0.0/24", "10.1.0.10"),
        (f"{plan.node('gwa2').overlay_ip}/32", "10.1.0.11"),
    )
    script = d.file(P.routes)
    assert script is not None
    text = script.content.decode()
    assert f"want='10.9.0.0/24 10.2.0.0/24 {plan.node('gwa2').overlay_ip}'" in text
    assert "ip route replace 10.2.0.0/24 via 10.1.0.10 proto 241" in text
    assert d.file(P.routes_unit) is not None  # run at boot where systemd runs
    facts = Facts(tools=frozenset({"ip"}), systemd=True)
    kinds = [a.kind for a in apply_actions(d, facts)]
    assert kinds.count("routes") == 1 and "enable" in kinds
    done = replace(
        facts,
        hashes={f.path: f.sha256 for f in d.files},
        hosts=d.hosts_block,
        routes_enabled=True,
        routes=tuple(HostRoute(c.removesuffix("/32"), v, "lan0", "241") for c, v in d.routes),
        failover=True,  # gwa has a standby (gwa2): the member's failover agent runs
    )
    assert apply_actions(d, done) == []
    stale = replace(done, routes=(*done.routes, HostRoute("10.7.0.0/24", "10.1.0.10", "lan0", "241")))
    assert [a.description for a in apply_actions(d, stale)] == ["route 2 CIDRs via 10.1.0.10, 1 on the LAN, drop 1 old"]


def test_swanctl_config_one_conn_per_peer_a_child_per_selector_pair() -> None:
    plan, _ = build_plan(lab_lan_spec(transport="ipsec"))
    inv = inventory(plan)
    gwa = desired_state(plan, plan.node("gwa"), inv, {}, psks(plan))
    gwb = desired_state(plan, plan.node("gwb"), inv, {}, psks(plan))
    conf = gwa.file(P.swanctl_conf)
    assert conf is not None and conf.mode == 0o600
    text = conf.content.decode()
    assert "esp_proposals = aes128gcm16, aes256gcm16" in text and "encap = yes" in text
    assert f"secret = 0s{PSK}" in text and "version = 2" in text
    to_b = next(c for c in gwa.conns if c.peer == "gwb")
    # gwb is behind NAT: gwa waits for it (no address to dial), gwb starts the SAs
    assert to_b.remote_addr is None and not to_b.initiator
    assert all(c.initiator for c in gwb.conns)
    assert ("10.1.0.0/24", "10.2.0.0/24") in {(ch.local_ts, ch.remote_ts) for ch in to_b.children}
    assert len(to_b.children) == 4  # {gwa /32, 10.1.0.0/24} x {gwb /32, 10.2.0.0/24}
    # the two gateways of site a both dial: the one whose name sorts first starts
    to_a2 = next(c for c in gwa.conns if c.peer == "gwa2")
    assert to_a2.initiator and to_a2.remote_addr == "10.1.0.11"
    charon = gwa.file(P.strongswan_conf)
    assert charon is not None and "load = yes" in charon.content.decode()  # no kernel ESP
    kernel = desired_state(plan, plan.node("gwa"), inv, {}, psks(plan), kernel_esp=True)
    assert kernel.file(P.strongswan_conf) is not None
    assert "load = no" in kernel.file(P.strongswan_conf).content.decode()  # type: ignore[union-attr]
    assert "meta ipsec exists" in kernel.file(P.firewall).content.decode()  # type: ignore[union-attr]
    assert 'iifname "ipsec0"' in gwa.file(P.firewall).content.decode()  # type: ignore[union-attr]
    assert "udp dport { 500, 4500 }" in gwa.file(P.firewall).content.decode()  # type: ignore[union-attr]


def ipsec_converged(desired: Desired, facts: Facts) -> Facts:
    """`facts` of an IPsec gateway on which `desired` is fully in place."""
    return replace(
        facts,
        hashes={f.path: f.sha256 for f in desired.files},
        hosts=desired.hosts_block,
        table=True,
        ip_forward=desired.forwards,
        charon=True,
        conns=tuple(c.name for c in desired.conns),
        children_up=tuple(ch for _, ch in desired.initiated_children),
        lo_addresses=desired.lo_addresses,
    )


def test_ipsec_actions_start_charon_once_then_reload_only_on_change() -> None:
    plan, _ = build_plan(lab_lan_spec(transport="ipsec"))
    gwb = desired_state(plan, plan.node("gwb"), inventory(plan), {}, psks(plan))
    fresh = Facts(tools=frozenset({"ip", "apt-get"}))
    packages = prepare_actions(fresh, P, vpn=True, transport="ipsec")
    assert [a.kind for a in packages] == ["package"]  # no WireGuard key for IPsec
    for name in ("strongswan-swanctl", "strongswan-charon", "libstrongswan-standard-plugins", "libcharon-extra-plugins"):
        assert name in (packages[0].command or "")
    first = [a.kind for a in apply_actions(gwb, fresh)]
    assert first[-4:] == ["sysctl", "address", "charon", "sas"] or first[-3:] == ["address", "charon", "sas"]
    children = tuple(ch for _, ch in gwb.initiated_children)
    up = ipsec_converged(gwb, fresh)
    assert apply_actions(gwb, up) == []
    changed = replace(up, hashes={**up.hashes, P.swanctl_conf: "0" * 64})
    assert [a.kind for a in apply_actions(gwb, changed)] == ["write", "reload", "sas"]
    down = replace(up, children_up=children[1:])
    assert [a.kind for a in apply_actions(gwb, down)] == ["sas"]


def test_ipsec_facts_and_sas_are_parsed() -> None:
    facts = parse_facts("charon=1\nkernel_esp=1\nconn=cc-b\nchild=b--x\nlo_addr=10.9.0.1/32\nlibipsec=1\n")
    assert facts.charon and facts.kernel_esp and facts.conns == ("cc-b",) and facts.children_up == ("b--x",)
    assert facts.lo_addresses == ("10.9.0.1/32",) and facts.libipsec
    sas = parse_sas(
        "sa\tcc-gwb: #1, ESTABLISHED, IKEv2, 50d6e950a7372348_i* d84c96a4eef05355_r\n"
        "sa\t  local  'gwa.vpc.internal' @ 198.18.1.10[4500]\n"
        "sa\t  remote 'gwb.vpc.internal' @ 198.18.1.12[4500]\n"
        "sa\t  established 42s ago, rekeying in 14039s\n"
        "sa\t  gwb--a--b: #1, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16-128\n"
        "sa\t    in  ed9c78e4,   1000 bytes,     3 packets\n"
        "sa\t    out 5876b378,    500 bytes,     2 packets\n"
        "sa\t  gwb--c--d: #2, reqid 2, INSTALLING, TUNNEL-in-UDP, ESP:AES_GCM_16-128\n"
    )
    gwb = replace(sas["cc-gwb"], children=2)
    assert (gwb.state, gwb.handshake_age, gwb.endpoint) == ("ESTABLISHED", 42, "198.18.1.12")
    assert (gwb.rx, gwb.tx, gwb.children_up) == (1000, 500, 1) and gwb.stale
    assert not replace(gwb, children=1).stale
