"""tf/aws through the real Terraform AWS provider against a local moto server.

One root module (JSON syntax, as cloudcast's compiler writes it) instantiates tf/aws with
three nodes: a public gateway on the default image (the Canonical AMI lookup), a private
member on an explicit AMI id, and a public member on an AMI name pattern. The module-scoped
`site` fixture runs init, validate and apply once; the tests then check the outputs, what
exists in moto, that a route added with boto3 survives (plan shows no changes), that the
schema checker agrees with the real provider schema and, last, destroy. The fixture destroys on teardown too, if a test failed before that.
"""

from __future__ import annotations

import base64
import ipaddress
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest

from .conftest import AWS_REGION, CANONICAL_JAMMY_AMIS, TF_DIR, Terraform
from .schemacheck import check_module

pytestmark = [pytest.mark.terraform, pytest.mark.timeout(300)]

SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAvS3yiaVT3L68Ud/K3yVmaI9JOZChY2Af7rEb3HhpK6 cloudcast-test"
CIDR = "10.20.0.0/16"
OVERLAY = "10.15.0.0/16"
REMOTE = "10.30.0.0/16"
WG_PORT = 51871
EXPLICIT_AMI = "ami-0123456789abcdef0"
NODES: dict[str, dict[str, Any]] = {
    "gw1": {"size": "t3.small", "image": "", "role": "gateway", "private_ip": "10.20.0.10", "public": True},
    "app1": {
        "size": "t3.micro",
        "image": EXPLICIT_AMI,
        "role": "member",
        "private_ip": "10.20.0.11",
        "public": False,
    },
    "web1": {
        "size": "t3.micro",
        "image": "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-2024*",
        "role": "member",
        "private_ip": "10.20.0.12",
        "public": True,
    },
}


def root_module(endpoint: str) -> dict[str, Any]:
    return {
        "terraform": {"required_providers": {"aws": {"source": "hashicorp/aws", "version": "~> 5.0"}}},
        "provider": {
            "aws": {
                "region": AWS_REGION,
                "access_key": "testing",
                "secret_key": "testing",
                "skip_credentials_validation": True,
                "skip_requesting_account_id": True,
                "skip_metadata_api_check": True,
                "skip_region_validation": True,
                "s3_use_path_style": True,
                "endpoints": [{service: endpoint for service in ("ec2", "sts", "iam", "s3", "dynamodb")}],
            }
        },
        "module": {
            "site": {
                "source": str(TF_DIR / "aws"),
                "site": "aws-west",
                "name_prefix": "cctest",
                "region": AWS_REGION,
                "cidr": CIDR,
                "overlay_cidr": OVERLAY,
                "remote_cidrs": [REMOTE],
                "udp_ports": [WG_PORT],
                "ssh_sources": ["198.51.100.0/24", "2001:db8::/32"],
                "ssh_public_key": SSH_KEY,
                "tags": {"owner": "tests"},
                "nodes": NODES,
            }
        },
        "output": {
            name: {"value": f"${{module.site.{name}}}"} for name in ("nodes", "route_table_ids", "vpc_id")
        },
    }


class Site:
    def __init__(self, tf: Terraform, ec2: Any) -> None:
        self.tf = tf
        self.ec2 = ec2
        self.destroyed = False
        self.outputs: dict[str, Any] = {}


@pytest.fixture(scope="module")
def site(
    terraform_bin: str,
    tf_env: Mapping[str, str],
    moto_server: str,
    aws_env: Mapping[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Site]:
    workdir: Path = tmp_path_factory.mktemp("aws-root")
    (workdir / "main.tf.json").write_text(json.dumps(root_module(moto_server), indent=2))
    tf = Terraform(terraform_bin, workdir, tf_env)
    ec2 = boto3.client(
        "ec2",
        endpoint_url=moto_server,
        region_name=AWS_REGION,
        aws_access_key_id=aws_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws_env["AWS_SECRET_ACCESS_KEY"],
    )
    state = Site(tf, ec2)
    tf.run("init")
    tf.run("validate")
    try:
        tf.run("apply", "-auto-approve")
        state.outputs = tf.outputs()
        yield state
    finally:
        if not state.destroyed:
            tf.run("destroy", "-auto-approve")


def _instance(ec2: Any, instance_id: str) -> dict[str, Any]:
    reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return dict(reservations[0]["Instances"][0])


def test_outputs_follow_the_contract(site: Site) -> None:
    nodes = site.outputs["nodes"]
    assert set(nodes) == set(NODES)
    for name, planned in NODES.items():
        node = nodes[name]
        assert set(node) == {
            "name",
            "public_ip",
            "private_ip",
            "ssh_host",
            "ssh_port",
            "ssh_user",
            "instance_id",
            "eni_id",
        }
        assert node["name"] == name
        assert node["private_ip"] == planned["private_ip"]
        assert node["instance_id"].startswith("i-")
        assert node["eni_id"].startswith("eni-")
        assert node["ssh_port"] == 22
        assert node["ssh_user"] == "root"  # the default
        if planned["public"]:
            ipaddress.IPv4Address(node["public_ip"])  # moto's EIPs are 127.x addresses
            assert node["ssh_host"] == node["public_ip"]
        else:
            assert node["public_ip"] == ""
            assert node["ssh_host"] == planned["private_ip"]
    assert site.outputs["vpc_id"].startswith("vpc-")
    [table] = site.outputs["route_table_ids"]
    assert table.startswith("rtb-")


def test_images_resolve_by_id_and_by_name(site: Site) -> None:
    nodes = site.outputs["nodes"]
    assert _instance(site.ec2, nodes["gw1"]["instance_id"])["ImageId"] in CANONICAL_JAMMY_AMIS
    assert _instance(site.ec2, nodes["web1"]["instance_id"])["ImageId"] in CANONICAL_JAMMY_AMIS
    assert _instance(site.ec2, nodes["app1"]["instance_id"])["ImageId"] == EXPLICIT_AMI


def test_root_login_is_enabled_through_cloud_init(site: Site) -> None:
    instance_id = site.outputs["nodes"]["gw1"]["instance_id"]
    attr = site.ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
    user_data = base64.b64decode(attr["UserData"]["Value"]).decode()
    assert user_data.startswith("#cloud-config\n") and "disable_root: false" in user_data


def test_network_security_and_addresses(site: Site) -> None:
    ec2, nodes = site.ec2, site.outputs["nodes"]
    vpc = ec2.describe_vpcs(VpcIds=[site.outputs["vpc_id"]])["Vpcs"][0]
    assert vpc["CidrBlock"] == CIDR
    [table] = ec2.describe_route_tables(RouteTableIds=site.outputs["route_table_ids"])["RouteTables"]
    assert any(
        r.get("DestinationCidrBlock") == "0.0.0.0/0" and r.get("GatewayId", "").startswith("igw-")
        for r in table["Routes"]
    )
    assert [a["SubnetId"] for a in table["Associations"] if a.get("SubnetId")]

    # moto keeps the instance's and the ENI's SourceDestCheck apart; the instance is what
    # the provider sets (and what real AWS mirrors onto the primary ENI).
    checks = {name: _instance(ec2, node["instance_id"])["SourceDestCheck"] for name, node in nodes.items()}
    assert checks == {"gw1": False, "app1": True, "web1": True}

    groups = {
        name: sorted(
            g["GroupName"]
            for g in ec2.describe_network_interfaces(NetworkInterfaceIds=[node["eni_id"]])[
                "NetworkInterfaces"
            ][0]["Groups"]
            if g["GroupName"] != "default"
        )
        for name, node in nodes.items()
    }
    edge, internal = "cctest-aws-west-edge", "cctest-aws-west-internal"
    assert groups == {"gw1": [edge, internal], "app1": [internal], "web1": [edge, internal]}

    rules = ec2.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [_group_id(ec2, edge), _group_id(ec2, internal)]}]
    )["SecurityGroupRules"]
    ingress = {
        (
            r["GroupId"],
            r["IpProtocol"],
            None if r["IpProtocol"] == "-1" else r.get("FromPort"),
            r.get("CidrIpv4") or r.get("CidrIpv6"),
        )
        for r in rules
        if not r["IsEgress"]
    }
    assert (_group_id(ec2, edge), "udp", WG_PORT, "0.0.0.0/0") in ingress
    assert (_group_id(ec2, edge), "tcp", 22, "198.51.100.0/24") in ingress
    assert (_group_id(ec2, edge), "tcp", 22, "2001:db8::/32") in ingress
    for cidr in (CIDR, OVERLAY, REMOTE):
        assert (_group_id(ec2, internal), "-1", None, cidr) in ingress
    egress = {(r["GroupId"], r["IpProtocol"], r.get("CidrIpv4")) for r in rules if r["IsEgress"]}
    assert (_group_id(ec2, internal), "-1", "0.0.0.0/0") in egress

    addresses = ec2.describe_addresses()["Addresses"]
    by_eni = {a.get("NetworkInterfaceId"): a["PublicIp"] for a in addresses}
    assert by_eni[nodes["gw1"]["eni_id"]] == nodes["gw1"]["public_ip"]
    assert by_eni[nodes["web1"]["eni_id"]] == nodes["web1"]["public_ip"]
    assert nodes["app1"]["eni_id"] not in by_eni


def _group_id(ec2: Any, name: str) -> str:
    groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [name]}])
    return str(groups["SecurityGroups"][0]["GroupId"])


def test_routes_added_outside_terraform_survive_and_nothing_drifts(site: Site) -> None:
    # What cloudcast's routes stage does: the remote site's CIDR via the gateway's ENI.
    [table] = site.outputs["route_table_ids"]
    gateway_eni = site.outputs["nodes"]["gw1"]["eni_id"]
    site.ec2.create_route(RouteTableId=table, DestinationCidrBlock=REMOTE, NetworkInterfaceId=gateway_eni)
    result = site.tf.run("plan", "-detailed-exitcode", ok=(0, 2))
    assert result.returncode == 0, f"plan shows changes after apply:\n{result.stdout[-4000:]}"
    routes = site.ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"][0]["Routes"]
    assert any(r.get("DestinationCidrBlock") == REMOTE for r in routes)


def test_schemacheck_agrees_with_the_real_aws_schema(
    site: Site, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # terraform validate already passed; the schema checker must not disagree with it.
    schema = tmp_path_factory.mktemp("schema") / "aws.json"
    schema.write_text(site.tf.run("providers", "schema", "-json").stdout)
    assert check_module(TF_DIR / "aws", schema, "aws") == []


def test_destroy_removes_everything(site: Site) -> None:
    site.tf.run("destroy", "-auto-approve")
    site.destroyed = True
    assert site.tf.outputs() == {}
    # moto is shared by the whole session: look only at what this module's network made.
    ours = {"Name": "tag:cloudcast:network", "Values": ["cctest"]}
    vpcs = site.ec2.describe_vpcs(Filters=[ours, {"Name": "cidr", "Values": [CIDR]}])["Vpcs"]
    assert vpcs == []
    running = site.ec2.describe_instances(
        Filters=[ours, {"Name": "instance-state-name", "Values": ["pending", "running"]}]
    )["Reservations"]
    assert running == []
