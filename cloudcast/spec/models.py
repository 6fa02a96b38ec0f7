"""The spec: pydantic models of the user's JSON. The JSON Schema is generated from them."""

from __future__ import annotations

from enum import StrEnum
from ipaddress import IPv4Network

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from cloudcast.spec.types import (
    AwsRegion,
    BehindNat,
    BucketName,
    Cidr,
    Domain,
    FilePath,
    Host,
    HttpUrl,
    ImageToken,
    InterfaceName,
    Label,
    LoginName,
    NodeName,
    Port,
    ProviderToken,
    S3Key,
    SchemaRef,
    StateDir,
    TableName,
    Text,
)

Name = Label

#: bounds that keep a policy's checks and firewall tables small
MAX_TAGS = 32
MAX_RULES = 512
MAX_RULE_NAMES = 64
MAX_RULE_PORTS = 64


class Transport(StrEnum):
    WIREGUARD = "wireguard"
    IPSEC = "ipsec"


class IpsecAuth(StrEnum):
    PSK = "psk"
    CERTIFICATES = "certificates"


class Topology(StrEnum):
    MESH = "mesh"
    GATEWAYS = "gateways"
    HUB = "hub"


class Provider(StrEnum):
    AWS = "aws"
    LINODE = "linode"
    VULTR = "vultr"
    STATIC = "static"
    LAB = "lab"


class Machine(StrEnum):
    """What a lab host is: network namespaces on this machine, or a virtual machine."""

    NAMESPACE = "namespace"
    VM = "vm"


class Role(StrEnum):
    MEMBER = "member"
    GATEWAY = "gateway"
    HUB = "hub"


class Protocol(StrEnum):
    TCP = "tcp"
    UDP = "udp"


class FlowProtocol(StrEnum):
    """What a policy rule allows: TCP or UDP to its ports, or ICMP echo."""

    TCP = "tcp"
    UDP = "udp"
    ICMP = "icmp"


class Backend(StrEnum):
    LOCAL = "local"
    S3 = "s3"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class Network(_Model):
    """The overlay network shared by every node."""

    overlay: Cidr = Field(
        default=IPv4Network("10.15.0.0/16"),
        description="CIDR of the overlay; every VPN node gets one address in it.",
    )
    transport: Transport = Field(default=Transport.WIREGUARD, description="Tunnel technology.")
    topology: Topology = Field(
        default=Topology.MESH,
        description="mesh: every node peers with every node; gateways: one gateway per site "
        "carries the site's CIDR; hub: spokes peer only with the hub.",
    )
    ipsec_auth: IpsecAuth = Field(
        default=IpsecAuth.PSK,
        description="How IPsec gateways authenticate: psk (a preshared key per pair) or certificates "
        "(a key pair made on each gateway, its certificate signed by a CA cloudcast keeps).",
    )
    port: Port = Field(default=51871, description="UDP port of the transport (WireGuard).")
    mtu: StrictInt = Field(default=1420, ge=1280, le=9000, description="MTU of the tunnel interface.")
    keepalive: StrictInt = Field(
        default=25,
        ge=0,
        le=3600,
        description="Persistent keepalive (seconds) sent from nodes behind NAT; 0 disables.",
    )
    domain: Domain = Field(
        default="vpc.internal",
        description="Domain for node names: every node is reachable as NAME.DOMAIN "
        "(a domain of your own, never a public suffix such as com).",
    )
    interface: InterfaceName = Field(default="cc0")
    site_pool: Cidr = Field(
        default=IPv4Network("10.128.0.0/9"),
        description="Where site CIDRs are allocated from when a site gives none.",
    )
    site_prefix: StrictInt = Field(
        default=24, ge=16, le=28, description="Prefix length of allocated site CIDRs."
    )
    ping: StrictBool = Field(
        default=True,
        description="With a policy: ICMP echo between every pair of nodes stays allowed, so "
        "verify's probes (and failover checks) pass; false: only where a rule allows icmp.",
    )


class SSH(_Model):
    """How cloudcast reaches hosts over SSH; nodes may override any field."""

    user: LoginName = Field(default="root", description="Login user (root or sudo).")
    port: Port = Field(default=22, description="SSH port.")
    private_key: FilePath | None = Field(
        default=None,
        description="Path of the private key; the lab provides its own key for lab sites.",
    )
    public_key: FilePath | None = Field(
        default=None,
        description="Path of the public key installed on new cloud instances "
        "(default: private_key + '.pub').",
    )
    sources: list[Cidr] = Field(
        default_factory=lambda: [IPv4Network("0.0.0.0/0")],
        description="CIDRs allowed to reach SSH through cloud and host firewalls.",
    )
    known_hosts: FilePath | None = Field(
        default=None,
        description="Strict mode: a known_hosts file every host key must already be in.",
    )


class NodeSSH(_Model):
    """Per-node SSH overrides; `host` is required for static nodes."""

    host: Host | None = Field(default=None, description="IPv4 address or host name to SSH to.")
    port: Port | None = None
    user: LoginName | None = None
    private_key: FilePath | None = None


class Node(_Model):
    """One machine in a site."""

    name: NodeName = Field(description="Hostname label, unique across the spec (case-insensitive).")
    size: ProviderToken | None = Field(default=None, description="Instance type / plan (provider default).")
    image: ImageToken | None = Field(default=None, description="Image (provider default: Ubuntu 22.04).")
    role: Role = Field(
        default=Role.MEMBER,
        description="member; gateway (routes its site, `gateways`/`hub` topologies); hub.",
    )
    behind_nat: BehindNat = Field(
        default=False,
        description='The node cannot be reached from outside (true, or "double" for double '
        "NAT); it initiates its tunnels and keeps them alive.",
    )
    ssh: NodeSSH | None = Field(default=None, description="SSH overrides for this node.")
    tags: list[Label] = Field(
        default_factory=list,
        max_length=MAX_TAGS,
        description="Labels policy rules name (besides its site's tags and its own name).",
    )
    machine: Machine | None = Field(
        default=None,
        description="Lab nodes: namespace (namespaces on this machine) or vm (a QEMU virtual "
        "machine with its own kernel); default: the site's, else namespace.",
    )


class Site(_Model):
    """A group of nodes sharing a provider network (a VPC, a LAN, a home)."""

    name: Name
    provider: Provider
    region: ProviderToken | None = Field(default=None, description="Provider region (cloud sites).")
    cidr: Cidr | None = Field(
        default=None, description="The site's private CIDR; allocated when absent."
    )
    nodes: list[Node] = Field(min_length=1)
    tags: list[Label] = Field(
        default_factory=list, max_length=MAX_TAGS, description="Tags every node of the site carries."
    )
    machine: Machine | None = Field(
        default=None, description="Lab sites: the machine of nodes that name none (default namespace)."
    )
    lan: bool | None = Field(
        default=None,
        description="Lab sites: a site LAN (a bridge in the site CIDR, lan0 on every host), as a "
        "provider's private network; default: only where the topology routes through gateways or hubs.",
    )

    def machine_of(self, node: Node) -> Machine:
        """The node's own machine, else the site's, else a namespace."""
        return node.machine or self.machine or Machine.NAMESPACE


class Service(_Model):
    """A port on a node reachable over the overlay (from every node, or with a `policy` from
    the nodes it allows), never from the underlay."""

    name: Name
    node: Label = Field(description="Name of the node that runs the service.")
    port: Port
    protocol: Protocol = Protocol.TCP


class PortRange(_Model):
    """Ports `first` to `last`, both included."""

    first: Port
    last: Port


class Rule(_Model):
    """Traffic the policy allows over the overlay: from some nodes to others, on some ports.

    `from` and `to` name tags, nodes or sites (a site: every node in it). Replies are always
    allowed; everything no rule allows is dropped where it arrives.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    sources: list[Label] = Field(
        alias="from", max_length=MAX_RULE_NAMES, description="Tags, nodes or sites the traffic comes from."
    )
    to: list[Label] = Field(max_length=MAX_RULE_NAMES, description="Tags, nodes or sites it goes to.")
    ports: list[Port | PortRange] = Field(
        default_factory=list,
        max_length=MAX_RULE_PORTS,
        description="Ports (8080) or ranges ({\"first\": 8000, \"last\": 8099}); none for icmp.",
    )
    protocol: FlowProtocol = Field(default=FlowProtocol.TCP, description="tcp, udp, or icmp (echo).")


class State(_Model):
    """Where Terraform's and cloudcast's state live."""

    backend: Backend = Field(default=Backend.LOCAL)
    dir: StateDir | None = Field(default=None, description="Work dir (default: .cloudcast/ beside the spec).")
    bucket: BucketName | None = Field(default=None, description="S3 bucket (backend s3).")
    key: S3Key | None = Field(default=None, description="S3 object key prefix (backend s3).")
    region: AwsRegion | None = Field(default=None, description="S3 region (backend s3).")
    use_lockfile: StrictBool = Field(default=True, description="S3-native state locking.")
    dynamodb_table: TableName | None = Field(default=None, description="DynamoDB lock table.")
    endpoint: HttpUrl | None = Field(default=None, description="S3 endpoint override (moto, MinIO).")


class Spec(_Model):
    """A cloudcast network."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_: SchemaRef | None = Field(default=None, alias="$schema", description="JSON Schema URL or path.")
    name: Name = Field(description="Network name; prefixes cloud resource names.")
    description: Text | None = Field(default=None, description="Free text, for people.")
    network: Network = Field(default_factory=Network)
    ssh: SSH = Field(default_factory=SSH)
    sites: list[Site] = Field(min_length=1)
    services: list[Service] = Field(default_factory=list)
    policy: list[Rule] | None = Field(
        default=None,
        max_length=MAX_RULES,
        description="Who may talk to whom over the overlay. Absent: everything is allowed; "
        "present (even empty): only what its rules allow, plus replies and ICMP echo (network.ping).",
    )
    state: State = Field(default_factory=State)
    aws_endpoint: HttpUrl | None = Field(
        default=None,
        description="Override for every AWS API endpoint (moto, LocalStack); AWS_ENDPOINT_URL does the same.",
    )

    def all_nodes(self) -> list[tuple[Site, Node]]:
        """Every (site, node) in spec order."""
        return [(site, node) for site in self.sites for node in site.nodes]
