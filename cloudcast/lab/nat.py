"""NAT and double-NAT routers in front of a lab host.

nat="nat":    internet ── wan [public IP] r1 lan [100.64.N.1/24] ── eth0 [100.64.N.2] host
nat="double": internet ── wan [public IP] r1 lan [100.64.N.1/24] ── wan [100.64.N.2] r2
              lan [100.65.N.1/24] ── eth0 [100.65.N.2] host

Each router masquerades out of `wan`, forwards only lan→wan and replies, drops NEW packets
arriving on `wan` for itself, and DNATs tcp/22 inward so the controller can still SSH in.
Nothing else (UDP included) gets in unsolicited: a host behind NAT must start its tunnels.
"""

from __future__ import annotations

from dataclasses import dataclass

from cloudcast.lab import internet, netns, proc
from cloudcast.lab.registry import LabPaths, NatMode


@dataclass(frozen=True)
class Hop:
    """One router of a host's NAT chain."""

    ns: str
    wan_ip: str
    lan_net: str  # e.g. 100.64.7
    inner_ip: str  # the next hop inside (host or inner router), DNAT target for tcp/22

    @property
    def lan_ip(self) -> str:
        return f"{self.lan_net}.1"


def chain(paths: LabPaths, name: str, nat: NatMode, public_ip: str, lan_index: int) -> list[Hop]:
    """The routers a host needs, outermost first (empty without NAT)."""
    outer = f"100.64.{lan_index}"
    inner = f"100.65.{lan_index}"
    if nat == "nat":
        return [Hop(paths.router_ns(name, 1), public_ip, outer, f"{outer}.2")]
    if nat == "double":
        return [
            Hop(paths.router_ns(name, 1), public_ip, outer, f"{outer}.2"),
            Hop(paths.router_ns(name, 2), f"{outer}.2", inner, f"{inner}.2"),
        ]
    return []


def router_rules(hop: Hop) -> str:
    """iptables-restore input for one router."""
    return "\n".join(
        [
            "*nat",
            ":PREROUTING ACCEPT [0:0]",
            ":INPUT ACCEPT [0:0]",
            ":OUTPUT ACCEPT [0:0]",
            ":POSTROUTING ACCEPT [0:0]",
            f"-A PREROUTING -i wan -p tcp --dport 22 -j DNAT --to-destination {hop.inner_ip}:22",
            "-A POSTROUTING -o wan -j MASQUERADE",
            "COMMIT",
            "*filter",
            ":INPUT ACCEPT [0:0]",
            ":FORWARD DROP [0:0]",
            ":OUTPUT ACCEPT [0:0]",
            # Without this, a peer's unsolicited first packet leaves an UNREPLIED conntrack
            # entry that forces another outbound port mapping: hole punching then fails.
            "-A INPUT -i wan -m conntrack --ctstate NEW -j DROP",
            "-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
            "-A FORWARD -i lan -o wan -j ACCEPT",
            f"-A FORWARD -i wan -o lan -d {hop.inner_ip} -p tcp --dport 22 "
            "-m conntrack --ctstate DNAT -j ACCEPT",
            "COMMIT",
            "",
        ]
    )


def build(paths: LabPaths, hops: list[Hop], host_ns: str, link_index: int) -> None:
    """Create the routers and link them: internet → r1 → (r2 →) host `eth0`."""
    for hop in hops:
        netns.add(hop.ns)
        netns.sysctl(
            hop.ns,
            {
                "net.ipv4.ip_forward": "1",
                "net.ipv4.conf.all.rp_filter": "0",
                "net.ipv4.conf.default.rp_filter": "0",
            },
        )
    outer = hops[0]
    internet.attach(paths, link_index, outer.ns, "wan", outer.wan_ip)
    for position, hop in enumerate(hops):
        inside_ns = hops[position + 1].ns if position + 1 < len(hops) else host_ns
        inside_if = "wan" if position + 1 < len(hops) else "eth0"
        proc.run(
            [
                "ip",
                "link",
                "add",
                "lan",
                "netns",
                hop.ns,
                "type",
                "veth",
                "peer",
                "name",
                inside_if,
                "netns",
                inside_ns,
            ],
            what=f"linking {hop.ns} to {inside_ns}",
        )
        netns.ip(
            hop.ns,
            [f"addr add {hop.lan_ip}/24 dev lan", "link set dev lan up"],
        )
        netns.ip(
            inside_ns,
            [
                f"addr add {hop.inner_ip}/24 dev {inside_if}",
                f"link set dev {inside_if} up",
                f"route add default via {hop.lan_ip} dev {inside_if}",
            ],
        )
        netns.iptables_restore(hop.ns, router_rules(hop))
