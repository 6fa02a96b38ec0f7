"""Vultr checks over its v2 REST API (requests): key, region, plan (and where it is offered), OS."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests

from cloudcast.preflight.report import (
    PreflightReport,
    SiteRef,
    did_you_mean,
    group_nodes,
    nodes_phrase,
    short_list,
)
from cloudcast.providers.vultr import INFO, api_url

TIMEOUT = (5.0, 30.0)  # connect, read (seconds)
PER_PAGE = 500
MAX_PAGES = 50


class VultrAPIError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}" if message else str(status))
        self.status = status
        self.message = message


class _Unusable(Exception):
    """The API cannot be used at all (key rejected, unreachable); the message says why."""


class VultrAPI:
    """A minimal read-only client: GET with the bearer key, and cursor pagination for lists."""

    def __init__(self, base_url: str, key: str, *, timeout: tuple[float, float] = TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()
        self._session.headers.update(
            {
                "Authorization": f"Bearer {key}",
                "Accept": "application/json",
                "User-Agent": "cloudcast-preflight",
            }
        )

    def close(self) -> None:
        self._session.close()

    def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        response = self._session.get(f"{self.base_url}{path}", params=params, timeout=self.timeout)
        if not response.ok:
            raise VultrAPIError(response.status_code, _error_text(response))
        body = response.json() if response.content else {}
        if not isinstance(body, dict):
            raise VultrAPIError(0, f"unexpected response from GET {path}")
        return body

    def list(self, path: str, key: str, params: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Every item of a paginated list (`{key: [...], "meta": {"links": {"next": cursor}}}`)."""
        items: list[dict[str, Any]] = []
        query = {"per_page": str(PER_PAGE), **(params or {})}
        for _ in range(MAX_PAGES):
            body = self.get(path, query)
            page = body.get(key) or []
            items.extend(item for item in page if isinstance(item, dict))
            cursor = ((body.get("meta") or {}).get("links") or {}).get("next") or ""
            if not cursor:
                break
            query["cursor"] = str(cursor)
        return items


def _error_text(response: requests.Response) -> str:
    """The API's own `{"error": ...}` message, else the HTTP reason."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("error"):
        return str(body["error"])
    return str(response.reason or "")


class _Vultr:
    def __init__(self, api: VultrAPI, report: PreflightReport) -> None:
        self.api = api
        self.report = report

    def call(
        self, what: str, path: str, key: str | None = None, params: Mapping[str, str] | None = None
    ) -> Any:
        try:
            return self.api.list(path, key, params) if key else self.api.get(path, params)
        except VultrAPIError as err:
            if err.status == 401:
                detail = f": {err.message}" if err.message else ""
                raise _Unusable(f"vultr: VULTR_API_KEY was rejected (401{detail})") from None
            if err.status == 403:
                raise _Unusable(f"vultr: VULTR_API_KEY may not {what} ({err})") from None
            raise _Unusable(f"vultr: the Vultr API failed to {what} (GET {path}: {err})") from None
        except (requests.RequestException, ValueError) as err:  # unreachable, timeouts, bad JSON
            raise _Unusable(f"vultr: could not reach the Vultr API at {self.api.base_url} ({err})") from None

    def key(self) -> None:
        self.call("read the account", "/account")
        self.report.ok("vultr: VULTR_API_KEY valid")

    def catalogue(self) -> tuple[set[str], dict[str, dict[str, Any]], dict[int, str]]:
        regions = {str(r.get("id")) for r in self.call("list regions", "/regions", "regions")}
        plans = {str(p.get("id")): p for p in self.call("list plans", "/plans", "plans")}
        systems = {
            int(o["id"]): str(o.get("name", "")) for o in self.call("list OSes", "/os", "os") if "id" in o
        }
        return regions, plans, systems

    def applications(self) -> set[str]:
        apps = self.call("list applications", "/applications", "applications", {"type": "marketplace"})
        return {str(a["image_id"]) for a in apps if a.get("image_id")}

    def site(
        self,
        ref: SiteRef,
        regions: set[str],
        plans: dict[str, dict[str, Any]],
        systems: dict[int, str],
        apps: set[str],
    ) -> None:
        region = ref.site.region
        region_ok = False
        if not region:
            hint = f"{INFO.title} sites need one, e.g. {INFO.region_example!r}"
            self.report.problem(f"no region set ({hint})", ref)
        elif region not in regions:
            self.report.problem(f"region {region!r} does not exist{did_you_mean(region, regions)}", ref)
        else:
            region_ok = True
            self.report.ok(f"region {region!r} exists", ref)
        for size, nodes in group_nodes(ref.site, "size", INFO.default_size).items():
            who = nodes_phrase(nodes)
            plan = plans.get(size)
            if plan is None:
                self.report.problem(f"plan {size!r} ({who}) does not exist{did_you_mean(size, plans)}", ref)
                continue
            locations = [str(loc) for loc in plan.get("locations") or []]
            if region_ok and region not in locations:
                self.report.problem(
                    f"plan {size!r} ({who}) is not offered in region {region!r} "
                    f"(offered in: {short_list(locations)})",
                    ref,
                )
                continue
            where = f" and offered in {region!r}" if region_ok else ""
            self.report.ok(f"plan {size!r} exists{where} ({who})", ref)
        for image, nodes in group_nodes(ref.site, "image", INFO.default_image).items():
            self.image(ref, image, nodes, systems, apps)

    def image(
        self, ref: SiteRef, image: str, nodes: list[str], systems: dict[int, str], apps: set[str]
    ) -> None:
        who = nodes_phrase(nodes)
        if image.isdigit():
            os_id = int(image)
            if os_id in systems:
                self.report.ok(f"OS id {os_id} exists ({systems[os_id]}; {who})", ref)
            else:
                self.report.problem(f"OS id {os_id} ({who}) does not exist (see GET /v2/os)", ref)
            return
        if image in apps:
            self.report.ok(f"marketplace image {image!r} exists ({who})", ref)
        else:
            self.report.problem(
                f"image {image!r} ({who}) is neither an OS id nor a marketplace image id"
                f"{did_you_mean(image, apps)}",
                ref,
            )


def check_vultr(environ: Mapping[str, str], sites: list[SiteRef], report: PreflightReport) -> None:
    """Check every Vultr site; the key and the catalogues are fetched once."""
    key = report.credential(environ, "VULTR_API_KEY", "Vultr", sites, "API key")
    if key is None:
        return
    base_url = api_url(environ)
    api = VultrAPI(base_url, key)
    vultr = _Vultr(api, report)
    try:
        vultr.key()
        regions, plans, systems = vultr.catalogue()
        # Marketplace images are only listed when a node names one (anything but an OS id).
        marketplace = any(node.image and not node.image.isdigit() for ref in sites for node in ref.site.nodes)
        apps = vultr.applications() if marketplace else set()
    except _Unusable as err:
        report.problem(str(err))
        for ref in sites:
            report.skipped("Vultr checks skipped (see the vultr problem above)", ref)
        return
    finally:
        api.close()
    for ref in sites:
        vultr.site(ref, regions, plans, systems, apps)
