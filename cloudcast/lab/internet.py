"""The simulated internet: a router namespace with one point-to-point link per host.

A flat bridge overflows the kernel's shared neighbour table near 32 hosts, so the internet
namespace routes instead: it holds 198.18.0.1 on its side of every veth and a /32 route per
host; each host (or NAT router) has its public /32 on `eth0`/`wan` and reaches 198.18.0.0/15
via 198.18.0.1 (onlink), so every namespace has a single neighbour.

The root namespace gets exactly one veth (`<prefix>0`, 198.18.0.2/32) and one route
(198.18.0.0/15 via 198.18.0.1): no default route, no forwarding, no firewall change.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cloudcast.errors import LabError
from cloudcast.lab import netns, proc
from cloudcast.lab.registry import INTERNET, ROOT_IP, ROUTER_IP, STATE_ROOT, LabPaths

ROOT_PEER = "root"  # the internet's end of the root namespace's veth
_LINK_RE = re.compile(r"^v([0-9]+)$")


def inet_link(index: int) -> str:
    return f"v{index}"


def _root_routes_to_internet() -> list[dict[str, object]]:
    out = proc.run(["ip", "-j", "-4", "route", "show", "root", str(INTERNET)], check=False)
    try:
        routes = json.loads(out.stdout or "[]")
    except ValueError:
        return []
    return [r for r in routes if isinstance(r, dict)]


def _root_addresses_in_internet() -> list[tuple[str, str]]:
    out = proc.run(["ip", "-j", "-4", "addr", "show"], check=False)
    found: list[tuple[str, str]] = []
    try:
        links = json.loads(out.stdout or "[]")
    except ValueError:
        return found
    for link in links:
        for info in link.get("addr_info", []):
            local = str(info.get("local", ""))
            try:
                inside = bool(local) and _in_internet(local)
            except ValueError:
                inside = False
            if inside:
                found.append((str(link.get("ifname", "?")), local))
    return found


def _in_internet(address: str) -> bool:
    return ipaddress.IPv4Address(address) in INTERNET


def ensure(paths: LabPaths) -> bool:
    """Create the internet namespace and the root veth if missing; True when created.

    The root veth's peer lives in the internet namespace, and deleting a namespace deletes
    its veths with their peers: so the root link existing means the whole path exists.
    """
    inet_ok = netns.inode(paths.inet_ns) is not None
    if inet_ok and Path("/sys/class/net", paths.root_link).exists():
        return False
    with root_namespace_lock():
        return _ensure_locked(paths, inet_ok)


@contextmanager
def root_namespace_lock() -> Iterator[None]:
    """Serialise changes to the root namespace across labs (each lab has its own lock)."""
    STATE_ROOT.mkdir(parents=True, exist_ok=True, mode=0o755)
    fd = os.open(STATE_ROOT / "root-namespace.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _ensure_locked(paths: LabPaths, inet_ok: bool) -> bool:
    if Path("/sys/class/net", paths.root_link).exists():
        if inet_ok:
            return False
        _delete_link(None, paths.root_link)  # stale: start over
    _check_root_free()
    if not inet_ok:
        netns.delete(paths.inet_ns)
        netns.add(paths.inet_ns)
        netns.sysctl(
            paths.inet_ns,
            {
                "net.ipv4.ip_forward": "1",
                "net.ipv4.conf.all.rp_filter": "0",
                "net.ipv4.conf.default.rp_filter": "0",
            },
        )
    else:
        _delete_link(paths.inet_ns, ROOT_PEER)
    _make_root_link(paths)
    return True


def _check_root_free() -> None:
    """Only one lab at a time may own 198.18.0.0/15 in the root namespace."""
    routes = _root_routes_to_internet()
    if routes:
        dev = str(routes[0].get("dev", "?"))
        other = f"CLOUDCAST_LAB_PREFIX={dev[:-1]} " if dev.endswith("0") else ""
        raise LabError(
            f"the root namespace already routes {routes[0].get('dst', INTERNET)} via {dev}: "
            "another lab (or something else) owns the simulated internet's range",
            hint=f"take the other lab down first (`{other}cloudcast lab down`)",
        )
    addresses = _root_addresses_in_internet()
    if addresses:
        ifname, address = addresses[0]
        raise LabError(
            f"the root namespace already has {address} on {ifname}, inside the lab's range {INTERNET}",
            hint="take the other lab down first, or remove that address",
        )


def _make_root_link(paths: LabPaths) -> None:
    link = paths.root_link
    proc.run(
        [
            "ip",
            "link",
            "add",
            link,
            "type",
            "veth",
            "peer",
            "name",
            ROOT_PEER,
            "netns",
            paths.inet_ns,
        ],
        what=f"creating the root namespace's link {link}",
    )
    netns.ip(
        None,
        [
            # No IPv6 link-local address: the root side keeps exactly one address.
            f"link set dev {link} addrgenmode none",
            f"addr add {ROOT_IP}/32 dev {link}",
            f"link set dev {link} up",
            f"route add {INTERNET} via {ROUTER_IP} dev {link} onlink",
        ],
    )
    netns.ip(
        paths.inet_ns,
        [
            f"link set dev {ROOT_PEER} addrgenmode none",
            f"addr add {ROUTER_IP}/32 dev {ROOT_PEER}",
            f"link set dev {ROOT_PEER} up",
            f"route add {ROOT_IP}/32 dev {ROOT_PEER}",
        ],
    )


def attach(paths: LabPaths, index: int, ns: str, ifname: str, public_ip: str) -> None:
    """Link namespace `ns` (its end named `ifname`, holding `public_ip`) to the internet."""
    attach_link(paths, inet_link(index), ns, ifname, public_ip)


def attach_link(paths: LabPaths, link: str, ns: str, ifname: str, public_ip: str) -> None:
    """`attach` with the internet side's link name given (`v<N>` for hosts)."""
    _delete_link(paths.inet_ns, link)
    proc.run(
        [
            "ip",
            "link",
            "add",
            link,
            "netns",
            paths.inet_ns,
            "type",
            "veth",
            "peer",
            "name",
            ifname,
            "netns",
            ns,
        ],
        what=f"linking {ns} to the lab internet",
    )
    netns.ip(
        paths.inet_ns,
        [
            f"link set dev {link} addrgenmode none",
            f"addr add {ROUTER_IP}/32 dev {link}",
            f"link set dev {link} up",
            f"route replace {public_ip}/32 dev {link}",
        ],
    )
    netns.ip(
        ns,
        [
            f"addr add {public_ip}/32 dev {ifname}",
            f"link set dev {ifname} up",
            f"route add {INTERNET} via {ROUTER_IP} dev {ifname} onlink",
        ],
    )


def proxy_arp(paths: LabPaths, index: int) -> None:
    """Answer ARP on a host's link for the whole range: a VM holds its address as a /15."""
    netns.sysctl(paths.inet_ns, {f"net.ipv4.conf.{inet_link(index)}.proxy_arp": "1"})


def links_on_system(paths: LabPaths) -> set[int]:
    """Indexes of the `v<N>` links present in the internet namespace."""
    if not netns.exists(paths.inet_ns):
        return set()
    out = proc.run(
        ["ip", "-n", paths.inet_ns, "-j", "link", "show"],
        what=f"listing the links of {paths.inet_ns}",
    )
    try:
        links = json.loads(out.stdout or "[]")
    except ValueError as exc:
        raise LabError(f"cannot parse `ip -j link` output of {paths.inet_ns}") from exc
    found: set[int] = set()
    for link in links:
        match = _LINK_RE.match(str(link.get("ifname", "")).split("@")[0])
        if match:
            found.add(int(match.group(1)))
    return found


def detach(paths: LabPaths, index: int, public_ip: str | None = None) -> None:
    """Remove a host's internet link and route (normally gone with the host namespace)."""
    if not netns.exists(paths.inet_ns):
        return
    _delete_link(paths.inet_ns, inet_link(index))
    if public_ip:
        proc.run(["ip", "-n", paths.inet_ns, "route", "del", f"{public_ip}/32"], check=False)


def _delete_link(ns: str | None, link: str, timeout: float = 5.0) -> None:
    """Delete a link and wait until it is gone.

    A deleted namespace is torn down by the kernel in the background: its veths (and their
    peers here) linger for a moment, and may vanish between our look and our delete.
    """
    deadline = time.monotonic() + timeout
    while netns.link_exists(ns, link):
        base = ["ip"] + (["-n", ns] if ns else [])
        proc.run([*base, "link", "del", link], check=False)
        if time.monotonic() > deadline:
            raise LabError(f"link {link} in {ns or 'the root namespace'} does not go away")
        time.sleep(0.02)


def wait_root_link_gone(paths: LabPaths, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while Path("/sys/class/net", paths.root_link).exists():
        if time.monotonic() > deadline:
            _delete_link(None, paths.root_link)
            return
        time.sleep(0.02)


def _cut_rules(public_ip: str) -> list[list[str]]:
    return [
        ["FORWARD", "-s", public_ip, "-j", "DROP"],
        ["FORWARD", "-d", public_ip, "-j", "DROP"],
    ]


def cut(paths: LabPaths, public_ip: str) -> None:
    """Drop every packet to and from `public_ip` in the internet router."""
    for rule in _cut_rules(public_ip):
        check = proc.run(netns.exec_argv(paths.inet_ns, ["iptables", "-C", *rule]), check=False)
        if check.returncode != 0:
            proc.run(
                netns.exec_argv(paths.inet_ns, ["iptables", "-I", *rule]),
                what=f"cutting {public_ip} off the lab internet",
            )


def uncut(paths: LabPaths, public_ip: str) -> None:
    if not netns.exists(paths.inet_ns):
        return
    for rule in _cut_rules(public_ip):
        while (
            proc.run(netns.exec_argv(paths.inet_ns, ["iptables", "-D", *rule]), check=False).returncode == 0
        ):
            pass
