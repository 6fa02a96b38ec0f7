"""Reachable hosts: Terraform outputs plus static nodes, joined with the plan."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cloudcast.errors import InventoryError
from cloudcast.plan.model import NetworkPlan
from cloudcast.spec.models import Provider, Spec
from cloudcast.terraform.compile import module_name


@dataclass(frozen=True, slots=True)
class Host:
    """One node as the bootstrapper reaches it."""

    name: str
    site: str
    provider: str
    ssh_host: str
    ssh_port: int
    ssh_user: str
    ssh_key: str | None  # path of the private key; None: agent / default keys
    public_ip: str | None
    private_ip: str | None
    instance_id: str = ""
    eni_id: str = ""

    def endpoint(self, kind: str | None) -> str | None:
        """The address a peer dials for endpoint kind 'private' or 'public'."""
        if kind == "private":
            return self.private_ip or self.public_ip
        if kind == "public":
            return self.public_ip
        return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Inventory:
    hosts: tuple[Host, ...]
    route_tables: dict[str, tuple[str, ...]]  # site -> AWS route table ids

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)


def _expand(path: str) -> str:
    try:
        return str(Path(path).expanduser())
    except RuntimeError:  # `~name` for a user this machine does not have
        raise InventoryError(f"ssh.private_key: {path[:60]!r}: no such user to expand '~' for") from None


def build_inventory(
    spec: Spec,
    plan: NetworkPlan,
    outputs: dict[str, Any],
    *,
    lab_key: Path | None = None,
) -> Inventory:
    """Join Terraform's `output -json` values (already unwrapped) with static nodes.

    `outputs` maps `module_name(site)` (`site_<site>` with '-' as '_') to that module's outputs
    (`nodes`, `route_table_ids`).
    """
    hosts: list[Host] = []
    tables: dict[str, tuple[str, ...]] = {}
    for site in spec.sites:
        site_out = outputs.get(module_name(site.name)) if site.provider is not Provider.STATIC else None
        if site.provider is not Provider.STATIC and not isinstance(site_out, dict):
            raise InventoryError(
                f"Terraform has no outputs for site {site.name!r}; run `cloudcast apply` first"
            )
        if site_out is not None:
            tables[site.name] = tuple(site_out.get("route_table_ids") or ())
        for node in site.nodes:
            ssh = spec.ssh
            over = node.ssh
            user = (over.user if over and over.user else None) or ssh.user
            port = (over.port if over and over.port else None) or ssh.port
            key = (over.private_key if over and over.private_key else None) or ssh.private_key
            if site.provider is Provider.LAB and key is None and lab_key is not None:
                key = str(lab_key)
            key = _expand(key) if key else None
            if site.provider is Provider.STATIC:
                assert over is not None and over.host is not None  # guaranteed by validation
                hosts.append(
                    Host(
                        name=node.name,
                        site=site.name,
                        provider=site.provider.value,
                        ssh_host=over.host,
                        ssh_port=port,
                        ssh_user=user,
                        ssh_key=key,
                        public_ip=None if node.behind_nat else over.host,
                        private_ip=plan.node(node.name).private_ip or over.host,
                    )
                )
                continue
            assert site_out is not None
            out = (site_out.get("nodes") or {}).get(node.name)
            if not isinstance(out, dict):
                raise InventoryError(
                    f"Terraform outputs of site {site.name!r} lack node {node.name!r}; "
                    "run `cloudcast apply` to create it"
                )
            hosts.append(
                Host(
                    name=node.name,
                    site=site.name,
                    provider=site.provider.value,
                    ssh_host=str(out.get("ssh_host") or out.get("public_ip") or ""),
                    ssh_port=int(out.get("ssh_port") or port),
                    ssh_user=str(out.get("ssh_user") or user),
                    ssh_key=key,
                    public_ip=str(out["public_ip"]) if out.get("public_ip") else None,
                    private_ip=str(out["private_ip"]) if out.get("private_ip") else None,
                    instance_id=str(out.get("instance_id") or ""),
                    eni_id=str(out.get("eni_id") or ""),
                )
            )
    return Inventory(hosts=tuple(hosts), route_tables=tables)
