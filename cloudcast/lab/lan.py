"""Site LANs: a bridge in its own namespace, with one veth per host (`lan0` on the host).

    host gw1 lan0 [10.1.0.10/24] ── h<link> ┐
    host m1  lan0 [10.1.0.11/24] ── h<link> ┼─ br0   (namespace <prefix>-lan.<site>)
    host m2  lan0 [10.1.0.12/24] ── h<link> ┘

The LAN is the data path between a site's members and its gateways; every host keeps its
`eth0` on the simulated internet for SSH from the controller. The bridge holds no address and
routes nothing, so traffic between LANs can only go through a gateway. The LAN's namespace is
made by the first host that joins and removed with the last one, so a gateway that dies
(`kill_host`) takes nothing from the others on its LAN.
"""

from __future__ import annotations

import json

from cloudcast.lab import netns, proc
from cloudcast.lab.registry import LabPaths

BRIDGE = "br0"
HOST_IF = "lan0"


def bridge_port(link_index: int) -> str:
    """The LAN side of a host's veth (the host's internet link index is unique in the lab)."""
    return f"h{link_index}"


def ensure(paths: LabPaths, lan: str) -> str:
    """Create the LAN's namespace and bridge when missing; return the namespace."""
    ns = paths.lan_ns(lan)
    if netns.inode(ns) is None:
        netns.delete(ns)
        netns.add(ns)
    if not netns.link_exists(ns, BRIDGE):
        netns.ip(
            ns,
            [
                f"link add {BRIDGE} type bridge",
                # no forwarding delay: a host is on the LAN as soon as its link is up
                f"link set dev {BRIDGE} type bridge forward_delay 0 stp_state 0",
                f"link set dev {BRIDGE} addrgenmode none",
                f"link set dev {BRIDGE} up",
            ],
        )
    return ns


def attach(paths: LabPaths, lan: str, link_index: int, host_ns: str, lan_ip: str) -> None:
    """Plug host namespace `host_ns` into the LAN as `lan0` with address `lan_ip` (A.B.C.D/LEN)."""
    ns = ensure(paths, lan)
    port = bridge_port(link_index)
    if netns.link_exists(ns, port):
        proc.run(["ip", "-n", ns, "link", "del", port], check=False)
    proc.run(
        ["ip", "link", "add", port, "netns", ns, "type", "veth", "peer", "name", HOST_IF, "netns", host_ns],
        what=f"linking {host_ns} to LAN {lan}",
    )
    netns.ip(ns, [f"link set dev {port} master {BRIDGE}", f"link set dev {port} up"])
    netns.ip(host_ns, [f"addr add {lan_ip} dev {HOST_IF}", f"link set dev {HOST_IF} up"])


def attached(paths: LabPaths, lan: str, link_index: int) -> bool:
    """True when the host's veth is still plugged into the LAN's bridge."""
    ns = paths.lan_ns(lan)
    if netns.inode(ns) is None:
        return False
    out = proc.run(["ip", "-n", ns, "-j", "link", "show", "dev", bridge_port(link_index)], check=False)
    try:
        links = json.loads(out.stdout or "[]")
    except ValueError:
        return False
    return bool(links) and links[0].get("master") == BRIDGE


def remove(paths: LabPaths, lan: str) -> None:
    """Delete the LAN (its namespace, bridge and any veth left on it)."""
    netns.delete(paths.lan_ns(lan))


def lan_names(paths: LabPaths) -> list[str]:
    """LANs present on the system (from namespace names)."""
    head = paths.lan_ns("")
    return [ns[len(head) :] for ns in netns.names() if ns.startswith(head)]
