"""AWS route tables follow a gateway failover: routes for a site with a dead primary gateway
point at the standby that took over (the plan `apply` makes when the primary is down)."""

from __future__ import annotations

from cloudcast.inventory.hosts import Host, Inventory
from cloudcast.plan import build_plan
from cloudcast.routes.aws import desired_routes
from cloudcast.spec import parse_spec

SPEC = {
    "name": "t",
    "network": {"overlay": "10.9.0.0/24", "topology": "gateways"},
    "sites": [
        {
            "name": "aws",
            "provider": "aws",
            "region": "us-east-1",
            "cidr": "10.1.0.0/24",
            "nodes": [{"name": "gw1", "role": "gateway"}, {"name": "gw2", "role": "gateway"}, {"name": "app"}],
        },
        {
            "name": "home",
            "provider": "static",
            "cidr": "10.2.0.0/24",
            "nodes": [{"name": "gwh", "role": "gateway", "ssh": {"host": "192.0.2.7"}}],
        },
    ],
}


def test_route_tables_point_at_the_gateway_that_carries_the_site() -> None:
    spec = parse_spec(SPEC)
    plan, alloc = build_plan(spec)
    hosts = tuple(
        Host(n.name, n.site, n.provider, "192.0.2.1", 22, "root", None, None, None, eni_id=f"eni-{n.name}")
        for n in plan.nodes
    )
    inv = Inventory(hosts, {"aws": ("rtb-1", "rtb-2")})
    normal, enis = desired_routes(plan, inv)
    assert enis == ["eni-gw1"] and {r.eni for r in normal} == {"eni-gw1"}
    assert {(r.table, r.cidr) for r in normal} == {
        (t, c) for t in ("rtb-1", "rtb-2") for c in ("10.2.0.0/24", "10.9.0.0/24")
    }
    down, _ = build_plan(spec, alloc, down={"gw1"})
    moved, enis = desired_routes(down, inv)
    assert enis == ["eni-gw2"] and {r.eni for r in moved} == {"eni-gw2"}
    assert [(r.table, r.cidr) for r in moved] == [(r.table, r.cidr) for r in normal]
