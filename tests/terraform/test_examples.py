"""Every example compiles, and what it compiles to is valid Terraform.

- `cloudcast compile EXAMPLE -o DIR` succeeds for every example (HOME holds a generated
  `~/.ssh/id_ed25519(.pub)`, which the examples name).
- Output Terraform can check for real passes `terraform init` + `terraform validate`: the
  AWS example, the lab example (terraform_data only) and the all-static example.
- Mixed specs (weave-style.json: aws + linode + vultr + static): the linode/linode and
  vultr/vultr providers cannot be installed here, so `terraform init` of the whole root
  fails. We validate the AWS module instances alone: a root made from the compiled
  `main.tf.json` keeping only the aws provider, the `./modules/aws` module blocks and their
  outputs, beside the compiled `modules/aws`. That checks exactly the blocks cloudcast wrote
  for the mixed spec (remote_cidrs naming the Linode and Vultr sites, the WireGuard port...),
  which compiling a copy of the spec restricted to its AWS sites would not: that copy would
  be a different network.
- The Linode and Vultr output (the modules as copied into DIR and the root main.tf.json)
  passes `check_module` against tests/fixtures/schemas.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLES, run_cli

from .conftest import Terraform
from .schemacheck import check_module

pytestmark = [pytest.mark.terraform, pytest.mark.timeout(300)]

SCHEMAS = Path(__file__).resolve().parents[1] / "fixtures" / "schemas"
ALL = sorted(p.name for p in EXAMPLES.glob("*.json") if p.name != "cloudcast.schema.json")
# Terraform validate runs on these whole roots (providers: aws from the mirror, or none).
VALIDATE_WHOLE = [
    "cloudcaster-hub.json", "lab.json", "lab-gateways.json", "lab-hub.json", "lab-ipsec.json", "lab-policy.json",
    "lab-vm.json", "p2p-lan-mesh.json",
]
# ...and on the AWS part of these.
VALIDATE_AWS_PART = ["weave-style.json"]
SCHEMA_CHECKED = {
    "clique.json": ["linode", "vultr"],
    "fakevpc.json": ["linode", "vultr"],
    "weave-style.json": ["linode", "vultr"],
}


def test_the_example_lists_are_complete() -> None:
    expected = [
        "clique.json", "cloudcaster-hub.json", "fakevpc.json", "lab-gateways.json", "lab-hub.json", "lab-ipsec.json",
        "lab-policy.json", "lab-vm.json", "lab.json", "p2p-lan-mesh.json", "weave-style.json",
    ]
    assert expected == ALL
    for name in ALL:
        providers = _providers(name)
        if providers <= {"aws", "lab", "static"}:
            assert name in VALIDATE_WHOLE, name
        if "aws" in providers and providers - {"aws", "static"}:
            assert name in VALIDATE_AWS_PART, name
        for provider in providers & {"linode", "vultr"}:
            assert provider in SCHEMA_CHECKED.get(name, []), (name, provider)


def _providers(name: str) -> set[str]:
    return {site["provider"] for site in json.loads((EXAMPLES / name).read_text())["sites"]}


@pytest.fixture(scope="module")
def compiled(cli_env: Mapping[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each example compiled once into its own directory (state dir in a temp dir too)."""
    out: dict[str, Path] = {}
    base = tmp_path_factory.mktemp("compiled")
    for name in ALL:
        stem = name.removesuffix(".json")
        result = run_cli(
            "compile", str(EXAMPLES / name), "-o", str(base / stem), "--workdir", str(base / f"{stem}.state"),
            environ=dict(cli_env),
        )
        assert result.code == 0, f"{name}: {result.err}"
        assert f"wrote {base / stem / 'main.tf.json'}" in result.out
        out[name] = base / stem
    return out


@pytest.mark.parametrize("name", ALL)
def test_every_example_compiles(compiled: dict[str, Path], name: str) -> None:
    root = json.loads((compiled[name] / "main.tf.json").read_text())
    plan = json.loads((compiled[name] / "cloudcast.plan.json").read_text())
    cloud = {p for p in _providers(name) if p != "static"}
    assert {m["source"] for m in root.get("module", {}).values()} == {f"./modules/{p}" for p in cloud}
    for provider in cloud:
        assert (compiled[name] / "modules" / provider / "main.tf").is_file()
    assert {n["name"] for n in plan["nodes"]} == {
        n["name"] for s in json.loads((EXAMPLES / name).read_text())["sites"] for n in s["nodes"]
    }


def _validate(tf: Terraform) -> dict[str, Any]:
    tf.run("init")
    result = tf.run("validate", "-json", ok=(0, 1))
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


@pytest.mark.parametrize("name", VALIDATE_WHOLE)
def test_compiled_root_passes_terraform_validate(
    compiled: dict[str, Path], name: str, terraform_bin: str, tf_env: Mapping[str, str]
) -> None:
    doc = _validate(Terraform(terraform_bin, compiled[name], tf_env))
    assert doc["valid"] is True, json.dumps(doc["diagnostics"], indent=1)
    assert doc["error_count"] == 0


def aws_part(root: Mapping[str, Any]) -> dict[str, Any]:
    """The compiled root with only its AWS module instances (and what they need)."""
    modules = {name: m for name, m in root["module"].items() if m["source"] == "./modules/aws"}
    terraform = dict(root["terraform"])
    terraform["required_providers"] = {"aws": root["terraform"]["required_providers"]["aws"]}
    return {
        "terraform": terraform,
        "provider": {"aws": root["provider"]["aws"]},
        "module": modules,
        "output": {name: o for name, o in root["output"].items() if name in modules},
    }


@pytest.mark.parametrize("name", VALIDATE_AWS_PART)
def test_aws_part_of_mixed_example_passes_terraform_validate(
    compiled: dict[str, Path], name: str, terraform_bin: str, tf_env: Mapping[str, str], tmp_path: Path
) -> None:
    root = json.loads((compiled[name] / "main.tf.json").read_text())
    part = aws_part(root)
    assert part["module"], "the example has AWS sites"
    (tmp_path / "main.tf.json").write_text(json.dumps(part, indent=2))
    shutil.copytree(compiled[name] / "modules" / "aws", tmp_path / "modules" / "aws")

    doc = _validate(Terraform(terraform_bin, tmp_path, tf_env))
    assert doc["valid"] is True, json.dumps(doc["diagnostics"], indent=1)
    # the blocks checked are the mixed spec's own: the other providers' sites are its remotes
    explicit = {s["cidr"] for s in json.loads((EXAMPLES / name).read_text())["sites"] if s.get("cidr")}
    for site in part["module"].values():
        assert explicit - {site["cidr"]} <= set(site["remote_cidrs"])


@pytest.mark.parametrize(
    ("name", "provider"), [(n, p) for n, ps in sorted(SCHEMA_CHECKED.items()) for p in ps]
)
def test_linode_and_vultr_output_matches_the_provider_schema(
    compiled: dict[str, Path], name: str, provider: str
) -> None:
    schema = SCHEMAS / f"{provider}.json"
    module = compiled[name] / "modules" / provider
    assert check_module(module, schema, provider) == []
    assert check_module(compiled[name], schema, provider) == []  # the root main.tf.json
    root = json.loads((compiled[name] / "main.tf.json").read_text())
    assert provider in root["provider"]
    assert root["terraform"]["required_providers"][provider]["source"] == f"{provider}/{provider}"
