"""The access policy without hosts: spec contracts and checks, compilation, nft rules, plan diff."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cloudcast.bootstrap.desired import desired_state
from cloudcast.errors import SpecError, UnsafeValueError
from cloudcast.pipeline.summary import host_changes
from cloudcast.plan import NetworkPlan, build_plan
from cloudcast.plan.policy import Allow, policy_changes
from cloudcast.spec import load_spec, parse_spec
from cloudcast.spec.check import check
from tests.conftest import EXAMPLES
from tests.unit.bootstrap_cases import keys, lab_inventory, psks
from tests.unit.test_lans_units import inventory as lan_inventory

TIERS: dict[str, Any] = json.loads((EXAMPLES / "lab-policy.json").read_text())


def problems(doc: dict[str, Any]) -> list[str]:
    try:
        return check(parse_spec(doc))
    except SpecError as exc:
        return list(exc.problems)


def tiers(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(TIERS)
    doc.update(changes)
    return doc


def plan_of(doc: dict[str, Any]) -> NetworkPlan:
    return build_plan(parse_spec(doc))[0]


def nft(plan: NetworkPlan, name: str, inv: Any = None) -> str:
    inv = inv or lab_inventory(plan)
    d = desired_state(plan, plan.node(name), inv, keys(plan), psks(plan))
    f = d.file("/etc/cloudcast/cc0.nft")
    assert f is not None
    return f.content.decode()


# --- the spec -----------------------------------------------------------------------------


def test_the_example_is_valid_and_no_policy_means_none() -> None:
    assert problems(tiers()) == []
    doc = tiers()
    del doc["policy"]
    assert plan_of(doc).policy is None
    assert "policy" not in plan_of(doc).to_json()


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"from": ["wbe"], "to": ["app"], "ports": [80]}, "policy[3].from[0]: unknown tag, node or site 'wbe'; did you mean 'web'?"),
        ({"from": ["web"], "to": [], "ports": [80]}, "policy[3].to: empty: the rule allows nothing"),
        ({"from": ["web"], "to": ["app"]}, "policy[3].ports: empty: a tcp rule allows nothing without ports"),
        ({"from": ["web"], "to": ["app"], "protocol": "icmp", "ports": [1]}, "policy[3].ports: icmp rules allow echo and take no ports"),
        ({"from": ["web"], "to": ["app"], "ports": [{"first": 90, "last": 80}]}, "policy[3].ports[0]: first 90 is above last 80"),
        ({"from": ["db1"], "to": ["db"], "ports": [80]}, "policy[3]: allows nothing: from and to are only 'db1' itself"),
        ({"from": ["web1"], "to": ["app1"], "ports": [8080]}, "policy[3]: shadowed by policy[0], which allows everything this rule does"),
        ({"from": ["web"], "to": ["app"], "ports": [8080], "protocol": "udp"}, None),
    ],
)
def test_rule_checks(rule: dict[str, Any], expected: str | None) -> None:
    doc = tiers()
    doc["policy"].append(rule)
    found = problems(doc)
    if expected is None:
        assert found == []
    else:
        assert any(p.startswith(expected) for p in found), found


def test_a_range_covering_an_earlier_rule_is_not_shadowed_but_the_other_way_round_is() -> None:
    doc = tiers()
    doc["policy"] = [
        {"from": ["web"], "to": ["app"], "ports": [{"first": 8000, "last": 8100}]},
        {"from": ["web2"], "to": ["back"], "ports": [8080]},  # back is wider than app: not shadowed
        {"from": ["web2"], "to": ["app"], "ports": [8080, 8099]},
    ]
    assert problems(doc) == ["policy[2]: shadowed by policy[0], which allows everything this rule does"]


def test_a_name_that_is_a_tag_and_a_node_is_ambiguous() -> None:
    doc = tiers()
    doc["sites"][2]["nodes"][0]["tags"] = ["web1"]  # admin carries a tag named like a node
    doc["policy"].append({"from": ["web1"], "to": ["db"], "ports": [1]})
    assert "policy[3].from[0]: 'web1' is both a node and a tag; rename one of them" in problems(doc)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["policy"][0].update(ports=["8080"]), "policy[0].ports[0]"),
        (lambda d: d["policy"][0].update(ports=[70000]), "policy[0].ports[0]"),
        (lambda d: d["policy"][0].update(protocol="sctp"), "policy[0].protocol"),
        (lambda d: d["sites"][0].update(tags=["web; drop"]), "sites[0].tags[0]"),
        (lambda d: d["policy"][0].update({"from": ["web\n}"]}), "policy[0].from[0]"),
        (lambda d: d["network"].update(ping="yes"), "network.ping"),
    ],
)
def test_contracts_refuse_what_could_reach_nft(mutate: Any, expected: str) -> None:
    doc = tiers()
    mutate(doc)
    found = problems(doc)
    assert any(p.startswith(expected) for p in found), found


def test_the_schema_shows_the_policy(tmp_path: Path) -> None:
    schema = json.loads((EXAMPLES / "cloudcast.schema.json").read_text())
    rule = schema["$defs"]["Rule"]
    assert set(rule["properties"]) == {"from", "to", "ports", "protocol"}
    assert rule["properties"]["protocol"]["$ref"].endswith("FlowProtocol")


# --- compilation ----------------------------------------------------------------------------


def test_every_node_gets_what_may_reach_it() -> None:
    policy = plan_of(tiers()).policy
    assert policy is not None and policy.ping
    assert policy.node("app1").allow == (
        Allow(0, "tcp", ((8080, 8080),), ("web1", "web2")),
        Allow(2, "tcp", ((22, 22),), ("admin",)),
    )
    assert policy.node("admin").allow == ()
    assert policy.node("db1").enforced_by == ("db1",)
    assert dict(policy.tags)["web"] == ("web1", "web2")
    assert policy.allows("app1", "db1", "tcp", 5432) and not policy.allows("web1", "db1", "tcp", 5432)
    assert policy.rule_for("admin", "web2", "tcp", 22) == 2
    assert policy.allows("web1", "db1", "icmp")  # network.ping


def test_members_are_enforced_by_their_gateways() -> None:
    plan = plan_of(gateways_doc())
    assert plan.policy is not None
    assert plan.policy.node("east1").enforced_by == ("gw-east", "gw-east2")
    assert plan.policy.node("gw-west").enforced_by == ("gw-west",)


def gateways_doc(ping: bool = True) -> dict[str, Any]:
    doc = json.loads((EXAMPLES / "lab-gateways.json").read_text())
    doc["network"]["ping"] = ping
    doc["sites"][0]["nodes"][2]["tags"] = ["web"]  # east1
    doc["sites"][1]["nodes"][1]["tags"] = ["app"]  # west1
    doc["sites"][2]["nodes"][1]["tags"] = ["db"]  # home1
    doc["policy"] = [
        {"from": ["web"], "to": ["app"], "ports": [8080, {"first": 9000, "last": 9100}]},
        {"from": ["app"], "to": ["db"], "ports": [5432], "protocol": "udp"},
    ]
    return doc


# --- nft ------------------------------------------------------------------------------------


def test_no_policy_renders_the_table_as_before() -> None:
    doc = tiers()
    del doc["policy"]
    text = nft(plan_of(doc), "db1")
    assert "policy_in" not in text and '\t\tiifname "cc0" accept\n' in text


def test_the_tunnel_goes_through_the_policy_chain_which_ends_in_drop() -> None:
    text = nft(plan_of(tiers()), "db1")
    assert '\t\tiifname "cc0" jump policy_in\n' in text
    chain = text.split("chain policy_in {")[1].split("}\n")[0]
    lines = [line.strip() for line in chain.strip().splitlines()]
    assert lines == [
        "icmp type echo-request accept comment \"verify's probes (network.ping)\"",
        'ip saddr { 10.16.0.3 } tcp dport { 5432 } accept comment "policy[1]: tcp/5432 to db1"',
        'ip saddr { 10.16.0.5 } tcp dport { 22 } accept comment "policy[2]: tcp/22 to db1"',
        'counter drop comment "not allowed by the policy"',
    ]
    # the SSH and WireGuard rules come after the jump: overlay traffic never reaches them
    assert text.index("jump policy_in") < text.index('comment "SSH"')


def test_a_service_is_reachable_only_from_those_the_policy_allows() -> None:
    text = nft(plan_of(tiers()), "app1")
    assert 'dnat ip to 127.0.0.1:8080 comment "api"' in text
    assert 'ip saddr { 10.16.0.1, 10.16.0.2 } tcp dport { 8080 } accept comment "policy[0]: tcp/8080 to app1"' in text


def test_gateways_carry_their_members_rules_in_a_forward_chain() -> None:
    plan = plan_of(gateways_doc(ping=False))
    inv = lan_inventory(plan)
    east1, west1 = plan.node("east1").private_ip, plan.node("west1").private_ip
    for gw in ("gw-west",):
        text = nft(plan, gw, inv)
        assert text.count("chain policy_fwd {") == 1
        fwd = text.split("chain forward {")[1].split("}\n")[0]
        assert '\t\tiifname "cc0" oifname "cc0" accept' in fwd and '\t\tiifname "cc0" jump policy_fwd' in fwd
        rule = (
            f"ip daddr {west1} ip saddr {{ {east1} }} tcp dport {{ 8080, 9000-9100 }} "
            'accept comment "policy[0]: tcp/8080, 9000-9100 to west1"'
        )
        assert rule in text.split("chain policy_fwd {")[1]
        assert "verify's probes" not in text  # network.ping is off
    # east's standby gateway carries east1's (none) and is watched by the others' failover agents
    standby = nft(plan, "gw-east2", inv)
    assert "chain policy_fwd" in standby
    primary = nft(plan, "gw-east", inv)
    watchers = re.search(r"ip saddr \{ ([^}]*) \} icmp type echo-request accept comment \"failover probes\"", primary)
    assert watchers is not None and east1 in watchers.group(1).split(", ")
    # members reach their gateway's overlay address through the policy too
    assert 'ip daddr 10.42.0.1 jump policy_in comment "members of this site"' in primary


def test_a_member_without_a_known_address_is_left_out_of_the_rules() -> None:
    doc = gateways_doc()
    for site in doc["sites"]:
        site["provider"] = "static"
        for n in site["nodes"]:
            n["ssh"] = {"host": "203.0.113.9"}
    plan = plan_of(doc)
    from cloudcast.inventory.hosts import Host, Inventory

    inv = Inventory(tuple(Host(n.name, n.site, "static", "203.0.113.9", 22, "root", None, "203.0.113.9", None)
                          for n in plan.nodes), {})
    text = nft(plan, "gw-west", inv)
    assert "policy[0]" not in text and 'counter drop comment "not allowed by the policy"' in text


def test_unsafe_values_in_a_plan_are_refused_again() -> None:
    from dataclasses import replace

    from cloudcast.bootstrap.policy import policy_context

    plan = plan_of(tiers())
    assert plan.policy is not None
    bad = replace(plan.policy.nodes[2], allow=(Allow(0, "tcp; drop", ((1, 1),), ("web1",)),))
    nodes = tuple(bad if n.node == bad.node else n for n in plan.policy.nodes)
    evil = replace(plan, policy=replace(plan.policy, nodes=nodes))
    with pytest.raises(UnsafeValueError):
        policy_context(evil, evil.node(bad.node), lambda _: None)
    bad = replace(bad, allow=(Allow(0, "tcp", ((0, 70000),), ("web1",)),))
    nodes = tuple(bad if n.node == bad.node else n for n in plan.policy.nodes)
    evil = replace(plan, policy=replace(plan.policy, nodes=nodes))
    with pytest.raises(UnsafeValueError):
        policy_context(evil, evil.node(bad.node), lambda _: None)


@pytest.mark.skipif(shutil.which("nft") is None, reason="nft is not installed")
def test_nft_accepts_every_rendered_table(tmp_path: Path) -> None:
    """`nft -c` (check only: nothing is loaded) on the tables of both examples."""
    cases = [(plan_of(tiers()), None), (plan_of(gateways_doc(ping=False)), "lan")]
    for plan, kind in cases:
        inv = lan_inventory(plan) if kind else lab_inventory(plan)
        for node in plan.nodes:
            if not node.vpn:
                continue
            path = tmp_path / f"{node.name}.nft"
            path.write_text(nft(plan, node.name, inv))
            res = subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True, text=True)
            if res.returncode and ("Operation not permitted" in res.stderr or "netlink" in res.stderr.lower()):
                pytest.skip(f"nft -c needs CAP_NET_ADMIN: {res.stderr.strip()}")
            assert res.returncode == 0, (node.name, res.stderr, path.read_text())


# --- the plan diff ----------------------------------------------------------------------------


def test_plan_shows_per_host_the_rules_that_change() -> None:
    before = json.loads(plan_of(tiers()).to_json())
    doc = tiers()
    doc["policy"].insert(0, {"from": ["web"], "to": ["db"], "ports": [5432]})
    after = plan_of(doc)
    changes = {h.node: h.details for h in host_changes(after, before)}
    assert changes == {
        "db1": [
            "policy +tcp/5432 from web1, web2 to db1 (policy[0])",
        ]
    }
    none = tiers()
    del none["policy"]
    off = json.loads(plan_of(none).to_json())
    on = {h.node: h.details for h in host_changes(plan_of(tiers()), off)}
    assert on["app1"] == [
        "policy on: default deny on the overlay",
        "policy +tcp/8080 from web1, web2 to app1 (policy[0])",
        "policy +tcp/22 from admin to app1 (policy[2])",
    ]
    assert policy_changes(before.get("policy"), None, "db1") == ["policy off: everything allowed on the overlay"]


def test_a_gateway_shows_its_members_rules() -> None:
    plan = plan_of(gateways_doc())
    doc = gateways_doc()
    doc["policy"][1]["ports"] = [5433]
    changed = {h.node: h.details for h in host_changes(plan_of(doc), json.loads(plan.to_json()))}
    assert changed == {
        "gw-home": [
            "policy +udp/5433 from west1 to home1 (policy[1])",
            "policy -udp/5432 from west1 to home1 (was policy[1])",
        ]
    }


def test_examples_with_a_policy_load() -> None:
    spec = load_spec(EXAMPLES / "lab-policy.json")
    assert spec.policy is not None and len(spec.policy) == 3


def ipsec_doc() -> dict[str, Any]:
    doc = json.loads((EXAMPLES / "lab-ipsec.json").read_text())
    doc["policy"] = [{"from": ["sgw-east", "seast1"], "to": ["west", "shome1"], "ports": [443]}]
    return doc


@pytest.mark.parametrize("kernel_esp", [True, False])
def test_ipsec_gateways_send_the_policy_through_its_chains(kernel_esp: bool, tmp_path: Path) -> None:
    plan = plan_of(ipsec_doc())
    inv = lan_inventory(plan)
    d = desired_state(plan, plan.node("sgw-home"), inv, {}, psks(plan), kernel_esp=kernel_esp)
    f = d.file("/etc/cloudcast/cc0.nft")
    assert f is not None
    text = f.content.decode()
    if kernel_esp:
        assert 'meta ipsec exists jump policy_in comment "decrypted by the kernel"' in text
        assert "meta ipsec exists jump policy_fwd" in text and "rt ipsec exists accept" in text
    else:
        assert "jump policy_in comment \"decrypted by kernel-libipsec\"" in text
    # sgw-east is named by its overlay address and, for IPsec, its LAN address too
    east = plan.node("sgw-east")
    shome1 = plan.node("shome1").private_ip
    fwd = text.split("chain policy_fwd {")[1]
    assert f"ip daddr {shome1} ip saddr {{ {east.overlay_ip}, {east.private_ip}, " in fwd, fwd
    if shutil.which("nft"):
        path = tmp_path / "t.nft"
        path.write_text(text)
        res = subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True, text=True)
        assert res.returncode == 0 or "Operation not permitted" in res.stderr, res.stderr
