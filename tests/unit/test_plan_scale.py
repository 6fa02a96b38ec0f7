"""Planning at scale: any CIDR size, address arithmetic, and the fast JSON equal to the slow one.

Correctness only: nothing here is timed (benchmarks/bench_compile.py measures).
"""

from __future__ import annotations

import dataclasses
import json
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudcast.plan import Allocations, build_plan
from cloudcast.plan.allocate import _subnets, host_range
from cloudcast.plan.jsontext import dumps
from cloudcast.plan.model import Link, NetworkPlan
from cloudcast.spec import load_spec, parse_spec
from cloudcast.terraform.compile import compile_root

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def big_spec(site_cidr: str, overlay: str) -> Any:
    """Three lab nodes in one site of `site_cidr`; `gateways` gives the site a LAN to allocate in."""
    nodes = [{"name": "gw", "role": "gateway"}, {"name": "m1"}, {"name": "m2"}]
    return parse_spec(
        {
            "name": "big",
            "network": {"overlay": overlay, "topology": "gateways"},
            "sites": [{"name": "big", "provider": "lab", "cidr": site_cidr, "nodes": nodes}],
        }
    )


def test_a_slash_8_site_compiles(tmp_path: Path) -> None:
    spec = big_spec("10.0.0.0/8", "172.16.0.0/24")
    plan, alloc = build_plan(spec)
    # the 10th host onwards, as in a /24 (AWS keeps the first addresses for itself)
    assert alloc.private == {"gw": "10.0.0.10", "m1": "10.0.0.11", "m2": "10.0.0.12"}
    assert plan.node("m1").gateway == "gw"
    root = json.loads(compile_root(spec, plan, tmp_path, environ={}).read_text())
    nodes = root["module"]["site_big"]["nodes"]
    assert {name: n["lan_ip"] for name, n in nodes.items()} == {
        "gw": "10.0.0.10/8",
        "m1": "10.0.0.11/8",
        "m2": "10.0.0.12/8",
    }
    again, _ = build_plan(spec, alloc)
    assert again.to_json() == plan.to_json()


def test_a_slash_8_overlay_compiles(tmp_path: Path) -> None:
    spec = big_spec("172.16.0.0/24", "10.0.0.0/8")
    plan, alloc = build_plan(spec)
    assert alloc.overlay == {"gw": "10.0.0.1", "m1": "10.0.0.2", "m2": "10.0.0.3"}
    assert plan.node("m1").routes == ("10.0.0.0/8",)
    assert compile_root(spec, plan, tmp_path, environ={}).exists()


def test_a_slash_8_keeps_earlier_addresses_and_skips_taken_ones() -> None:
    spec = big_spec("10.0.0.0/8", "172.16.0.0/24")
    previous = Allocations(private={"m1": "10.200.0.1", "gone": "10.0.0.10"})
    _, alloc = build_plan(spec, previous)
    # m1 keeps its address; a removed node's address stays out of reach for this change
    assert alloc.private == {"gw": "10.0.0.11", "m1": "10.200.0.1", "m2": "10.0.0.12"}


@pytest.mark.parametrize("prefix", [8, 16, 24, 28, 29, 30, 31, 32])
def test_host_range_is_hosts_without_the_list(prefix: int) -> None:
    net = IPv4Network(f"10.0.0.0/{prefix}")
    hosts = host_range(net)
    if prefix >= 20:
        assert list(hosts) == [int(ip) for ip in net.hosts()]
    else:  # the ends only: the whole list is what this replaces
        gen = net.hosts()
        assert hosts[0] == int(next(gen))
        assert hosts[-1] == int(net.broadcast_address) - 1
        assert len(hosts) == net.num_addresses - 2


@settings(max_examples=200, deadline=None)
@given(
    pool_prefix=st.integers(min_value=18, max_value=24),
    prefix=st.integers(min_value=18, max_value=28),
    taken=st.lists(
        st.tuples(st.integers(min_value=0, max_value=(1 << 14) - 1), st.integers(min_value=16, max_value=30)),
        max_size=6,
    ),
    wanted=st.integers(min_value=0, max_value=12),
)
def test_site_subnets_are_the_first_free_ones(
    pool_prefix: int, prefix: int, taken: list[tuple[int, int]], wanted: int
) -> None:
    """Jumping past a taken network gives what testing every subnet of the pool gave."""
    pool = IPv4Network(f"10.128.0.0/{pool_prefix}")
    nets = [IPv4Network((int(pool.network_address) + (off << 4), p), strict=False) for off, p in taken]
    mine = list(nets)
    got = []
    candidates = _subnets(pool, prefix, mine)
    for _ in range(wanted):
        cand = next(candidates, None)
        if cand is None:
            break
        got.append(cand)
        mine.append(cand)
    # the old way: every subnet of the pool in turn, each one given out joining the taken ones
    want: list[IPv4Network] = []
    ref = list(nets)
    if prefix >= pool_prefix:
        for cand in pool.subnets(new_prefix=prefix):
            if len(want) == wanted:
                break
            if not any(cand.overlaps(t) for t in ref):
                want.append(cand)
                ref.append(cand)
    assert got == want


def plans() -> list[NetworkPlan]:
    """Plans of every shape: the examples, NAT relays, standby gateways (failover rules), hubs."""
    out = [build_plan(load_spec(p))[0] for p in sorted(EXAMPLES.glob("*.json")) if "schema" not in p.name]
    sites = [
        {
            "name": f"s{i}",
            "provider": "lab",
            "nodes": [
                {"name": f"s{i}g1", "role": "gateway", "behind_nat": i == 2},
                {"name": f"s{i}g2", "role": "gateway"},
                {"name": f"s{i}m", "behind_nat": "double" if i == 1 else False},
            ],
        }
        for i in range(3)
    ]
    for topology in ("mesh", "gateways"):
        spec = parse_spec({"name": "t", "network": {"topology": topology}, "sites": sites})
        out.append(build_plan(spec)[0])
    return out


def test_plan_json_is_json_dumps_of_to_dict() -> None:
    for plan in plans():
        data = plan.to_dict()
        assert plan.to_json() == json.dumps(data, sort_keys=True, indent=1) + "\n", plan.name


def test_plan_to_dict_is_asdict() -> None:
    for plan in plans():
        ref = dataclasses.asdict(plan)
        del ref["notes"]
        ref["warnings"] = list(plan.warnings)
        if ref.get("policy", 0) is None:
            del ref["policy"]
        assert plan.to_dict() == ref, plan.name
        assert list(plan.to_dict()) == list(ref), plan.name


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4)
    | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(value=json_values, indent=st.sampled_from([1, 2]))
def test_dumps_is_json_dumps(value: Any, indent: int) -> None:
    assert dumps(value, indent=indent) == json.dumps(value, sort_keys=True, indent=indent)


def test_dumps_of_records_and_shared_objects() -> None:
    link = Link(peer="b", endpoint=None, keepalive=25, allowed_ips=("10.0.0.2/32",))
    routes = ("10.0.0.0/8", "10.1.0.0/24")
    value = {"x": [link, link, {"deeper": [link]}], "r": [routes, routes]}
    plain = {"x": [dataclasses.asdict(link)] * 2 + [{"deeper": [dataclasses.asdict(link)]}], "r": [routes] * 2}
    assert dumps(value, indent=1, memo=(Link, tuple)) == json.dumps(plain, sort_keys=True, indent=1)
    assert dumps(value, indent=2) == json.dumps(plain, sort_keys=True, indent=2)


def test_dumps_leaves_keys_that_are_not_strings_to_json() -> None:
    assert dumps({3: "a", 1: [None]}, indent=1) == json.dumps({3: "a", 1: [None]}, sort_keys=True, indent=1)
    with pytest.raises(TypeError):  # as json.dumps: mixed keys do not sort
        dumps({3: "a", "b": 1}, indent=1)
