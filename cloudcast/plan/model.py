"""The frozen `NetworkPlan`: what every node gets, computed from the spec and the allocations."""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from cloudcast.plan.jsontext import dumps
from cloudcast.plan.policy import PolicyPlan

EndpointKind = Literal["private", "public"]
NatMode = Literal["none", "nat", "double"]


@dataclass(frozen=True, slots=True)
class Allocations:
    """Addresses handed out so far; recorded in the state dir so nothing is ever renumbered."""

    overlay: dict[str, str] = field(default_factory=dict)  # node -> overlay address
    sites: dict[str, str] = field(default_factory=dict)  # site -> allocated CIDR
    private: dict[str, str] = field(default_factory=dict)  # node -> provider-private address
    lab: dict[str, int] = field(default_factory=dict)  # lab node -> underlay index

    def to_dict(self) -> dict[str, Any]:
        return {f.name: dict(sorted(getattr(self, f.name).items())) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Allocations:
        return cls(
            overlay=dict(data.get("overlay", {})),
            sites=dict(data.get("sites", {})),
            private=dict(data.get("private", {})),
            lab={k: int(v) for k, v in data.get("lab", {}).items()},
        )


@dataclass(frozen=True, slots=True)
class Link:
    """One node's view of one peer: how to reach it and what it carries."""

    peer: str
    endpoint: EndpointKind | None  # which of the peer's addresses to dial; None: wait for it
    keepalive: int | None  # set on the NAT side only
    allowed_ips: tuple[str, ...]  # the peer's overlay /32, plus CIDRs it routes or relays


def pair_id(a: str, b: str) -> str:
    """The canonical id of the unordered pair {a, b}."""
    x, y = sorted((a, b))
    return f"{x}--{y}"


@dataclass(frozen=True, slots=True)
class LabShape:
    """How a lab host is built: its underlay address and NAT mode."""

    index: int
    public_ip: str
    nat: NatMode


@dataclass(frozen=True, slots=True)
class Failover:
    """What a node changes by itself when `watch` (a primary gateway, hub or relay) stops answering.

    The node pings `address` (the primary's overlay address: through the tunnel, or from a
    member via the primary's LAN address); after a few misses it gives `peers` the allowed IPs
    listed (the standby takes the primary's CIDRs), or, on a member, sends `routes` through the
    standby `gateway`. When the primary answers again, the planned state comes back.
    """

    watch: str
    address: str
    peers: tuple[tuple[str, tuple[str, ...]], ...] = ()  # peer -> allowed IPs while `watch` is down
    gateway: str | None = None  # a member's gateway while `watch` is down
    routes: tuple[str, ...] = ()  # the CIDRs a member routes through it


@dataclass(frozen=True, slots=True)
class Relay:
    """A NAT-to-NAT pair whose traffic goes through `via` (a public node)."""

    a: str
    b: str
    via: str

    def __str__(self) -> str:
        return f"{self.a} <-> {self.b}: both behind NAT, relayed through {self.via}"


@dataclass(frozen=True, slots=True)
class Unrelayed:
    """A NAT-to-NAT pair left without a tunnel: no public node can relay for it."""

    a: str
    b: str

    def __str__(self) -> str:
        return f"{self.a} and {self.b} are both behind NAT and no node can relay"


@dataclass(frozen=True, slots=True)
class DownHost:
    """A primary gateway (of `site`) or hub (`site` None) planned around: `standby` takes over."""

    name: str
    standby: str
    site: str | None = None

    def __str__(self) -> str:
        if self.site is None:
            return f"{self.name} is down: spokes fail over to hub {self.standby}"
        return f"{self.name} is down: site {self.site} fails over to {self.standby}"


#: what the planner tells people (`str()` gives the sentence) and later stages act on
PlanNote = Relay | Unrelayed | DownHost


@dataclass(frozen=True, slots=True)
class NodePlan:
    name: str
    site: str
    provider: str
    role: str
    fqdn: str
    overlay_ip: str
    vpn: bool  # runs the transport (all nodes in mesh; gateways and hubs otherwise)
    behind_nat: NatMode
    forwards: bool  # routes traffic for others: sysctls on, forwarding allowed
    size: str | None
    image: str | None
    private_ip: str | None  # planned provider-private address (aws, linode, lab LAN); None: observed
    gateway: str | None  # members of a gateways/hub site: the node they route through
    routes: tuple[str, ...]  # CIDRs a member routes via its gateway
    lab: LabShape | None
    peers: tuple[Link, ...]
    failover: tuple[Failover, ...] = ()


@dataclass(frozen=True, slots=True)
class SitePlan:
    name: str
    provider: str
    region: str | None
    cidr: str
    cidr_allocated: bool
    gateways: tuple[str, ...]
    nodes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ServicePlan:
    name: str
    node: str
    port: int
    protocol: str
    overlay_ip: str


@dataclass(frozen=True, slots=True)
class NetworkPlan:
    """Everything later stages need, and nothing secret."""

    name: str
    overlay: str
    transport: str
    topology: str
    port: int
    mtu: int
    keepalive: int
    domain: str
    interface: str
    sites: tuple[SitePlan, ...]
    nodes: tuple[NodePlan, ...]
    services: tuple[ServicePlan, ...]
    notes: tuple[PlanNote, ...] = ()
    ipsec_auth: str = "psk"  # psk | certificates
    policy: PolicyPlan | None = None  # None: the spec has no policy, everything is allowed

    @property
    def warnings(self) -> tuple[str, ...]:
        """The notes as the sentences people read."""
        return tuple(str(note) for note in self.notes)

    @property
    def relays(self) -> frozenset[str]:
        """The nodes relaying NAT-to-NAT pairs."""
        return frozenset(note.via for note in self.notes if isinstance(note, Relay))

    @property
    def down_hosts(self) -> tuple[DownHost, ...]:
        """The primaries planned around, each with the standby taking over."""
        return tuple(note for note in self.notes if isinstance(note, DownHost))

    def node(self, name: str) -> NodePlan:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def site(self, name: str) -> SitePlan:
        for site in self.sites:
            if site.name == name:
                return site
        raise KeyError(name)

    def pairs(self) -> list[str]:
        """Every peered pair once, sorted."""
        return sorted({pair_id(n.name, link.peer) for n in self.nodes for link in n.peers})

    def to_dict(self) -> dict[str, Any]:
        """`dataclasses.asdict`, without its deep copy of every string (a mesh has n² links)."""
        data = {f.name: _plain(getattr(self, f.name)) for f in fields(self)}
        # the notes travel as their sentences: the JSON (and so the digest) people and
        # saved plans know stays as it was
        del data["notes"]
        data["warnings"] = list(self.warnings)
        if self.policy is None:
            del data["policy"]  # plans without a policy keep their JSON (and digest)
        return data

    def to_json(self) -> str:
        """Canonical JSON: the same plan always gives the same bytes.

        Those of `json.dumps(self.to_dict(), sort_keys=True, indent=1)`, written straight from
        the records (tests/unit/test_plan_scale.py holds the two equal).
        """
        record = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "notes"}
        if self.policy is None:
            del record["policy"]  # as in to_dict
        record["warnings"] = list(self.warnings)
        return dumps(record, indent=1, memo=(Link, tuple)) + "\n"

    def digest(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


def _plain(value: Any) -> Any:
    """What `dataclasses.asdict` makes of a field's value: records become dicts, containers
    are copied (tuples stay tuples); strings, numbers and None are shared, as its deep copy
    of them returns them unchanged anyway."""
    cls = type(value)
    if cls is Link:
        return {
            "peer": value.peer,
            "endpoint": value.endpoint,
            "keepalive": value.keepalive,
            "allowed_ips": tuple(value.allowed_ips),
        }
    if cls is tuple:
        # a tuple of strings is immutable all the way down: asdict's copy would equal it
        return value if all(type(v) is str for v in value) else tuple(_plain(v) for v in value)
    if cls is list:
        return [_plain(v) for v in value]
    if cls is dict:
        return {_plain(k): _plain(v) for k, v in value.items()}
    if hasattr(cls, "__dataclass_fields__"):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if cls in _ATOMS:
        return value
    return copy.deepcopy(value)


_ATOMS = (str, int, bool, float, type(None))
