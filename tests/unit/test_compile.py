"""The generated root module: modules per site, providers, outputs, backend, endpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cloudcast.plan import build_plan
from cloudcast.spec import load_spec, parse_spec
from cloudcast.terraform.compile import compile_root

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAvS3yiaVT3L68Ud/K3yVmaI9JOZChY2Af7rEb3HhpK6 test"


def compiled(spec: Any, tmp_path: Path, **kw: Any) -> dict[str, Any]:
    plan, _ = build_plan(spec)
    path = compile_root(spec, plan, tmp_path / "tf", ssh_public_key=KEY, **kw)
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.mark.parametrize(
    "name", ["weave-style", "fakevpc", "clique", "cloudcaster-hub", "p2p-lan-mesh", "lab"]
)
def test_examples_validate_and_compile(name: str, tmp_path: Path) -> None:
    spec = load_spec(EXAMPLES / f"{name}.json")
    root = compiled(spec, tmp_path, environ={})
    assert spec.description
    for site in spec.sites:
        mod = f"site_{site.name.replace('-', '_')}"
        if site.provider.value == "static":
            assert mod not in root.get("module", {})
            continue
        assert root["module"][mod]["source"] == f"./modules/{site.provider.value}"
        assert (tmp_path / "tf" / "modules" / site.provider.value / "main.tf").exists()
        assert set(root["output"][mod]["value"]) == {"nodes", "route_table_ids", "vpc_id"}


def test_examples_carry_schema() -> None:
    for path in EXAMPLES.glob("*.json"):
        if path.name == "cloudcast.schema.json":
            continue
        assert json.loads(path.read_text())["$schema"] == "./cloudcast.schema.json"


def test_committed_schema_is_current(cli: Any) -> None:
    res = cli("schema")
    assert res.code == 0
    assert json.loads(res.out) == json.loads((EXAMPLES / "cloudcast.schema.json").read_text())


def test_aws_provider_per_site_with_endpoint_override(tmp_path: Path) -> None:
    spec = load_spec(EXAMPLES / "cloudcaster-hub.json")
    root = compiled(spec, tmp_path, environ={"AWS_ENDPOINT_URL": "http://127.0.0.1:5999"})
    providers = root["provider"]["aws"]
    assert [p["alias"] for p in providers] == ["site_aws_east", "site_aws_west"]
    assert providers[1]["region"] == "us-west-2"
    assert providers[0]["endpoints"]["ec2"] == "http://127.0.0.1:5999"
    assert providers[0]["skip_credentials_validation"] is True
    east = root["module"]["site_aws_east"]
    assert east["providers"] == {"aws": "aws.site_aws_east"}
    assert east["udp_ports"] == [500, 4500]  # ipsec
    assert east["ssh_sources"] == ["203.0.113.0/24"]
    assert east["remote_cidrs"] == ["10.20.0.0/16"]
    assert east["nodes"]["hub1"]["private_ip"] == "10.10.0.10"


def test_no_endpoint_without_override(tmp_path: Path) -> None:
    root = compiled(load_spec(EXAMPLES / "weave-style.json"), tmp_path, environ={})
    assert "endpoints" not in root["provider"]["aws"][0]
    assert root["module"]["site_vultr_ams"]["udp_ports"] == [51871]
    assert root["terraform"]["required_providers"]["linode"]["source"] == "linode/linode"


def test_s3_backend_with_lockfile(tmp_path: Path) -> None:
    spec = parse_spec(
        {
            "name": "team",
            "state": {"backend": "s3", "bucket": "tf-state", "region": "us-east-1", "dynamodb_table": "locks"},
            "sites": [{"name": "a", "provider": "lab", "nodes": [{"name": "n"}]}],
        }
    )
    backend = compiled(spec, tmp_path, environ={})["terraform"]["backend"]["s3"]
    assert backend == {
        "bucket": "tf-state",
        "key": "team/terraform.tfstate",
        "region": "us-east-1",
        "use_lockfile": True,
        "dynamodb_table": "locks",
    }


def test_lab_module_gets_planned_underlay(tmp_path: Path) -> None:
    spec = load_spec(EXAMPLES / "lab.json")
    mod = compiled(spec, tmp_path, environ={"CLOUDCAST_LAB_PREFIX": "cctestx"}, lab_prefix=None)["module"][
        "site_lab"
    ]
    assert mod["lab_prefix"] == "cctestx"
    assert mod["nodes"]["charlie"]["nat"] == "nat"
    assert mod["nodes"]["delta"]["nat"] == "double"
    assert mod["nodes"]["alpha"]["public_ip"] == "198.18.1.10"


def test_compile_is_deterministic(tmp_path: Path) -> None:
    spec = load_spec(EXAMPLES / "clique.json")
    a = compiled(spec, tmp_path / "a", environ={})
    b = compiled(spec, tmp_path / "b", environ={})
    assert a == b


def test_compile_command_writes_dir(tmp_path: Path, cli: Any) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519.pub").write_text(KEY + "\n")
    res = cli(
        "compile",
        str(EXAMPLES / "clique.json"),
        "-o",
        str(tmp_path / "out"),
        "--workdir",
        str(tmp_path / "wd"),
        environ={"HOME": str(home)},
    )
    assert res.code == 0, res.err
    assert (tmp_path / "out" / "main.tf.json").exists()
    assert (tmp_path / "out" / "modules" / "vultr" / "main.tf").exists()
    plan = json.loads((tmp_path / "out" / "cloudcast.plan.json").read_text())
    assert len(plan["nodes"]) == 6
