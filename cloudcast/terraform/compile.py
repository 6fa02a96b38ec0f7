"""Write the generated root module (`main.tf.json`) that instantiates the hand-written modules."""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Mapping
from functools import lru_cache
from ipaddress import ip_network
from pathlib import Path
from typing import Any

from cloudcast.errors import PlanError, UnsafeValueError
from cloudcast.plan.jsontext import dumps
from cloudcast.plan.model import NetworkPlan, NodePlan, SitePlan
from cloudcast.providers import DEFAULT_SIZE
from cloudcast.providers.aws import NETWORK_TAG, SITE_TAG, aws_endpoint
from cloudcast.resources import tf_dir
from cloudcast.spec.files import KeyFileError, resolve
from cloudcast.spec.files import read_public_key as read_key_file
from cloudcast.spec.models import Backend, Provider, Spec, Transport
from cloudcast.terraform.escape import tf_literals

PROVIDER_SOURCES = {
    "aws": ("hashicorp/aws", "~> 5.0"),
    "linode": ("linode/linode", "~> 3.0"),
    "vultr": ("vultr/vultr", "~> 2.0"),
}
AWS_SERVICES = ("ec2", "sts", "iam", "s3", "dynamodb")
#: what the AWS provider and the S3 backend skip against an endpoint override (moto, LocalStack)
EMULATOR_SKIPS = {
    "skip_credentials_validation": True,
    "skip_requesting_account_id": True,
    "skip_metadata_api_check": True,
    "skip_region_validation": True,
}


#: a Terraform identifier: module names go into references cloudcast writes, `${module.NAME.nodes}`
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


def module_name(site: str) -> str:
    """The root-module name (and output name) of a site's module; refused unless an identifier."""
    name = f"site_{site.replace('-', '_')}"
    if not _IDENTIFIER.fullmatch(name):
        raise UnsafeValueError(f"site {site[:60]!r}: {name[:60]!r} is not a Terraform identifier")
    return name


def udp_ports(plan: NetworkPlan) -> list[int]:
    """UDP ports the transport needs open on the underlay."""
    return [500, 4500] if plan.transport == Transport.IPSEC.value else [plan.port]


def compile_root(
    spec: Spec,
    plan: NetworkPlan,
    out_dir: Path,
    *,
    ssh_public_key: str = "",
    lab_prefix: str | None = None,
    environ: dict[str, str] | None = None,
    retired_aws: Mapping[str, str] | None = None,
) -> Path:
    """Write `main.tf.json` and a copy of the modules it uses into `out_dir`; return the file.

    `retired_aws` (site name -> region): AWS sites gone from the spec whose resources may still
    be in Terraform's state. Their provider configuration stays (with no module) so Terraform
    can destroy those resources; without it Terraform refuses to plan.
    """
    env = dict(os.environ if environ is None else environ)
    out_dir.mkdir(parents=True, exist_ok=True)
    retired = {s: r for s, r in (retired_aws or {}).items() if s not in {p.name for p in plan.sites}}
    used = sorted({site.provider for site in plan.sites if site.provider != Provider.STATIC.value})
    if retired and Provider.AWS.value not in used:
        used = sorted([*used, Provider.AWS.value])
    for provider in used:
        _copy_module(provider, out_dir / "modules" / provider)

    root: dict[str, Any] = {"terraform": _terraform_block(spec, used)}
    providers: dict[str, list[dict[str, Any]]] = {}
    modules: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    by_name = {n.name: n for n in plan.nodes}  # not plan.node() per node: that is O(n²)
    for site in plan.sites:
        if site.provider == Provider.STATIC.value:
            continue
        name = module_name(site.name)
        # `source` is read literally; the arguments are evaluated, so they are made literal
        nodes = [by_name[n] for n in site.nodes]
        args = _module_args(spec, plan, site, nodes, ssh_public_key, lab_prefix, env)
        block = {"source": f"./modules/{site.provider}", **tf_literals(args)}
        if site.provider == Provider.AWS.value:
            providers.setdefault("aws", []).append(_aws_provider(spec, site.name, site.region, name, env))
            block["providers"] = {"aws": f"aws.{name}"}
        elif site.provider in ("linode", "vultr") and site.provider not in providers:
            providers[site.provider] = [{}]  # credentials come from LINODE_TOKEN / VULTR_API_KEY
        modules[name] = block
        outputs[name] = {
            "description": f"Hosts and ids of site {site.name}",
            "value": {
                "nodes": f"${{module.{name}.nodes}}",
                "route_table_ids": f"${{module.{name}.route_table_ids}}",
                "vpc_id": f"${{module.{name}.vpc_id}}",
            },
        }
    for site_name, region in sorted(retired.items()):
        alias = module_name(site_name)
        providers.setdefault("aws", []).append(_aws_provider(spec, site_name, region, alias, env))
    if providers:
        root["provider"] = providers
    if modules:
        root["module"] = modules
    if outputs:
        root["output"] = outputs
    path = out_dir / "main.tf.json"
    text = dumps(root, indent=2) + "\n"  # json.dumps(root, indent=2, sort_keys=True), faster
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def _copy_module(provider: str, dest: Path) -> None:
    src = tf_dir() / provider
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*", "README.md"))


def _terraform_block(spec: Spec, used: list[str]) -> dict[str, Any]:
    block: dict[str, Any] = {"required_version": ">= 1.5"}
    required = {
        p: {"source": PROVIDER_SOURCES[p][0], "version": PROVIDER_SOURCES[p][1]}
        for p in used
        if p in PROVIDER_SOURCES
    }
    if required:
        block["required_providers"] = required
    st = spec.state
    if st.backend is Backend.S3:
        # Terraform reads backend settings literally (they are never evaluated, so `${` in a
        # bucket name is just text): written as they are, tf_literal would change them
        s3: dict[str, Any] = {
            "bucket": st.bucket,
            "key": f"{(st.key or spec.name).rstrip('/')}/terraform.tfstate",
            "region": st.region,
            "use_lockfile": st.use_lockfile,
        }
        if st.dynamodb_table:
            s3["dynamodb_table"] = st.dynamodb_table
        if st.endpoint:
            s3["endpoints"] = {"s3": st.endpoint, "dynamodb": st.endpoint}
            s3.update(use_path_style=True, **EMULATOR_SKIPS)
        block["backend"] = {"s3": s3}
    return block


def _aws_provider(
    spec: Spec, site: str, region: str | None, name: str, env: dict[str, str]
) -> dict[str, Any]:
    block: dict[str, Any] = {
        "region": region,
        "default_tags": {"tags": {NETWORK_TAG: spec.name, SITE_TAG: site}},
    }
    endpoint = aws_endpoint(spec, env)
    if endpoint:
        block["endpoints"] = {svc: endpoint for svc in AWS_SERVICES}
        block.update(EMULATOR_SKIPS, s3_use_path_style=True)
    return {"alias": name, **tf_literals(block)}  # the alias is read literally, settings evaluated


def _module_args(
    spec: Spec,
    plan: NetworkPlan,
    site: SitePlan,
    nodes: list[NodePlan],
    ssh_public_key: str,
    lab_prefix: str | None,
    env: dict[str, str],
) -> dict[str, Any]:
    block: dict[str, Any] = {
        "site": site.name,
        "name_prefix": spec.name,
        "ssh_user": spec.ssh.user,
        "ssh_public_key": ssh_public_key,
    }
    if site.provider == Provider.LAB.value:
        block["lab_command"] = [sys.executable, "-m", "cloudcast"]
        block["lab_prefix"] = lab_prefix or env.get("CLOUDCAST_LAB_PREFIX") or "cclab"
        spec_site = next(s for s in spec.sites if s.name == site.name)
        machines = {node.name: spec_site.machine_of(node).value for node in spec_site.nodes}
        block["nodes"] = {n.name: _lab_node(n, site, machines[n.name]) for n in nodes}
        return block
    if not ssh_public_key:
        raise PlanError(
            f"site {site.name!r}: cloud instances need an SSH public key",
            hint="set ssh.private_key (its .pub beside it) or ssh.public_key in the spec",
        )
    others = sorted(s.cidr for s in plan.sites if s.name != site.name)
    block.update(
        region=site.region or "",
        cidr=site.cidr,
        overlay_cidr=plan.overlay,
        remote_cidrs=others,
        udp_ports=udp_ports(plan),
        ssh_port=spec.ssh.port,
        ssh_sources=[str(s) for s in spec.ssh.sources],
        nodes={
            n.name: {
                "size": n.size or DEFAULT_SIZE[site.provider],
                "image": n.image or "",
                "role": n.role,
                "private_ip": n.private_ip or "",
                "public": True,
            }
            for n in nodes
        },
    )
    return block


def _lab_node(n: NodePlan, site: SitePlan, machine: str = "namespace") -> dict[str, Any]:
    """A lab host; with a planned private address it is also on the site's LAN (`lan0`)."""
    node: dict[str, Any] = {
        "public_ip": n.lab.public_ip if n.lab else "",
        "nat": n.behind_nat,
        "role": n.role,
        "lan_index": (n.lab.index + 1) if n.lab else 0,
    }
    if machine != "namespace":  # namespace hosts keep the inputs they had before VMs
        node["machine"] = machine
    if n.private_ip:
        node["lan"] = site.name
        node["lan_ip"] = f"{n.private_ip}/{_prefixlen(site.cidr)}"
    return node


@lru_cache(maxsize=256)
def _prefixlen(cidr: str) -> int:
    return ip_network(cidr).prefixlen


def read_public_key(spec: Spec, spec_dir: Path, environ: dict[str, str] | None = None) -> str:
    """The SSH public key installed on new cloud instances, `TYPE BASE64` ('' when none is configured)."""
    path = spec.ssh.public_key or (f"{spec.ssh.private_key}.pub" if spec.ssh.private_key else None)
    if not path:
        return ""
    try:
        return read_key_file(resolve(path, spec_dir, environ))
    except KeyFileError as exc:
        raise PlanError(
            f"ssh.public_key: {exc}",
            hint="create it with ssh-keygen -t ed25519, or point ssh.public_key at an existing key",
        ) from None
