"""The shape of what differs per provider (`ProviderInfo`), without any provider in it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from cloudcast.spec.models import Provider


class MemberRoutes(StrEnum):
    """How a site's members reach other sites through their gateway."""

    ROUTE_TABLES = "route tables"  # cloudcast points the VPC's route tables at the gateway's ENI (AWS)
    IP_RANGES = "ip_ranges"  # the gateway's VPC interface holds the remote CIDRs (Linode, in tf/linode)
    HOST_ROUTES = "host routes"  # bootstrap installs routes via the gateway on each member over SSH


@dataclass(frozen=True)
class ProviderInfo:
    """One provider's defaults and conventions; "" where cloudcast has none (static, lab)."""

    provider: Provider
    title: str  # as people write it in messages
    cloud: bool  # instances made by Terraform from tf/<provider>, checked by preflight first
    member_routes: MemberRoutes
    default_size: str = ""  # a node's `size` when the spec gives none
    default_image: str = ""  # what the module runs for `image: ""` (the module holds the same value)
    region_example: str = ""  # a real region id, for hints
