"""The address plan: deterministic, stable under change, peers and endpoints per topology."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cloudcast.plan import Allocations, build_plan
from cloudcast.spec import parse_spec
from cloudcast.state.store import Secrets, ensure_psks


def spec_of(sites: list[dict[str, Any]], **network: Any) -> Any:
    return parse_spec({"name": "t", "network": {"overlay": "10.15.0.0/16", **network}, "sites": sites})


def lab_site(name: str, nodes: list[Any]) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "lab",
        "nodes": [n if isinstance(n, dict) else {"name": n} for n in nodes],
    }


def test_same_spec_and_state_give_identical_bytes() -> None:
    spec = spec_of(
        [
            lab_site("a", ["n1", "n2", "n3"]),
            {"name": "s", "provider": "static", "nodes": [{"name": "x", "ssh": {"host": "h"}}]},
        ]
    )
    p1, a1 = build_plan(spec, Allocations())
    p2, _ = build_plan(spec, a1)
    p3, _ = build_plan(spec, Allocations.from_dict(a1.to_dict()))
    assert p1.to_json() == p2.to_json() == p3.to_json()


def test_mesh_pairs_endpoints_and_keepalive() -> None:
    spec = spec_of(
        [
            lab_site("a", ["p1", "p2", {"name": "nat1", "behind_nat": True}]),
            lab_site("b", ["q1"]),
        ]
    )
    plan, _ = build_plan(spec)
    assert plan.pairs() == ["nat1--p1", "nat1--p2", "nat1--q1", "p1--p2", "p1--q1", "p2--q1"]
    p1 = {link.peer: link for link in plan.node("p1").peers}
    assert p1["p2"].endpoint == "private"  # same site
    assert p1["q1"].endpoint == "public"  # across sites
    assert p1["nat1"].endpoint is None  # never toward a node behind NAT
    assert p1["nat1"].keepalive is None  # keepalive only on the NAT side
    nat = {link.peer: link for link in plan.node("nat1").peers}
    assert {link.keepalive for link in nat.values()} == {25}
    assert nat["q1"].endpoint == "public"


def test_nat_to_nat_goes_through_a_relay() -> None:
    spec = spec_of(
        [lab_site("a", ["pub", {"name": "n1", "behind_nat": True}, {"name": "n2", "behind_nat": "double"}])]
    )
    plan, alloc = build_plan(spec)
    assert "n1--n2" not in plan.pairs()
    n1 = {link.peer: link for link in plan.node("n1").peers}
    assert f"{alloc.overlay['n2']}/32" in n1["pub"].allowed_ips
    assert plan.node("pub").forwards


def test_gateways_topology_routes_members_through_gateway() -> None:
    spec = spec_of(
        [
            {
                "name": "a",
                "provider": "lab",
                "cidr": "10.1.0.0/24",
                "nodes": [{"name": "gwa", "role": "gateway"}, {"name": "ma"}],
            },
            {
                "name": "b",
                "provider": "lab",
                "cidr": "10.2.0.0/24",
                "nodes": [{"name": "gwb", "role": "gateway"}, {"name": "mb"}],
            },
        ],
        topology="gateways",
    )
    plan, _ = build_plan(spec)
    assert plan.pairs() == ["gwa--gwb"]
    ma = plan.node("ma")
    assert (ma.vpn, ma.gateway, ma.routes) == (False, "gwa", ("10.15.0.0/16", "10.2.0.0/24"))
    gwa = plan.node("gwa")
    assert gwa.forwards
    assert gwa.peers[0].allowed_ips == (f"{plan.node('gwb').overlay_ip}/32", "10.2.0.0/24")


def test_hub_topology_spokes_peer_only_with_hub() -> None:
    # a site with a hub or gateway routes its members; a site with neither is all spokes
    spec = spec_of(
        [lab_site("a", [{"name": "hub", "role": "hub"}, "m1"]), lab_site("b", ["s1", "s2", "s3"])],
        topology="hub",
    )
    plan, _ = build_plan(spec)
    assert plan.pairs() == ["hub--s1", "hub--s2", "hub--s3"]
    s1 = plan.node("s1").peers[0]
    assert s1.peer == "hub"
    assert f"{plan.node('s2').overlay_ip}/32" in s1.allowed_ips
    assert plan.node("m1").gateway == "hub" and not plan.node("m1").vpn


def test_allocated_site_cidrs_avoid_fixed_ones_and_overlay() -> None:
    spec = spec_of(
        [
            {"name": "fixed", "provider": "lab", "cidr": "10.128.0.0/24", "nodes": [{"name": "a"}]},
            lab_site("free", ["b"]),
        ]
    )
    plan, _ = build_plan(spec)
    assert plan.site("free").cidr == "10.128.1.0/24"
    assert plan.site("free").cidr_allocated


def test_psk_per_pair_generated_once_and_kept() -> None:
    spec = spec_of([lab_site("a", ["x", "y", "z"])])
    plan, _ = build_plan(spec)
    first, created = ensure_psks(plan, Secrets())
    assert created == 3 and len(set(first.psk.values())) == 3
    again, created2 = ensure_psks(plan, first)
    assert created2 == 0 and again.psk == first.psk
    assert "masked" in repr(again) and first.psk["x--y"] not in repr(again)


def test_plan_carries_no_secret() -> None:
    spec = spec_of([lab_site("a", ["x", "y"])])
    plan, _ = build_plan(spec)
    secrets, _ = ensure_psks(plan, Secrets())
    assert all(psk not in plan.to_json() for psk in secrets.psk.values())


NAMES = [f"n{i}" for i in range(12)]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["add", "remove", "add-site", "remove-site"]), st.integers(0, 11)),
        min_size=1,
        max_size=25,
    )
)
def test_existing_addresses_never_change(ops: list[tuple[str, int]]) -> None:
    sites: dict[str, list[str]] = {"s0": ["n0"]}
    alloc = Allocations()
    plan, alloc = build_plan(spec_of([lab_site(k, v) for k, v in sites.items()]), alloc)
    for op, i in ops:
        name = NAMES[i]
        present = {n for v in sites.values() for n in v}
        if op == "add" and name not in present:
            sites[sorted(sites)[i % len(sites)]].append(name)
        elif op == "remove" and name in present:
            for v in sites.values():
                if name in v and len(v) > 1:
                    v.remove(name)
        elif op == "add-site" and f"s{i}" not in sites and name not in present:
            sites[f"s{i}"] = [name]
        elif op == "remove-site" and f"s{i}" in sites and len(sites) > 1:
            del sites[f"s{i}"]
        before = {n.name: (n.overlay_ip, n.lab) for n in plan.nodes}
        site_before = {s.name: s.cidr for s in plan.sites}
        plan, alloc = build_plan(spec_of([lab_site(k, v) for k, v in sites.items()]), alloc)
        for node in plan.nodes:
            if node.name in before:
                assert (node.overlay_ip, node.lab) == before[node.name]
        for site in plan.sites:
            if site.name in site_before:
                assert site.cidr == site_before[site.name]
        ips = [n.overlay_ip for n in plan.nodes]
        assert len(ips) == len(set(ips))
        cidrs = [s.cidr for s in plan.sites]
        assert len(cidrs) == len(set(cidrs))
