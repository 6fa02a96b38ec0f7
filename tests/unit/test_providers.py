"""cloudcast/providers: one entry per provider, the Terraform modules' defaults agree with it,
one boto3 session rule, and the package stays at the bottom of the import graph."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import hcl2
import pytest
from botocore.exceptions import ProfileNotFound

from cloudcast.bootstrap.desired import HOST_ROUTED as BOOTSTRAP_HOST_ROUTED
from cloudcast.providers import (
    DEFAULT_SIZE,
    HOST_ROUTED,
    PROVIDERS,
    MemberRoutes,
    aws,
    linode,
    provider_info,
    vultr,
)
from cloudcast.spec.models import Provider

ROOT = Path(__file__).resolve().parents[2]


def _locals(module: str) -> dict[str, Any]:
    doc = hcl2.loads((ROOT / "tf" / module / "main.tf").read_text())
    found: dict[str, Any] = {}
    for block in doc.get("locals", []):
        found.update(block)
    return found


def _text(value: Any) -> str:
    return str(value).strip('"')


def test_every_provider_has_one_entry() -> None:
    assert set(PROVIDERS) == set(Provider)
    assert all(info.provider is p for p, info in PROVIDERS.items())
    assert provider_info("vultr") is provider_info(Provider.VULTR) is vultr.INFO
    assert {p.value for p, i in PROVIDERS.items() if i.cloud} == {"aws", "linode", "vultr"}


def test_defaults_and_routing_are_what_they_were() -> None:
    assert DEFAULT_SIZE == {"aws": "t3.micro", "linode": "g6-nanode-1", "vultr": "vc2-1c-1gb"}
    assert provider_info("aws").member_routes is MemberRoutes.ROUTE_TABLES
    assert provider_info("linode").member_routes is MemberRoutes.IP_RANGES
    assert HOST_ROUTED == BOOTSTRAP_HOST_ROUTED == {"lab", "static", "vultr"}


def test_the_modules_default_images_are_the_registrys() -> None:
    assert _locals("vultr")["default_os_id"] == vultr.DEFAULT_OS_ID
    assert vultr.INFO.default_image == str(vultr.DEFAULT_OS_ID)
    assert _text(_locals("linode")["default_image"]) == linode.DEFAULT_IMAGE == linode.INFO.default_image
    tf_aws = _locals("aws")
    assert _text(tf_aws["default_ami_name"]) == aws.DEFAULT_AMI_NAME == aws.INFO.default_image
    assert _text(tf_aws["canonical_owner_id"]) == aws.CANONICAL_OWNER_ID


def test_the_aws_module_tags_with_the_registrys_keys() -> None:
    tags = str(_locals("aws")["tags"])
    assert f'"{aws.NETWORK_TAG}" = var.name_prefix' in tags
    assert f'"{aws.SITE_TAG}" = var.site' in tags


@pytest.fixture
def aws_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A config file with one profile, `dev`; nothing of the process's own AWS settings."""
    config = tmp_path / "config"
    config.write_text("[profile dev]\nregion = eu-west-3\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("aws_config")
def test_static_keys_win_over_a_profile() -> None:
    env = {"AWS_ACCESS_KEY_ID": "AKIAKEYS", "AWS_SECRET_ACCESS_KEY": "s3cret", "AWS_PROFILE": "missing"}
    session = aws.aws_session(env, "us-west-2")

    creds = session.get_credentials()
    assert creds is not None and creds.access_key == "AKIAKEYS"
    assert session.region_name == "us-west-2"


@pytest.mark.usefixtures("aws_config")
def test_a_profile_is_used_without_keys() -> None:
    session = aws.aws_session({"AWS_PROFILE": "dev", "AWS_ACCESS_KEY_ID": ""})

    assert session.profile_name == "dev"
    assert session.region_name == "eu-west-3"


@pytest.mark.usefixtures("aws_config")
def test_an_unknown_profile_raises_profile_not_found() -> None:
    with pytest.raises(ProfileNotFound):
        aws.aws_session({"AWS_PROFILE": "missing"})


def test_the_endpoint_override() -> None:
    spec: Any = type("S", (), {"aws_endpoint": None})()
    assert aws.aws_endpoint(spec, {"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"}) == "http://127.0.0.1:5000"
    assert aws.aws_endpoint(spec, {"AWS_ENDPOINT_URL": ""}) is None
    spec.aws_endpoint = "http://127.0.0.1:4566"
    assert aws.aws_endpoint(spec, {"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"}) == "http://127.0.0.1:4566"


def test_api_urls() -> None:
    assert linode.api_url({}) == "https://api.linode.com/v4"
    assert linode.api_url({"LINODE_API_URL": "http://127.0.0.1:1/v4/"}) == "http://127.0.0.1:1/v4"
    assert vultr.api_url({}) == "https://api.vultr.com/v2"
    assert vultr.api_url({"VULTR_API_URL": "http://127.0.0.1:1/v2"}) == "http://127.0.0.1:1/v2"


def test_providers_imports_only_spec_and_errors() -> None:
    allowed = ("cloudcast.providers", "cloudcast.spec", "cloudcast.errors")
    for path in sorted((ROOT / "cloudcast" / "providers").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name.startswith("cloudcast"):
                    assert name.startswith(allowed), f"{path.name} imports {name}"
