"""AWS checks with boto3: credentials (STS), region, instance types and AMIs. Read-only calls."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
)

from cloudcast.preflight.report import (
    PreflightReport,
    SiteRef,
    did_you_mean,
    group_nodes,
    nodes_phrase,
)
from cloudcast.providers.aws import (
    CANONICAL_OWNER_ID,
    CUSTOM_PATTERN_OWNERS,
    DEFAULT_AMI_NAME,
    INFO,
    aws_endpoint,
    aws_session,
    client_config,
)
from cloudcast.spec.models import Spec

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_ec2.client import EC2Client
    from mypy_boto3_ec2.literals import InstanceTypeType
    from mypy_boto3_ec2.type_defs import ImageTypeDef

__all__ = ["DEFAULT_AMI_NAME", "ami_owners", "check_aws", "newest_image"]

_CONFIG = client_config()


def ami_owners(pattern: str) -> list[str]:
    """Owners searched for an AMI name pattern, as the Terraform module does."""
    return [CANONICAL_OWNER_ID] if pattern == DEFAULT_AMI_NAME else list(CUSTOM_PATTERN_OWNERS)


def newest_image(images: list[ImageTypeDef]) -> ImageTypeDef | None:
    """The image Terraform's `most_recent = true` picks: the latest CreationDate (ISO 8601 sorts)."""
    if not images:
        return None
    return max(images, key=lambda image: (image.get("CreationDate", ""), image.get("ImageId", "")))


def _error_code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", "") or "")


def _describe(err: ClientError) -> str:
    error = err.response.get("Error", {})
    code = error.get("Code", "error")
    message = error.get("Message", "")
    return f"{code}: {message}" if message else str(code)


class _AWS:
    def __init__(self, spec: Spec, environ: Mapping[str, str], report: PreflightReport) -> None:
        self.report = report
        self.endpoint = aws_endpoint(spec, dict(environ))
        self.probe_region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.environ = environ
        self._ec2: dict[str, EC2Client] = {}
        self._all_types: dict[str, list[str]] = {}

    def session(self) -> boto3.session.Session | None:
        env = self.environ
        key_id = env.get("AWS_ACCESS_KEY_ID") or None
        secret = env.get("AWS_SECRET_ACCESS_KEY") or None
        token = env.get("AWS_SESSION_TOKEN") or None
        for value in (key_id, secret, token):
            self.report.add_secret(value)
        if bool(key_id) != bool(secret):
            missing = "AWS_SECRET_ACCESS_KEY" if key_id else "AWS_ACCESS_KEY_ID"
            self.report.problem(f"aws: {missing} is not set (the other half of the key pair is)")
            return None
        try:
            return aws_session(env, self.probe_region)
        except ProfileNotFound:
            profile = env.get("AWS_PROFILE")
            self.report.problem(f"aws: AWS_PROFILE {profile!r} is not a configured profile")
            return None

    def client_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"config": _CONFIG}
        if self.endpoint:
            kwargs["endpoint_url"] = self.endpoint
        return kwargs

    def where(self) -> str:
        return f" at {self.endpoint}" if self.endpoint else ""

    def credentials(self, session: boto3.session.Session) -> bool:
        try:
            sts = session.client("sts", region_name=self.probe_region, **self.client_kwargs())
            identity = sts.get_caller_identity()
        except (NoCredentialsError, PartialCredentialsError):
            self.report.problem(
                "aws: no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "or AWS_PROFILE)"
            )
            return False
        except ProfileNotFound as err:
            self.report.problem(f"aws: {err}")
            return False
        except ClientError as err:
            self.report.problem(f"aws: the AWS credentials were rejected ({_describe(err)})")
            return False
        except BotoCoreError as err:
            self.report.problem(f"aws: could not reach AWS STS{self.where()} ({err})")
            return False
        self.report.ok(f"aws: credentials valid (account {identity.get('Account', '?')})")
        return True

    def regions(self, session: boto3.session.Session) -> dict[str, str] | None:
        try:
            ec2 = session.client("ec2", region_name=self.probe_region, **self.client_kwargs())
            regions = ec2.describe_regions(AllRegions=True)["Regions"]
        except ClientError as err:
            self.report.problem(f"aws: cannot list regions (ec2:DescribeRegions: {_describe(err)})")
            return None
        except BotoCoreError as err:
            self.report.problem(f"aws: could not reach EC2{self.where()} ({err})")
            return None
        return {r["RegionName"]: r.get("OptInStatus", "") for r in regions if "RegionName" in r}

    def ec2(self, session: boto3.session.Session, region: str) -> EC2Client:
        if region not in self._ec2:
            self._ec2[region] = session.client("ec2", region_name=region, **self.client_kwargs())
        return self._ec2[region]

    def all_instance_types(self, ec2: EC2Client, region: str) -> list[str]:
        if region not in self._all_types:
            names: list[str] = []
            try:
                for page in ec2.get_paginator("describe_instance_types").paginate():
                    names.extend(t["InstanceType"] for t in page["InstanceTypes"] if "InstanceType" in t)
            except (ClientError, BotoCoreError):
                names = []  # only used for suggestions
            self._all_types[region] = names
        return self._all_types[region]

    def site(self, session: boto3.session.Session, ref: SiteRef, regions: dict[str, str]) -> None:
        region = ref.site.region
        if not region:
            hint = f"{INFO.title} sites need one, e.g. {INFO.region_example!r}"
            self.report.problem(f"no region set ({hint})", ref)
            return
        if region not in regions:
            self.report.problem(f"region {region!r} does not exist{did_you_mean(region, regions)}", ref)
            return
        if regions[region] == "not-opted-in":
            self.report.problem(
                f"region {region!r} is not enabled for this AWS account (opt in to it first)", ref
            )
            return
        self.report.ok(f"region {region!r} exists", ref)
        ec2 = self.ec2(session, region)
        try:
            for size, nodes in group_nodes(ref.site, "size", INFO.default_size).items():
                self.instance_type(ec2, ref, region, size, nodes)
            for image, nodes in group_nodes(ref.site, "image", INFO.default_image).items():
                self.image(ec2, ref, region, image, nodes)
        except BotoCoreError as err:
            self.report.problem(f"could not reach EC2 in {region}{self.where()} ({err})", ref)

    def instance_type(self, ec2: EC2Client, ref: SiteRef, region: str, size: str, nodes: list[str]) -> None:
        try:
            wanted = cast("list[InstanceTypeType]", [size])  # any string: the API says if it exists
            found = ec2.describe_instance_types(InstanceTypes=wanted)["InstanceTypes"]
        except ClientError as err:
            if _error_code(err) not in ("InvalidInstanceType", "InvalidParameterValue"):
                self.report.problem(f"cannot check instance type {size!r} ({_describe(err)})", ref)
                return
            found = []
        if found:
            self.report.ok(f"instance type {size!r} exists in {region} ({nodes_phrase(nodes)})", ref)
            return
        hint = did_you_mean(size, self.all_instance_types(ec2, region))
        self.report.problem(
            f"instance type {size!r} ({nodes_phrase(nodes)}) does not exist in {region}{hint}", ref
        )

    def image(self, ec2: EC2Client, ref: SiteRef, region: str, image: str, nodes: list[str]) -> None:
        who = nodes_phrase(nodes)
        if image.startswith("ami-"):
            try:
                images = ec2.describe_images(ImageIds=[image])["Images"]
            except ClientError as err:
                if not _error_code(err).startswith("InvalidAMIID"):
                    self.report.problem(f"cannot check AMI {image!r} ({_describe(err)})", ref)
                    return
                images = []
            if not images:
                self.report.problem(f"AMI {image!r} ({who}) does not exist in {region}", ref)
            elif images[0].get("State", "available") != "available":
                state = images[0].get("State")
                self.report.problem(f"AMI {image!r} ({who}) is {state}, not available", ref)
            else:
                self.report.ok(f"AMI {image!r} exists in {region} ({who})", ref)
            return
        owners = ami_owners(image)
        try:
            images = ec2.describe_images(
                Owners=owners,
                Filters=[{"Name": "name", "Values": [image]}, {"Name": "state", "Values": ["available"]}],
            )["Images"]
        except ClientError as err:
            self.report.problem(f"cannot look up AMI name {image!r} ({_describe(err)})", ref)
            return
        chosen = newest_image(images)
        if chosen is None:
            self.report.problem(
                f"no available AMI in {region} has a name matching {image!r} "
                f"(owners {', '.join(owners)}; {who})",
                ref,
            )
            return
        self.report.ok(
            f"AMI name {image!r} resolves to {chosen.get('ImageId')} ({chosen.get('Name', '')}) "
            f"in {region} ({who})",
            ref,
        )


def check_aws(spec: Spec, environ: Mapping[str, str], sites: list[SiteRef], report: PreflightReport) -> None:
    """Check every AWS site; credentials and the region list are fetched once."""
    aws = _AWS(spec, environ, report)
    session = aws.session()
    regions = None
    if session is not None and aws.credentials(session):
        regions = aws.regions(session)
    if session is None or regions is None:
        for ref in sites:
            report.skipped("AWS checks skipped (see the aws problem above)", ref)
        return
    for ref in sites:
        aws.site(session, ref, regions)
