"""Linode: the default image and the API endpoint."""

from __future__ import annotations

from collections.abc import Mapping

from cloudcast.providers.base import MemberRoutes, ProviderInfo
from cloudcast.spec.models import Provider

DEFAULT_API_URL = "https://api.linode.com/v4"
# tf/linode/main.tf holds the same value (tests/unit/test_providers.py keeps the two equal)
DEFAULT_IMAGE = "linode/ubuntu22.04"

INFO = ProviderInfo(
    Provider.LINODE,
    "Linode",
    cloud=True,
    member_routes=MemberRoutes.IP_RANGES,
    default_size="g6-nanode-1",
    default_image=DEFAULT_IMAGE,
    region_example="us-east",
)


def api_url(environ: Mapping[str, str]) -> str:
    """The API base URL: LINODE_API_URL (a test server), else Linode's."""
    return (environ.get("LINODE_API_URL") or DEFAULT_API_URL).rstrip("/")
