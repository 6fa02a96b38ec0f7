"""Linode checks with linode_api4: token, region (and its VPC capability), types and images. Read-only."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from linode_api4 import LinodeClient
from linode_api4.errors import ApiError
from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter

from cloudcast.preflight.report import (
    PreflightReport,
    SiteRef,
    did_you_mean,
    group_nodes,
    nodes_phrase,
    short_list,
)
from cloudcast.providers.linode import INFO, api_url

VPC_CAPABILITY = "VPCs"
TIMEOUT = (5.0, 30.0)  # connect, read (seconds)


class _TimeoutAdapter(HTTPAdapter):
    """linode_api4 sets no timeout; this adapter gives every request one (and keeps its retries)."""

    # *args/**kwargs: requests' own annotations and types-requests' differ; Session.send passes keywords
    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        kwargs["timeout"] = kwargs.get("timeout") or TIMEOUT
        return super().send(request, *args, **kwargs)


class _Unusable(Exception):
    """The API cannot be used at all (token rejected, unreachable); the message says why."""


def _client(token: str, base_url: str) -> Any:
    client = LinodeClient(
        token, base_url=base_url, user_agent="cloudcast-preflight", retry_max=3, retry_rate_limit_interval=2.0
    )
    # The retries come from the arguments above: the adapter the client mounted on its (public)
    # session, for http:// and https:// alike, holds them; the timeout adapter takes them over.
    retries = client.session.adapters["https://"].max_retries
    adapter = _TimeoutAdapter(max_retries=retries)
    client.session.mount("http://", adapter)
    client.session.mount("https://", adapter)
    return client


def _api_failure(err: ApiError, what: str) -> str:
    status = getattr(err, "status", "?")
    if status == 401:
        return f"LINODE_TOKEN was rejected ({status})"
    reasons = "; ".join(str(r) for r in getattr(err, "errors", []) or []) or str(err)
    if status == 403:
        return f"LINODE_TOKEN may not {what} ({status}: {reasons})"
    return f"the Linode API failed to {what} ({status}: {reasons})"


class _Linode:
    def __init__(self, client: Any, base_url: str, report: PreflightReport) -> None:
        self.client = client
        self.base_url = base_url
        self.report = report

    def call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except ApiError as err:
            raise _Unusable(f"linode: {_api_failure(err, what)}") from err
        except OSError as err:  # requests' errors are OSErrors
            raise _Unusable(f"linode: could not reach the Linode API at {self.base_url} ({err})") from err

    def token(self) -> None:
        profile = self.call("read the profile", self.client.profile)
        self.report.ok(f"linode: LINODE_TOKEN valid (user {getattr(profile, 'username', '?')!r})")

    def catalogue(self) -> tuple[dict[str, Any], set[str], dict[str, Any]]:
        regions = self.call("list regions", lambda: list(self.client.regions()))
        types = self.call("list types", lambda: list(self.client.linode.types()))
        images = self.call("list images", lambda: list(self.client.images()))
        return {r.id: r for r in regions}, {t.id for t in types}, {i.id: i for i in images}

    def site(self, ref: SiteRef, regions: dict[str, Any], types: set[str], images: dict[str, Any]) -> None:
        region = ref.site.region
        if not region:
            hint = f"{INFO.title} sites need one, e.g. {INFO.region_example!r}"
            self.report.problem(f"no region set ({hint})", ref)
        elif region not in regions:
            self.report.problem(f"region {region!r} does not exist{did_you_mean(region, regions)}", ref)
        else:
            self.region(ref, region, regions[region])
        for size, nodes in group_nodes(ref.site, "size", INFO.default_size).items():
            if size in types:
                self.report.ok(f"type {size!r} exists ({nodes_phrase(nodes)})", ref)
            else:
                hint = did_you_mean(size, types)
                self.report.problem(f"type {size!r} ({nodes_phrase(nodes)}) does not exist{hint}", ref)
        for image, nodes in group_nodes(ref.site, "image", INFO.default_image).items():
            self.image(ref, image, nodes, images)

    def region(self, ref: SiteRef, region: str, obj: Any) -> None:
        capabilities = list(getattr(obj, "capabilities", None) or [])
        if VPC_CAPABILITY not in capabilities:
            self.report.problem(
                f"region {region!r} does not offer VPCs (capabilities: {short_list(capabilities, 12)}); "
                "pick a region whose capabilities include 'VPCs'",
                ref,
            )
            return
        self.report.ok(f"region {region!r} exists and offers VPCs", ref)
        status = getattr(obj, "status", "ok")
        if status and status != "ok":
            self.report.warning(f"region {region!r} reports status {status!r}", ref)

    def image(self, ref: SiteRef, image: str, nodes: list[str], images: dict[str, Any]) -> None:
        who = nodes_phrase(nodes)
        obj = images.get(image)
        if obj is None:
            self.report.problem(f"image {image!r} ({who}) does not exist{did_you_mean(image, images)}", ref)
            return
        status = getattr(obj, "status", "available") or "available"
        if status != "available":
            self.report.problem(f"image {image!r} ({who}) is {status}, not available", ref)
            return
        self.report.ok(f"image {image!r} exists ({who})", ref)
        if getattr(obj, "deprecated", False):
            self.report.warning(f"image {image!r} is deprecated", ref)


def check_linode(environ: Mapping[str, str], sites: list[SiteRef], report: PreflightReport) -> None:
    """Check every Linode site; the token and the catalogues are fetched once."""
    token = report.credential(environ, "LINODE_TOKEN", "Linode", sites, "token")
    if token is None:
        return
    base_url = api_url(environ)
    linode = _Linode(_client(token, base_url), base_url, report)
    try:
        linode.token()
        regions, types, images = linode.catalogue()
    except _Unusable as err:
        report.problem(str(err))
        for ref in sites:
            report.skipped("Linode checks skipped (see the linode problem above)", ref)
        return
    for ref in sites:
        try:
            linode.site(ref, regions, types, images)
        except (ApiError, OSError) as err:  # an attribute the list lacked was fetched lazily, and failed
            report.problem(f"could not finish the Linode checks ({err})", ref)
