"""AWS preflight against a real moto server over HTTP."""

from __future__ import annotations

import boto3
import pytest

from cloudcast.errors import PreflightError
from cloudcast.preflight import PreflightFailed, preflight
from cloudcast.preflight.aws import DEFAULT_AMI_NAME, ami_owners, newest_image
from cloudcast.spec.models import Spec
from tests.conftest import MOTO_JAMMY_IDS
from tests.preflight.helpers import AWS_SECRET, make_spec, node, site

JAMMY_IDS = set(MOTO_JAMMY_IDS)


def fails(spec_sites: list[dict[str, object]], env: dict[str, str]) -> PreflightFailed:
    with pytest.raises(PreflightFailed) as caught:
        preflight(make_spec(*spec_sites), env)
    return caught.value


def test_all_good(aws_env: dict[str, str]) -> None:
    spec = make_spec(
        site("aws-east", "aws", "us-east-1", node("hub1", size="t3.small"), node("app1"), node("app2")),
        site("aws-paris", "aws", "eu-west-3", node("gw1", image="ami-0a1b2c3d4e5f60718")),
        site("home", "static", None, node("nas", ssh={"host": "192.0.2.10"})),
        site("bench", "lab", None, node("lab1")),
    )
    report = preflight(spec, aws_env)

    assert report.passed and report.problems == []
    lines = report.lines()
    assert "ok: aws: credentials valid (account 123456789012)" in lines
    assert "ok: sites[0] (aws-east): region 'us-east-1' exists" in lines
    assert "ok: sites[0] (aws-east): instance type 't3.small' exists in us-east-1 (node hub1)" in lines
    assert "ok: sites[0] (aws-east): instance type 't3.micro' exists in us-east-1 (nodes app1, app2)" in lines
    resolved = [line for line in lines if line.startswith(f"ok: sites[0] (aws-east): AMI name '{DEFAULT_AMI_NAME}'")]
    assert len(resolved) == 1 and any(ami in resolved[0] for ami in JAMMY_IDS), lines
    assert "(nodes hub1, app1, app2)" in resolved[0]
    assert "ok: sites[1] (aws-paris): AMI 'ami-0a1b2c3d4e5f60718' exists in eu-west-3 (node gw1)" in lines
    assert "skipped: sites[2] (home): static site: nothing to check" in lines
    assert any(line.startswith("skipped: sites[3] (bench): lab site") for line in lines)
    assert all(AWS_SECRET not in line for line in lines)


def test_bad_instance_type(aws_env: dict[str, str]) -> None:
    err = fails([site("aws-east", "aws", "us-east-1", node("a1", size="t3.mcro"))], aws_env)

    assert isinstance(err, PreflightError)
    assert err.problems == [
        "sites[0] (aws-east): instance type 't3.mcro' (node a1) does not exist in us-east-1; "
        "did you mean 't3.micro'?"
    ]
    assert err.message == f"preflight failed: 1 problem: {err.problems[0]}"
    assert err.summary == "preflight failed: 1 problem"


def test_ami_name_matching_nothing(aws_env: dict[str, str]) -> None:
    pattern = "ubuntu/images/hvm-ssd/ubuntu-noble-24.04-amd64-server-*"
    err = fails([site("aws-east", "aws", "us-east-1", node("a1", image=pattern))], aws_env)

    assert err.problems == [
        f"sites[0] (aws-east): no available AMI in us-east-1 has a name matching '{pattern}' "
        "(owners self, amazon, 099720109477; node a1)"
    ]


def test_ami_id_that_does_not_exist(aws_env: dict[str, str]) -> None:
    err = fails([site("aws-east", "aws", "us-east-1", node("a1", image="ami-0123456789abcdef0"))], aws_env)

    assert err.problems == ["sites[0] (aws-east): AMI 'ami-0123456789abcdef0' (node a1) does not exist in us-east-1"]


def test_region_that_does_not_exist(aws_env: dict[str, str]) -> None:
    err = fails([site("aws-east", "aws", "us-east-7")], aws_env)

    assert err.problems == ["sites[0] (aws-east): region 'us-east-7' does not exist; did you mean 'us-east-1' or 'us-east-2'?"]
    # No further checks ran for that site: they would need an EC2 endpoint in a region that does not exist.
    assert len(err.report.checks) == 2  # credentials ok + the region problem


def test_region_not_enabled_for_the_account(aws_env: dict[str, str]) -> None:
    err = fails([site("aws-hk", "aws", "ap-east-1")], aws_env)

    assert err.problems == [
        "sites[0] (aws-hk): region 'ap-east-1' is not enabled for this AWS account (opt in to it first)"
    ]


def test_custom_name_pattern_finds_the_accounts_own_image(aws_env: dict[str, str], moto_server: str) -> None:
    ec2 = boto3.session.Session(
        aws_access_key_id=aws_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws_env["AWS_SECRET_ACCESS_KEY"],
        region_name="eu-north-1",
    ).client("ec2", endpoint_url=moto_server)
    image_id = ec2.register_image(Name="cloudcast-golden-2026-01", Description="preflight test image")["ImageId"]

    report = preflight(make_spec(site("aws-north", "aws", "eu-north-1", node("n1", image="cloudcast-golden-*"))), aws_env)

    assert f"ok: sites[0] (aws-north): AMI name 'cloudcast-golden-*' resolves to {image_id} (cloudcast-golden-2026-01) in eu-north-1 (node n1)" in report.lines()


def test_the_default_pattern_only_trusts_canonical() -> None:
    assert ami_owners(DEFAULT_AMI_NAME) == ["099720109477"]
    assert ami_owners("my-image-*") == ["self", "amazon", "099720109477"]


def test_newest_creation_date_wins() -> None:
    older = {"ImageId": "ami-old", "CreationDate": "2024-03-01T00:00:00.000Z"}
    newer = {"ImageId": "ami-new", "CreationDate": "2024-06-01T00:00:00.000Z"}
    assert newest_image([older, newer]) == newer  # type: ignore[list-item]
    assert newest_image([newer, older]) == newer  # type: ignore[list-item]
    assert newest_image([]) is None


def test_several_problems_are_all_reported(aws_env: dict[str, str]) -> None:
    err = fails(
        [
            site("aws-east", "aws", "us-east-1", node("a1", size="t3.mcro"), node("a2", image="nothing-like-this-*")),
            site("aws-west", "aws", "us-wset-2"),
        ],
        aws_env,
    )

    assert len(err.problems) == 3
    assert err.message.startswith("preflight failed: 3 problems: sites[0] (aws-east): instance type 't3.mcro'")
    assert "; sites[1] (aws-west): region 'us-wset-2' does not exist; did you mean 'us-west-2'?" in err.message


def test_missing_secret_key_is_a_problem_without_calling_aws() -> None:
    err = fails([site("aws-east", "aws", "us-east-1")], {"AWS_ACCESS_KEY_ID": "AKIAONLYHALF0000"})

    assert err.problems == ["aws: AWS_SECRET_ACCESS_KEY is not set (the other half of the key pair is)"]
    assert err.report.lines()[-1] == "skipped: sites[0] (aws-east): AWS checks skipped (see the aws problem above)"


def test_the_specs_aws_endpoint_is_used(aws_env: dict[str, str]) -> None:
    env = {k: v for k, v in aws_env.items() if k != "AWS_ENDPOINT_URL"}
    spec = Spec.model_validate(
        {"name": "pf", "aws_endpoint": aws_env["AWS_ENDPOINT_URL"], "sites": [site("aws-east", "aws", "us-east-1")]}
    )

    assert preflight(spec, env).passed
