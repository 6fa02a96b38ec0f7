"""The Linode and Vultr modules against their providers' schemas, and the module contract.

The linode/linode and vultr/vultr providers cannot be downloaded here, so `terraform
validate` cannot check tf/linode and tf/vultr; `schemacheck` does the schema half of it
against tests/fixtures/schemas (see SOURCE.md there). The negative tests prove the checker
catches what it claims to. The contract tests hold all three provider modules to the same
variables and outputs, which cloudcast's compiler relies on.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest

from .schemacheck import check_module, check_texts

ROOT = Path(__file__).resolve().parents[2]
TF_DIR = ROOT / "tf"
SCHEMAS = ROOT / "tests" / "fixtures" / "schemas"
LINODE = SCHEMAS / "linode.json"
VULTR = SCHEMAS / "vultr.json"
PROVIDER_MODULES = ("aws", "linode", "vultr")

VARIABLES = {
    "site",
    "name_prefix",
    "region",
    "cidr",
    "overlay_cidr",
    "remote_cidrs",
    "udp_ports",
    "ssh_port",
    "ssh_user",
    "ssh_sources",
    "ssh_public_key",
    "tags",
    "nodes",
}
OUTPUTS = {"nodes", "route_table_ids", "vpc_id"}
REQUIRED_PROVIDERS = {
    "aws": ("hashicorp/aws", "~> 5.0"),
    "linode": ("linode/linode", "~> 3.0"),
    "vultr": ("vultr/vultr", "~> 2.0"),
}


# --- the modules pass -------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "schema", "provider"),
    [("linode", LINODE, "linode"), ("vultr", VULTR, "vultr")],
    ids=["linode", "vultr"],
)
def test_module_matches_provider_schema(module: str, schema: Path, provider: str) -> None:
    assert check_module(TF_DIR / module, schema, provider) == []


def test_modules_use_the_resources_they_document() -> None:
    def types(module: str) -> set[str]:
        found: set[str] = set()
        for path in (TF_DIR / module).glob("*.tf"):
            for entry in hcl2.loads(path.read_text()).get("resource", []):
                found.update(t.strip('"') for t in entry)
        return found

    assert types("linode") == {"linode_vpc", "linode_vpc_subnet", "linode_instance", "linode_firewall"}
    assert types("vultr") == {
        "vultr_vpc",
        "vultr_ssh_key",
        "vultr_firewall_group",
        "vultr_firewall_rule",
        "vultr_instance",
    }


# --- the checker catches mistakes -----------------------------------------------------

BAD_LINODE = """
resource "linode_instance" "bad" {
  region    = "us-east"
  imagez    = "linode/ubuntu22.04"
  ipv6      = "2001:db8::1"
  group     = "old"

  interface {
    subnet_id = 1
    ipv4 {
      vpc   = "10.0.0.5"
      vpcx  = "nope"
    }
  }

  alerts {
    cpu = 90
  }
  alerts {
    cpu = 80
  }

  dynamic "interfacez" {
    for_each = [1]
    content {}
  }
}

resource "linode_instance" "block_as_attribute" {
  region    = "us-east"
  image     = "linode/ubuntu22.04"
  interface = [{ purpose = "vpc" }]
}

resource "linode_vpc" "bad" {
  label = "vpc"
  ipv6 {
    range = "/52"
  }
}

resource "linode_vpc_subnet" "bad" {
  vpc_id = "not-a-number"
  label  = "subnet"
  ipv4   = "10.0.0.0/24"
  ipv6   = [{ range = "/64", bogus = 1 }]
}

resource "linode_firewall" "bad" {
  label           = "fw"
  inbound_policy  = "REJECT"
  outbound_policy = "ACCEPT"
  tags            = "not-a-set"

  inbound {
    label    = "ssh"
    action   = "ACCEPT"
    protocol = "tcp"
  }
}

resource "linode_instance" "conflict" {
  region = "us-east"
  image  = "linode/ubuntu22.04"
  disk {
    label = "boot"
    size  = 1000
  }
}

resource "linode_nope" "x" {}

data "linode_nope" "y" {}

resource "vultr_instance" "ignored" {
  not_checked = "another provider's resource"
}

resource "terraform_data" "ignored" {
  input = 1
}
"""


def _has(problems: list[str], where: str, fragment: str) -> bool:
    return any(p.startswith(where) and fragment in p for p in problems)


def test_checker_reports_bad_linode_resources() -> None:
    problems = check_texts({"bad.tf": BAD_LINODE}, LINODE, "linode")
    expected = [
        ("bad.tf:linode_instance.bad.imagez", "unknown argument"),
        ("bad.tf:linode_instance.bad.ipv6", "computed-only"),
        ("bad.tf:linode_instance.bad.group", "deprecated"),
        ("bad.tf:linode_instance.block_as_attribute.interface", "is a block"),
        ("bad.tf:linode_instance.bad.interface[0]", "missing required argument 'purpose'"),
        ("bad.tf:linode_instance.bad.interface[0].ipv4[0].vpcx", "unknown argument"),
        ("bad.tf:linode_instance.bad.interface", "requires image to be set"),
        ("bad.tf:linode_instance.bad.alerts", "at most 1"),
        ("bad.tf:linode_instance.bad.interfacez", "unknown block type"),
        ("bad.tf:linode_vpc.bad", "missing required argument 'region'"),
        ("bad.tf:linode_vpc.bad.ipv6", "is a nested attribute; write `ipv6 = [{ ... }]`"),
        ("bad.tf:linode_vpc_subnet.bad.vpc_id", "expected number"),
        ("bad.tf:linode_vpc_subnet.bad.ipv6[0].bogus", "unknown argument"),
        ("bad.tf:linode_firewall.bad.label", "length 2 is outside 3..32"),
        ("bad.tf:linode_firewall.bad.inbound_policy", "'REJECT' is not one of"),
        ("bad.tf:linode_firewall.bad.tags", "expected"),
        ("bad.tf:linode_firewall.bad.inbound[0].protocol", "'tcp' is not one of"),
        ("bad.tf:linode_instance.conflict.image", "conflicts with disk"),
        ("bad.tf:linode_nope.x", "unknown resource type"),
        ("bad.tf:data.linode_nope.y", "unknown data source"),
    ]
    missing = [(where, fragment) for where, fragment in expected if not _has(problems, where, fragment)]
    assert missing == [], "\n".join(problems)
    assert not any("vultr_instance" in p or "terraform_data" in p for p in problems)


def test_checker_reads_json_syntax() -> None:
    good = {
        "resource": {
            "vultr_firewall_rule": {
                "ssh": {
                    "firewall_group_id": "${vultr_firewall_group.this.id}",
                    "protocol": "tcp",
                    "ip_type": "v4",
                    "subnet": "0.0.0.0",
                    "subnet_size": 0,
                    "port": "22",
                }
            },
            "vultr_instance": {
                "node": {
                    "for_each": "${var.nodes}",
                    "depends_on": ["vultr_firewall_rule.ssh"],
                    "lifecycle": {"ignore_changes": ["tags"]},
                    "plan": "${each.value.size}",
                    "region": "sgp",
                    "os_id": 1743,
                    "backups_schedule": {"type": "daily"},
                }
            },
        }
    }
    bad = {
        "resource": {
            "vultr_firewall_rule": {
                "ssh": {"protocol": "tcp", "ip_type": "v5", "subnet": "0.0.0.0", "port": "22"}
            },
            "vultr_instance": {
                "node": [
                    {
                        "plan": "vc2-1c-1gb",
                        "region": "sgp",
                        "private_network_ids": ["x"],
                        "internal_ip": "10.0.0.1",
                        "backups_schedule": "daily",
                        "timeouts": [{"create": "5m"}, {"create": "6m"}],
                    }
                ]
            },
        }
    }
    assert check_texts({"main.tf.json": json.dumps(good)}, VULTR, "vultr") == []
    problems = check_texts({"main.tf.json": json.dumps(bad)}, VULTR, "vultr")
    expected = [
        ("main.tf.json:vultr_firewall_rule.ssh", "missing required argument 'firewall_group_id'"),
        ("main.tf.json:vultr_firewall_rule.ssh", "missing required argument 'subnet_size'"),
        ("main.tf.json:vultr_firewall_rule.ssh.ip_type", "'v5' is not one of"),
        ("main.tf.json:vultr_instance.node.private_network_ids", "unknown argument"),
        ("main.tf.json:vultr_instance.node.internal_ip", "computed-only"),
        ("main.tf.json:vultr_instance.node.backups_schedule", "object or a list of objects"),
        ("main.tf.json:vultr_instance.node.timeouts", "at most one block"),
    ]
    missing = [(where, fragment) for where, fragment in expected if not _has(problems, where, fragment)]
    assert missing == [], "\n".join(problems)


def test_checker_reports_unparsable_files() -> None:
    problems = check_texts({"broken.tf": 'resource "linode_vpc" "x" {'}, LINODE, "linode")
    assert len(problems) == 1 and problems[0].startswith("broken.tf: cannot parse")


# --- the three modules share one contract ----------------------------------------------


def _load(module: str, file: str) -> dict[str, Any]:
    return dict(hcl2.loads((TF_DIR / module / file).read_text()))


def _blocks(document: dict[str, Any], kind: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for entry in document.get(kind, []):
        found.update({name.strip('"'): body for name, body in entry.items()})
    return found


@pytest.mark.parametrize("module", PROVIDER_MODULES)
def test_module_files_and_contract(module: str) -> None:
    directory = TF_DIR / module
    for file in ("versions.tf", "variables.tf", "main.tf", "outputs.tf", "README.md"):
        assert (directory / file).is_file(), f"{module}/{file} is missing"

    variables = _blocks(_load(module, "variables.tf"), "variable")
    assert set(variables) == VARIABLES
    undocumented = [name for name, body in variables.items() if not body.get("description")]
    assert undocumented == []
    outputs = _blocks(_load(module, "outputs.tf"), "output")
    assert set(outputs) == OUTPUTS

    # The generated root module configures providers; modules only declare them.
    for path in directory.glob("*.tf"):
        assert "provider" not in hcl2.loads(path.read_text()), f"{path} configures a provider"
    [terraform] = _load(module, "versions.tf")["terraform"]
    [required] = terraform["required_providers"]
    source, version = REQUIRED_PROVIDERS[module]
    assert required[module]["source"].strip('"') == source
    assert required[module]["version"].strip('"') == version


def test_modules_declare_identical_variable_types() -> None:
    def signature(module: str) -> dict[str, tuple[str, str]]:
        variables = _blocks(_load(module, "variables.tf"), "variable")
        return {
            name: (str(body.get("type")), str(body.get("default", "<required>")))
            for name, body in variables.items()
        }

    aws = signature("aws")
    assert signature("linode") == aws
    assert signature("vultr") == aws


@pytest.mark.terraform
def test_modules_are_terraform_fmt_clean() -> None:
    terraform = shutil.which("terraform") or shutil.which("tofu")
    if terraform is None:
        pytest.fail("terraform (or tofu) is not on PATH")
    dirs = [str(TF_DIR / m) for m in PROVIDER_MODULES]
    result = subprocess.run(
        [terraform, "fmt", "-check", "-diff", "-no-color", *dirs],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "CHECKPOINT_DISABLE": "1", "TF_CLI_CONFIG_FILE": os.devnull},
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
