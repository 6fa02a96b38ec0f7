"""Vultr: the default OS id and the API endpoint."""

from __future__ import annotations

from collections.abc import Mapping

from cloudcast.providers.base import MemberRoutes, ProviderInfo
from cloudcast.spec.models import Provider

DEFAULT_API_URL = "https://api.vultr.com/v2"
# Ubuntu 22.04 x64. tf/vultr/main.tf holds the same id: the module contract (every provider
# module takes the same variables) leaves no way to pass it in, and the module must work on
# its own. tests/unit/test_providers.py keeps the two equal.
DEFAULT_OS_ID = 1743

INFO = ProviderInfo(
    Provider.VULTR,
    "Vultr",
    cloud=True,
    member_routes=MemberRoutes.HOST_ROUTES,
    default_size="vc2-1c-1gb",
    default_image=str(DEFAULT_OS_ID),
    region_example="ewr",
)


def api_url(environ: Mapping[str, str]) -> str:
    """The API base URL: VULTR_API_URL (a test server), else Vultr's."""
    return (environ.get("VULTR_API_URL") or DEFAULT_API_URL).rstrip("/")
