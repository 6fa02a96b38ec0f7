"""AWS: tag keys, the default image, the endpoint override and the one boto3 session factory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cloudcast.providers.base import MemberRoutes, ProviderInfo
from cloudcast.spec.models import Provider, Spec

if TYPE_CHECKING:
    import boto3
    from botocore.config import Config

#: tag keys on every AWS resource: the provider's default_tags; tf/aws sets the same keys itself
#: (the tests find a network's resources by them)
NETWORK_TAG = "cloudcast:network"
SITE_TAG = "cloudcast:site"

# The default image, and whose images a name pattern may match: tf/aws/main.tf holds the same
# values, as it must work on its own (tests/unit/test_providers.py keeps the two equal).
DEFAULT_AMI_NAME = "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*"
CANONICAL_OWNER_ID = "099720109477"
CUSTOM_PATTERN_OWNERS = ("self", "amazon", CANONICAL_OWNER_ID)

INFO = ProviderInfo(
    Provider.AWS,
    "AWS",
    cloud=True,
    member_routes=MemberRoutes.ROUTE_TABLES,
    default_size="t3.micro",
    default_image=DEFAULT_AMI_NAME,
    region_example="us-east-1",
)


def aws_endpoint(spec: Spec, environ: Mapping[str, str]) -> str | None:
    """The AWS endpoint override from the spec or AWS_ENDPOINT_URL (moto, LocalStack)."""
    return spec.aws_endpoint or environ.get("AWS_ENDPOINT_URL") or None


def aws_session(environ: Mapping[str, str], region: str | None = None) -> boto3.session.Session:
    """A boto3 session from the command's environment `environ`.

    Static keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) win; AWS_PROFILE
    is used only when no key id is set. An unknown profile raises botocore's ProfileNotFound.
    """
    import boto3  # imported here: a second of start-up saved for every run that never calls AWS

    key_id = environ.get("AWS_ACCESS_KEY_ID") or None
    return boto3.session.Session(
        aws_access_key_id=key_id,
        aws_secret_access_key=environ.get("AWS_SECRET_ACCESS_KEY") or None,
        aws_session_token=environ.get("AWS_SESSION_TOKEN") or None,
        # beside keys a profile could only fail (when missing) or bring in another region
        profile_name=None if key_id else (environ.get("AWS_PROFILE") or None),
        region_name=region,
    )


def client_config(**extra: Any) -> Config:
    """Client settings: short timeouts and three standard retries, so a dead endpoint fails fast."""
    from botocore.config import Config

    return Config(
        connect_timeout=5, read_timeout=20, retries={"max_attempts": 3, "mode": "standard"}, **extra
    )
