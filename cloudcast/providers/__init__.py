"""What is per provider, in one place: defaults, hints, how members are routed, endpoints.

`provider_info(p)` is a provider's `ProviderInfo`; aws.py, linode.py and vultr.py add what only
that provider has (AWS tags and the boto3 session factory, the API URLs, the Vultr OS id).
This package imports spec and errors only: every stage may use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from cloudcast.providers import aws, linode, vultr
from cloudcast.providers.base import MemberRoutes, ProviderInfo
from cloudcast.spec.models import Provider

__all__ = ["DEFAULT_SIZE", "HOST_ROUTED", "PROVIDERS", "MemberRoutes", "ProviderInfo", "provider_info"]

STATIC = ProviderInfo(Provider.STATIC, "static", cloud=False, member_routes=MemberRoutes.HOST_ROUTES)
LAB = ProviderInfo(Provider.LAB, "lab", cloud=False, member_routes=MemberRoutes.HOST_ROUTES)

PROVIDERS: Mapping[Provider, ProviderInfo] = MappingProxyType(
    {info.provider: info for info in (aws.INFO, linode.INFO, vultr.INFO, STATIC, LAB)}
)


def provider_info(provider: Provider | str) -> ProviderInfo:
    """The registry entry of `provider` (an enum member or its value, as plans carry it)."""
    return PROVIDERS[Provider(provider)]


#: provider value -> a node's size when the spec gives none (cloud providers only)
DEFAULT_SIZE: dict[str, str] = {p.value: i.default_size for p, i in PROVIDERS.items() if i.default_size}
#: provider values whose members get host routes over SSH
HOST_ROUTED: frozenset[str] = frozenset(
    p.value for p, i in PROVIDERS.items() if i.member_routes is MemberRoutes.HOST_ROUTES
)
