"""Spec builders and credentials shared by the preflight tests."""

from __future__ import annotations

from typing import Any

from cloudcast.spec.models import Spec

LINODE_TOKEN = "linode-test-token-5f1c2a9e"
VULTR_KEY = "VULTRTESTKEY0123456789ABCDEFGHIJKLMN"
AWS_SECRET = "preflight-test-secret-key-0123456789"


def make_spec(*sites: dict[str, Any]) -> Spec:
    return Spec.model_validate({"name": "pf", "sites": list(sites)})


def site(name: str, provider: str, region: str | None, *nodes: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {"name": name, "provider": provider, "nodes": list(nodes) or [{"name": f"{name}-1"}]}
    if region is not None:
        data["region"] = region
    return data


def node(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, **fields}
