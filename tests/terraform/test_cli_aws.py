"""`cloudcast plan / apply / destroy` through the CLI against moto: examples/cloudcaster-hub.json.

Two AWS regions, hub topology over IPsec: the hub (aws-east) and the gateway (aws-west)
carry their VPC, and cloudcast's routes stage points every route table of a site at its
gateway's ENI for the other site's CIDR and the overlay. The tests share one network and
run in file order:

  plan (text, -out FILE) -> plan --json (no secrets) -> apply aws-east only ->
  a foreign route for aws-west's CIDR is a conflict (exit 1) until --replace-routes ->
  everything exists, outputs feed the inventory, routes via the gateway ENIs ->
  plan right after: no drift -> apply again: nothing changes, and it says so ->
  remove aws-west: its routes leave aws-east's table -> destroy: nothing left.

An unrelated route (192.168.77.0/24 via the IGW, added with boto3) sits in aws-east's table
from the conflict test on and must never be touched. Every apply runs with
`--skip-bootstrap` (moto's instances cannot be reached over SSH). Times of each command and
of the Terraform runs inside it are printed at the end of the session (`tf_timer`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest

from cloudcast.pipeline.context import Context
from cloudcast.pipeline.plan import read_planfile
from cloudcast.state import Secrets, ensure_psks, save_secrets
from tests.conftest import EXAMPLES, CliResult, run_cli

from .conftest import CLI_SECRET_KEY, TfTimer

pytestmark = [pytest.mark.terraform, pytest.mark.timeout(300)]

NETWORK = "cloudcaster"
OVERLAY = "10.250.0.0/24"
SITES = {
    # site: (region, cidr, gateway, member)
    "aws-east": ("us-east-1", "10.10.0.0/16", "hub1", "app-east"),
    "aws-west": ("us-west-2", "10.20.0.0/16", "gw-west", "app-west"),
}
UNRELATED = "192.168.77.0/24"


class Net:
    def __init__(self, base: Path, env: Mapping[str, str], timer: TfTimer) -> None:
        self.env = dict(env)
        self.timer = timer
        self.workdir = base / "state"
        self.full = base / "full.json"
        self.east = base / "east.json"
        spec = json.loads((EXAMPLES / "cloudcaster-hub.json").read_text())
        spec.pop("$schema")
        self.full.write_text(json.dumps(spec, indent=1))
        spec["sites"] = [s for s in spec["sites"] if s["name"] == "aws-east"]
        self.east.write_text(json.dumps(spec, indent=1))
        self.ec2 = {
            site: boto3.client(
                "ec2",
                region_name=region,
                endpoint_url=env["AWS_ENDPOINT_URL"],
                aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            )
            for site, (region, *_rest) in SITES.items()
        }
        self.destroyed = False

    def cli(self, *argv: str, label: str | None = None) -> CliResult:
        args = [*argv, "--workdir", str(self.workdir)]
        if label is None:
            return run_cli(*args, environ=self.env)
        with self.timer(label):
            return run_cli(*args, environ=self.env)

    # --- what exists in moto, by this network's tags ---------------------------------

    def ours(self, site: str) -> list[dict[str, Any]]:
        return [
            {"Name": "tag:cloudcast:network", "Values": [NETWORK]},
            {"Name": "tag:cloudcast:site", "Values": [site]},
        ]

    def table(self, site: str) -> dict[str, Any]:
        tables = self.ec2[site].describe_route_tables(Filters=self.ours(site))["RouteTables"]
        assert len(tables) == 1, tables
        return dict(tables[0])

    def routes(self, site: str) -> dict[str, str]:
        """Destination CIDR -> target id of the site's route table."""
        return {
            r["DestinationCidrBlock"]: r.get("NetworkInterfaceId") or r.get("GatewayId") or r.get("InstanceId")
            for r in self.table(site)["Routes"]
            if "DestinationCidrBlock" in r
        }

    def igw(self, site: str) -> str:
        [igw] = self.ec2[site].describe_internet_gateways(Filters=self.ours(site))["InternetGateways"]
        return str(igw["InternetGatewayId"])

    def instances(self, site: str, states: tuple[str, ...] = ("pending", "running")) -> dict[str, dict[str, Any]]:
        filters = [*self.ours(site), {"Name": "instance-state-name", "Values": list(states)}]
        reservations = self.ec2[site].describe_instances(Filters=filters)["Reservations"]
        out = {}
        for res in reservations:
            for inst in res["Instances"]:
                name = next(t["Value"] for t in inst["Tags"] if t["Key"] == "Name")
                out[name.removeprefix(f"{NETWORK}-{site}-")] = inst
        return out

    def inventory(self) -> dict[str, dict[str, Any]]:
        res = self.cli("output", str(self.full), "--format", "json")
        assert res.code == 0, res.err
        return {h["name"]: h for h in json.loads(res.out)["hosts"]}  # one `output` record


@pytest.fixture(scope="module")
def net(
    cli_env: Mapping[str, str], tf_timer: TfTimer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Net]:
    network = Net(tmp_path_factory.mktemp("cloudcaster"), cli_env, tf_timer)
    try:
        yield network
    finally:
        if not network.destroyed:
            res = network.cli("destroy", str(network.full), "--auto-approve")
            print(f"teardown destroy exited {res.code}: {res.err[-2000:]}")


def test_plan_lists_resources_per_site_and_writes_a_plan_file(net: Net, tmp_path: Path) -> None:
    planfile = tmp_path / "net.plan"
    res = net.cli("plan", str(net.full), "-out", str(planfile), "-detailed-exitcode", label="plan: 2 sites, 48 to add")

    assert res.code == 2, res.err
    for site, (region, cidr, gateway, member) in SITES.items():
        assert f"site {site} (aws, {region}, {cidr}): +24 ~0 -0" in res.out
        assert f'+ aws_instance.node["{gateway}"]' in res.out
        assert f'+ aws_instance.node["{member}"]' in res.out
    assert "Plan: 48 to add, 0 to change, 0 to destroy" in res.out
    assert "preflight" in res.err and "provider checks passed" in res.err
    saved = read_planfile(planfile)
    assert Path(saved["tfplan"]).is_file()
    assert saved["workdir"] == str(net.workdir.resolve())
    raw = json.loads(planfile.read_text())  # the checkout's paths travel relative to the plan file
    assert not Path(raw["tfplan"]).is_absolute() and not Path(raw["spec_path"]).is_absolute()
    assert f"Saved the plan to {planfile}" in res.out


def test_plan_json_counts_resources_and_holds_no_secret(net: Net, cli_env: Mapping[str, str]) -> None:
    # Give the network preshared keys first, as an earlier apply would have.
    ctx = Context.load(net.full, environ=net.env, workdir=net.workdir)
    plan, _ = ctx.plan()
    secrets, created = ensure_psks(plan, Secrets())
    assert created >= 1
    save_secrets(ctx.workdir, secrets)

    res = net.cli("plan", str(net.full), "--json", "--skip-preflight", "--detailed-exitcode")

    assert res.code == 2, res.err
    lines = [json.loads(line) for line in res.out.splitlines() if line.strip()]  # every line is JSON
    [summary] = [line for line in lines if line.get("type") == "plan"]
    assert summary["resources"]["add"] == 48 > 0
    assert summary["changes"] is True
    assert {site: len(c["add"]) for site, c in summary["sites"].items()} == {"aws-east": 24, "aws-west": 24}
    everything = res.out + res.err
    for psk in secrets.psk.values():
        assert psk not in everything
    private = (Path(cli_env["HOME"]) / ".ssh" / "id_ed25519").read_text()
    body = [line for line in private.splitlines() if line and not line.startswith("-----")]
    assert body and not any(chunk in everything for chunk in body)
    assert "PRIVATE KEY" not in everything
    assert CLI_SECRET_KEY not in everything


def test_apply_first_site(net: Net) -> None:
    res = net.cli("apply", str(net.east), "--skip-bootstrap", "--auto-approve", label="apply: 1 site, 24 to add")

    assert res.code == 0, res.err
    assert "Apply complete: cloudcaster is up." in res.out
    assert set(net.instances("aws-east")) == {"hub1", "app-east"}
    hub_eni = net.instances("aws-east")["hub1"]["NetworkInterfaces"][0]["NetworkInterfaceId"]
    # only the overlay is remote while aws-east is alone
    assert net.routes("aws-east")[OVERLAY] == hub_eni


def test_foreign_route_is_a_conflict_until_replace_routes(net: Net) -> None:
    east, west_cidr = net.table("aws-east")["RouteTableId"], SITES["aws-west"][1]
    igw = net.igw("aws-east")
    net.ec2["aws-east"].create_route(RouteTableId=east, DestinationCidrBlock=west_cidr, GatewayId=igw)
    net.ec2["aws-east"].create_route(RouteTableId=east, DestinationCidrBlock=UNRELATED, GatewayId=igw)

    res = net.cli("apply", str(net.full), "--skip-bootstrap", "--auto-approve", "--skip-preflight", label="apply: +1 site, 24 to add; conflict")

    assert res.code == 1, res.err
    conflict = f"{east}: {west_cidr} already routes to {igw} (not made by cloudcast)"
    assert f"cloudcast: error: 1 route conflicts: {conflict}" in res.err
    assert "--replace-routes" in res.err
    assert net.routes("aws-east")[west_cidr] == igw  # left alone
    assert net.routes("aws-east")[UNRELATED] == igw
    gw_west = net.instances("aws-west")["gw-west"]["NetworkInterfaces"][0]["NetworkInterfaceId"]
    assert net.routes("aws-west")[SITES["aws-east"][1]] == gw_west  # the rest was programmed

    res = net.cli("apply", str(net.full), "--skip-bootstrap", "--auto-approve", "--skip-preflight", "--replace-routes", label="apply: --replace-routes")

    assert res.code == 0, res.err
    hub_eni = net.instances("aws-east")["hub1"]["NetworkInterfaces"][0]["NetworkInterfaceId"]
    assert f"{east}: ~ {west_cidr} -> {hub_eni}" in res.err
    assert net.routes("aws-east")[west_cidr] == hub_eni
    assert net.routes("aws-east")[UNRELATED] == igw


def test_everything_exists_and_outputs_feed_the_inventory(net: Net) -> None:
    inventory = net.inventory()
    assert set(inventory) == {"hub1", "app-east", "gw-west", "app-west"}
    for site, (_region, cidr, gateway, member) in SITES.items():
        ec2 = net.ec2[site]
        [vpc] = ec2.describe_vpcs(Filters=net.ours(site))["Vpcs"]
        assert vpc["CidrBlock"] == cidr
        [subnet] = ec2.describe_subnets(Filters=net.ours(site))["Subnets"]
        assert subnet["VpcId"] == vpc["VpcId"] and subnet["CidrBlock"] == cidr
        [igw] = ec2.describe_internet_gateways(Filters=net.ours(site))["InternetGateways"]
        assert [a["VpcId"] for a in igw["Attachments"]] == [vpc["VpcId"]]
        table = net.table(site)
        assert [a["SubnetId"] for a in table["Associations"] if a.get("SubnetId")] == [subnet["SubnetId"]]
        assert net.routes(site)["0.0.0.0/0"] == igw["InternetGatewayId"]
        groups = ec2.describe_security_groups(Filters=net.ours(site))["SecurityGroups"]
        assert sorted(g["GroupName"] for g in groups) == [f"{NETWORK}-{site}-edge", f"{NETWORK}-{site}-internal"]
        [pair] = ec2.describe_key_pairs(KeyNames=[f"{NETWORK}-{site}"])["KeyPairs"]
        assert pair["KeyName"] == f"{NETWORK}-{site}"
        instances = net.instances(site)
        assert set(instances) == {gateway, member}
        addresses = {a["NetworkInterfaceId"]: a["PublicIp"] for a in ec2.describe_addresses(Filters=net.ours(site))["Addresses"]}
        assert len(addresses) == 2
        for name, inst in instances.items():
            host = inventory[name]
            eni = inst["NetworkInterfaces"][0]["NetworkInterfaceId"]
            assert host["site"] == site and host["provider"] == "aws"
            assert host["instance_id"] == inst["InstanceId"]
            assert host["eni_id"] == eni
            assert host["private_ip"] == inst["PrivateIpAddress"]
            assert host["public_ip"] == addresses[eni] == host["ssh_host"]
            assert host["ssh_user"] == "ubuntu" and host["ssh_port"] == 22


def test_routes_point_at_the_gateway_enis(net: Net) -> None:
    for site, (_region, _cidr, gateway, member) in SITES.items():
        ec2 = net.ec2[site]
        instances = net.instances(site)
        gw_eni = instances[gateway]["NetworkInterfaces"][0]["NetworkInterfaceId"]
        remote = [c for s, (_, c, *_x) in SITES.items() if s != site]
        routes = net.routes(site)
        for cidr in [*remote, OVERLAY]:
            assert routes[cidr] == gw_eni, (site, cidr, routes)
        for name, expected in ((gateway, False), (member, True)):
            inst = instances[name]
            attr = ec2.describe_instance_attribute(InstanceId=inst["InstanceId"], Attribute="sourceDestCheck")
            assert attr["SourceDestCheck"]["Value"] is expected, name
        eni_attr = ec2.describe_network_interface_attribute(NetworkInterfaceId=gw_eni, Attribute="sourceDestCheck")
        assert eni_attr["SourceDestCheck"]["Value"] is False
    state = json.loads((net.workdir / "cloudcast.state.json").read_text())
    assert len(state["routes"]) == 4  # (remote CIDR + overlay) x 2 sites, all owned by cloudcast
    assert UNRELATED not in {r["cidr"] for r in state["routes"]}


def test_plan_right_after_apply_shows_no_drift(net: Net) -> None:
    res = net.cli("plan", str(net.full), "--json", "--skip-preflight", "--skip-bootstrap", label="plan: no changes")

    assert res.code == 0, res.err
    [summary] = [json.loads(line) for line in res.out.splitlines() if '"type": "plan"' in line]
    assert summary["resources"] == {"add": 0, "change": 0, "destroy": 0}
    assert summary["routes"] == []  # routes are recorded in state: none pending
    assert summary["changes"] is False
    # Only the SSH bootstrap (skipped on moto) is still to do; --skip-bootstrap leaves it out.
    assert summary["hosts_counted"] is False
    assert {h["change"] for h in summary["hosts"]} == {"add"}


def test_apply_again_changes_nothing_and_says_so(net: Net) -> None:
    before = {site: net.routes(site) for site in SITES}

    res = net.cli("apply", str(net.full), "--skip-bootstrap", "--auto-approve", "--skip-preflight", label="apply: no changes")

    assert res.code == 0, res.err
    assert "4 routes already in place; nothing changed" in res.err
    assert "terraform apply:" not in res.err  # Terraform had nothing to do, so it was not run
    assert "Terraform: 0 to add, 0 to change, 0 to destroy" in res.err
    assert {site: net.routes(site) for site in SITES} == before


def test_removing_a_site_removes_its_routes(net: Net) -> None:
    east = net.table("aws-east")["RouteTableId"]
    west_cidr = SITES["aws-west"][1]

    res = net.cli("apply", str(net.east), "--skip-bootstrap", "--auto-approve", "--skip-preflight", label="apply: -1 site, 24 to destroy")

    assert res.code == 0, res.err
    assert f"{east}: - {west_cidr}" in res.err
    routes = net.routes("aws-east")
    assert west_cidr not in routes
    hub_eni = net.instances("aws-east")["hub1"]["NetworkInterfaces"][0]["NetworkInterfaceId"]
    assert routes[OVERLAY] == hub_eni
    assert routes[UNRELATED] == net.igw("aws-east")  # never touched
    assert net.ec2["aws-west"].describe_vpcs(Filters=net.ours("aws-west"))["Vpcs"] == []
    state = json.loads((net.workdir / "cloudcast.state.json").read_text())
    assert [(r["site"], r["cidr"]) for r in state["routes"]] == [("aws-east", OVERLAY)]


def test_destroy_leaves_nothing(net: Net) -> None:
    # without -auto-approve in CI it shows what it would remove, then refuses to ask
    shown = net.cli("destroy", str(net.east), "-json", label="destroy: preview")
    assert shown.code == 1
    lines = [json.loads(line) for line in shown.out.splitlines()]
    [preview] = [r for r in lines if r["type"] == "destroy_plan"]
    assert set(preview["machines"]) >= {"hub1"}
    assert any(a.startswith("module.site_aws_east.aws_instance.node") for a in preview["resources"])
    assert lines[-1]["type"] == "error" and "confirmation needed" in lines[-1]["message"]
    assert net.instances("aws-east")  # nothing was destroyed

    res = net.cli("destroy", str(net.east), "--auto-approve", label="destroy: 1 site")
    net.destroyed = res.code == 0

    assert res.code == 0, res.err
    assert "Destroy complete: cloudcaster is gone." in res.out
    for site in SITES:
        ec2 = net.ec2[site]
        assert ec2.describe_vpcs(Filters=net.ours(site))["Vpcs"] == []
        assert net.instances(site) == {}
        assert ec2.describe_addresses(Filters=net.ours(site))["Addresses"] == []
        assert ec2.describe_security_groups(Filters=net.ours(site))["SecurityGroups"] == []
        pairs = ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [f"{NETWORK}-{site}"]}])
        assert pairs["KeyPairs"] == []
    for name in ("cloudcast.state.json", "secrets.json"):
        assert not (net.workdir / name).exists()
