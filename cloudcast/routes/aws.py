"""AWS route tables: remote site CIDRs and the overlay point at the site's gateway ENI (boto3).

Only routes cloudcast created (recorded in state) are ever changed or removed; a route some
other party made for the same CIDR is reported as a conflict unless `replace` is set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from cloudcast.errors import RoutesError
from cloudcast.events import NullReporter, Reporter
from cloudcast.inventory import Inventory
from cloudcast.plan.model import NetworkPlan
from cloudcast.providers import MemberRoutes, provider_info
from cloudcast.providers.aws import aws_session


@dataclass(frozen=True, order=True)
class Route:
    site: str
    table: str
    cidr: str
    eni: str

    def key(self) -> str:
        return f"{self.table}:{self.cidr}"

    def to_dict(self) -> dict[str, str]:
        return {"site": self.site, "table": self.table, "cidr": self.cidr, "eni": self.eni}


@dataclass
class RoutesResult:
    created: list[Route] = field(default_factory=list)
    replaced: list[Route] = field(default_factory=list)
    deleted: list[Route] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    source_dest_disabled: list[str] = field(default_factory=list)
    recorded: list[Route] = field(default_factory=list)  # what cloudcast owns afterwards

    @property
    def changed(self) -> bool:
        return bool(self.created or self.replaced or self.deleted or self.source_dest_disabled)


def routed_sites(plan: NetworkPlan) -> list[str]:
    """Sites whose route tables cloudcast programs (AWS): gateways and hub topologies only."""
    if plan.topology == "mesh":
        return []
    return [
        s.name
        for s in plan.sites
        if provider_info(s.provider).member_routes is MemberRoutes.ROUTE_TABLES and s.gateways
    ]


def describe(plan: NetworkPlan) -> list[str]:
    """Human lines for `plan`: which routes each AWS site's tables will get."""
    lines = []
    for name in routed_sites(plan):
        site = plan.site(name)
        cidrs = [s.cidr for s in plan.sites if s.name != name] + [plan.overlay]
        lines.append(
            f"{name}: every route table -> {', '.join(cidrs)} via {site.gateways[0]}'s ENI "
            "(source/dest check off)"
        )
    return lines


def desired_routes(plan: NetworkPlan, inv: Inventory) -> tuple[list[Route], list[str]]:
    """Routes every routed site's tables should have, and the gateway ENIs."""
    routes: list[Route] = []
    enis: list[str] = []
    for name in routed_sites(plan):
        site = plan.site(name)
        eni = inv.host(site.gateways[0]).eni_id
        if not eni:
            raise RoutesError(f"site {name!r}: gateway {site.gateways[0]!r} has no ENI id in the outputs")
        enis.append(eni)
        cidrs = [s.cidr for s in plan.sites if s.name != name] + [plan.overlay]
        for table in inv.route_tables.get(name, ()):
            routes += [Route(name, table, cidr, eni) for cidr in cidrs]
    return sorted(routes), enis


def program(
    plan: NetworkPlan,
    inv: Inventory,
    recorded: list[dict[str, str]],
    *,
    regions: Mapping[str, str],
    endpoint: str | None = None,
    environ: Mapping[str, str] | None = None,
    replace: bool = False,
    reporter: Reporter | None = None,
) -> RoutesResult:
    """Make the route tables match: create, replace (ours, or any with `replace`), delete stale ours."""
    rep = reporter or NullReporter()
    want, enis = desired_routes(plan, inv)
    owned = {Route(**r).key(): Route(**r) for r in recorded}
    result = RoutesResult()
    clients: dict[str, Any] = {}
    try:
        session = aws_session(environ or {})
    except BotoCoreError as exc:  # an unknown AWS_PROFILE
        raise RoutesError(f"AWS route programming failed: {exc}") from None

    def ec2(site: str) -> Any:
        region = regions[site]
        if region not in clients:
            clients[region] = session.client("ec2", region_name=region, endpoint_url=endpoint)
        return clients[region]

    try:
        # Terraform turns the check off on the gateway instances (tf/aws), which real AWS applies
        # to their primary ENI. It is checked on the ENI itself here, because the routes target
        # the ENI and an emulator (moto) keeps the two apart (tests/terraform/test_cli_aws.py).
        for site, eni in zip(routed_sites(plan), enis, strict=True):
            client = ec2(site)
            attr = client.describe_network_interface_attribute(
                NetworkInterfaceId=eni, Attribute="sourceDestCheck"
            )
            if attr.get("SourceDestCheck", {}).get("Value", True):
                client.modify_network_interface_attribute(
                    NetworkInterfaceId=eni, SourceDestCheck={"Value": False}
                )
                result.source_dest_disabled.append(eni)
                rep.event(site, "routes", f"source/dest check disabled on {eni}")
        tables = _current(want, owned, ec2)
        keep: list[Route] = []
        for route in want:
            current = tables.get(route.table, {}).get(route.cidr)
            if current == route.eni:
                keep.append(route)
                continue
            client = ec2(route.site)
            if current is None:
                client.create_route(
                    RouteTableId=route.table, DestinationCidrBlock=route.cidr, NetworkInterfaceId=route.eni
                )
                result.created.append(route)
                rep.event(route.site, "routes", f"{route.table}: + {route.cidr} -> {route.eni}")
            elif route.key() in owned or replace:
                client.replace_route(
                    RouteTableId=route.table, DestinationCidrBlock=route.cidr, NetworkInterfaceId=route.eni
                )
                result.replaced.append(route)
                rep.event(route.site, "routes", f"{route.table}: ~ {route.cidr} -> {route.eni}")
            else:
                conflict = f"{route.table}: {route.cidr} already routes to {current} (not made by cloudcast)"
                result.conflicts.append(conflict)
                rep.event(route.site, "routes", f"conflict: {conflict}")
                continue
            keep.append(route)
        wanted = {r.key() for r in want}
        for key, route in sorted(owned.items()):
            if key in wanted:
                continue
            current = tables.get(route.table, {}).get(route.cidr)
            if current == route.eni and route.site in regions:
                ec2(route.site).delete_route(RouteTableId=route.table, DestinationCidrBlock=route.cidr)
                result.deleted.append(route)
                rep.event(route.site, "routes", f"{route.table}: - {route.cidr}")
    except (ClientError, BotoCoreError) as exc:
        raise RoutesError(f"AWS route programming failed: {exc}") from None
    result.recorded = keep
    if not result.changed and not result.conflicts:
        rep.event("", "routes", f"{len(keep)} routes already in place; nothing changed")
    return result


def _current(want: list[Route], owned: Mapping[str, Route], ec2: Any) -> dict[str, dict[str, str | None]]:
    """Route table id -> destination CIDR -> target (ENI id, gateway id, or None)."""
    by_site: dict[str, set[str]] = {}
    for route in [*want, *owned.values()]:
        by_site.setdefault(route.site, set()).add(route.table)
    out: dict[str, dict[str, str | None]] = {}
    for site, tables in by_site.items():
        try:
            resp = ec2(site).describe_route_tables(RouteTableIds=sorted(tables))
        except KeyError:
            continue  # the site is gone from the spec; its tables went with Terraform
        except ClientError as exc:
            if "NotFound" in str(exc):
                continue
            raise
        for table in resp.get("RouteTables", []):
            routes = out.setdefault(table["RouteTableId"], {})
            for r in table.get("Routes", []):
                cidr = r.get("DestinationCidrBlock")
                if cidr:
                    routes[cidr] = r.get("NetworkInterfaceId") or r.get("GatewayId") or r.get("InstanceId")
    return out
