"""Plans, inventories and host facts shared by the render and actions tests (no SSH)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from cloudcast.bootstrap.desired import Desired, desired_state
from cloudcast.bootstrap.facts import Facts, HostRoute
from cloudcast.bootstrap.render import splice_hosts
from cloudcast.inventory.hosts import Host, Inventory
from cloudcast.plan import NetworkPlan, build_plan
from cloudcast.spec import parse_spec
from cloudcast.ssh.wgdump import PeerFact

LAB_SPEC: dict[str, Any] = {
    "name": "demo",
    "network": {"overlay": "10.15.0.0/24", "domain": "lab.internal"},
    "sites": [
        {
            "name": "lab",
            "provider": "lab",
            "nodes": [
                {"name": "alpha"},
                {"name": "bravo"},
                {"name": "charlie", "behind_nat": True},
                {"name": "delta", "behind_nat": "double"},
            ],
        }
    ],
    "services": [{"name": "echo", "node": "alpha", "port": 8888}],
}

GATEWAYS_SPEC: dict[str, Any] = {
    "name": "gw",
    "network": {"overlay": "10.16.0.0/24", "topology": "gateways"},
    "sites": [
        {
            "name": "east",
            "provider": "static",
            "cidr": "10.20.0.0/24",
            "nodes": [
                {"name": "gw1", "role": "gateway", "ssh": {"host": "203.0.113.1"}},
                {"name": "app1", "ssh": {"host": "203.0.113.2"}},
            ],
        },
        {
            "name": "west",
            "provider": "static",
            "cidr": "10.30.0.0/24",
            "nodes": [{"name": "gw2", "role": "gateway", "ssh": {"host": "203.0.113.3"}}],
        },
    ],
}

HOSTS_TEXT = "127.0.0.1 localhost\n::1 localhost ip6-localhost\n"


def key_of(name: str) -> str:
    """A stand-in WireGuard public key (44 chars of base64) for node `name`."""
    return (name.upper() + "A" * 43)[:43] + "="


def psk_of(pair: str) -> str:
    return ("PSK" + pair.replace("-", "") + "B" * 43)[:43] + "="


def lab_plan() -> NetworkPlan:
    return build_plan(parse_spec(LAB_SPEC))[0]


def lab_inventory(plan: NetworkPlan, ssh_port: int = 22) -> Inventory:
    hosts = []
    for n in plan.nodes:
        assert n.lab is not None
        pub = n.lab.public_ip
        private = pub if n.behind_nat == "none" else f"100.64.{n.lab.index}.2"
        hosts.append(Host(n.name, n.site, "lab", pub, ssh_port, "root", "/k", pub, private))
    return Inventory(tuple(hosts), {})


def gateways_plan() -> NetworkPlan:
    return build_plan(parse_spec(GATEWAYS_SPEC))[0]


def static_inventory(plan: NetworkPlan) -> Inventory:
    private = {"gw1": "10.20.0.5", "app1": "10.20.0.6", "gw2": "10.30.0.5"}
    hosts = [
        Host(
            n.name,
            n.site,
            "static",
            f"203.0.113.{i + 1}",
            22,
            "root",
            None,
            f"203.0.113.{i + 1}",
            private[n.name],
        )
        for i, n in enumerate(plan.nodes)
    ]
    return Inventory(tuple(hosts), {})


def keys(plan: NetworkPlan) -> dict[str, str]:
    return {n.name: key_of(n.name) for n in plan.nodes if n.vpn}


def psks(plan: NetworkPlan) -> dict[str, str]:
    return {p: psk_of(p) for p in plan.pairs()}


def desired_for(plan: NetworkPlan, inv: Inventory, name: str, **kw: Any) -> Desired:
    return desired_state(plan, plan.node(name), inv, keys(plan), psks(plan), **kw)


FRESH = Facts(
    tools=frozenset({"ip", "apt-get", "sysctl"}),
    hosts=HOSTS_TEXT,
    now=1_700_000_000,
)
"""A new Debian host: no WireGuard tools, no kernel module, no key."""

TOOLED = replace(FRESH, tools=frozenset({"wg", "wg-quick", "wireguard-go", "nft", "ip", "ping", "apt-get"}))
"""Packages installed, nothing configured yet."""


def converged(desired: Desired, *, kernel_wg: bool = False, systemd: bool = False) -> Facts:
    """The facts a host reports once `desired` is applied and the interface runs."""
    peers = tuple(
        sorted(
            (
                PeerFact(
                    p.public_key, p.endpoint, tuple(sorted(p.allowed_ips)), 1_699_999_990, 10, 20, p.keepalive
                )
                for p in desired.peers
            ),
            key=lambda p: p.public_key,
        )
    )
    return replace(
        TOOLED,
        kernel_wg=kernel_wg,
        systemd=systemd,
        enabled=systemd,
        public_key=key_of(desired.node) if desired.vpn else None,
        iface=desired.vpn,
        iface_public_key=key_of(desired.node) if desired.vpn else None,
        addresses=(desired.address,) if desired.address else (),
        mtu=desired.mtu if desired.vpn else None,
        listen_port=desired.port if desired.vpn else None,
        peers=peers,
        hashes={f.path: f.sha256 for f in desired.files},
        hosts=splice_hosts(HOSTS_TEXT, desired.network, desired.hosts_block),
        table=desired.vpn,
        ip_forward=desired.forwards,
        route_localnet=bool(desired.services),
        routes=tuple(HostRoute(c.removesuffix("/32"), v, "eth0") for c, v in desired.routes),
        failover=desired.file(desired.paths.failover) is not None,
    )
