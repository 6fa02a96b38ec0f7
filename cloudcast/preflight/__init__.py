"""Preflight: read-only provider checks before Terraform runs (credentials, regions, sizes, images).

`preflight(spec, environ)` checks every cloud site of the spec and creates nothing:

- aws: credentials (STS GetCallerIdentity), region (DescribeRegions), instance types
  (DescribeInstanceTypes), AMIs (DescribeImages by id, or the newest image matching a name pattern);
  the endpoint override is `spec.aws_endpoint` or AWS_ENDPOINT_URL.
- linode: LINODE_TOKEN (GET /profile), region and its "VPCs" capability, types, images;
  LINODE_API_URL overrides the API base URL.
- vultr: VULTR_API_KEY (GET /account), region, plan and whether it is offered in the region,
  OS id (or marketplace image id); VULTR_API_URL overrides the API base URL.
- static and lab sites: nothing to check.

It returns a `PreflightReport` (one line per check) and raises `PreflightFailed` (a `PreflightError`)
listing every problem when there is any. Tokens never appear in a message.
"""

from __future__ import annotations

from collections.abc import Mapping

from cloudcast.preflight.report import Check, PreflightFailed, PreflightReport, SiteRef, Status
from cloudcast.spec.models import Provider, Spec

__all__ = ["Check", "PreflightFailed", "PreflightReport", "Status", "preflight"]


def preflight(spec: Spec, environ: Mapping[str, str], *, raise_on_problems: bool = True) -> PreflightReport:
    """Check every cloud site against its provider's API; raise `PreflightFailed` if anything is wrong."""
    report = PreflightReport()
    by_provider: dict[Provider, list[SiteRef]] = {}
    for index, site in enumerate(spec.sites):
        ref = SiteRef(index, site)
        if site.provider is Provider.STATIC:
            report.skipped("static site: nothing to check", ref)
        elif site.provider is Provider.LAB:
            report.skipped("lab site: runs on this machine, no provider to check", ref)
        else:
            by_provider.setdefault(site.provider, []).append(ref)

    for provider, refs in by_provider.items():
        if provider is Provider.AWS:
            from cloudcast.preflight.aws import check_aws

            check_aws(spec, environ, refs, report)
        elif provider is Provider.LINODE:
            from cloudcast.preflight.linode import check_linode

            check_linode(environ, refs, report)
        elif provider is Provider.VULTR:
            from cloudcast.preflight.vultr import check_vultr

            check_vultr(environ, refs, report)

    if raise_on_problems and report.problems:
        raise PreflightFailed(report)
    return report
