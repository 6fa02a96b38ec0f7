"""Stable address allocation: existing allocations are kept, new ones take the lowest free slot.

Addresses are handed out by arithmetic on integers: a network's hosts are a `range`, never a
list, so a 10.0.0.0/8 site costs what a /24 does (`list(cidr.hosts())` of a /8 was 16 M objects).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from ipaddress import IPv4Address, IPv4Network

from cloudcast.errors import PlanError
from cloudcast.plan.model import Allocations
from cloudcast.spec.models import Provider, Site, Spec, Topology

# Lab hosts made from specs live in 198.18.1.0 and up; `cloudcast lab up` hosts use 198.19/16.
LAB_BASE = IPv4Address("198.18.1.10")
LAB_MAX = 60000
# AWS reserves the first four addresses of a subnet; start members well clear of them.
PRIVATE_FIRST_HOST = 10


def allocate(spec: Spec, previous: Allocations) -> Allocations:
    """Allocations for `spec`, keeping every still-present entry of `previous` unchanged."""
    sites = _site_cidrs(spec, previous)
    overlay = _overlay(spec, previous)
    private = _private(spec, previous, sites)
    lab = _lab(spec, previous)
    return Allocations(overlay=overlay, sites=sites, private=private, lab=lab)


def _keep(previous: dict[str, str], names: Iterable[str]) -> dict[str, str]:
    wanted = set(names)
    return {k: v for k, v in previous.items() if k in wanted}


def _overlay(spec: Spec, previous: Allocations) -> dict[str, str]:
    net = spec.network.overlay
    names = [node.name for _, node in spec.all_nodes()]
    kept = {
        k: v
        for k, v in _keep(previous.overlay, names).items()
        if IPv4Address(v) in net and IPv4Address(v) not in (net.network_address, net.broadcast_address)
    }
    # addresses of nodes removed in this same change stay out of reach until the next one,
    # so a new node never takes an address its predecessor still holds while both are live
    used = {int(IPv4Address(v)) for v in (*kept.values(), *previous.overlay.values())}
    free = _free(host_range(net), used)
    out = dict(kept)
    for name in names:
        if name not in out:
            ip = next(free, None)
            if ip is None:
                raise PlanError(f"network.overlay: {net} is full")
            out[name] = str(IPv4Address(ip))
    return dict(sorted(out.items()))


def host_range(net: IPv4Network) -> range:
    """`net.hosts()` as integers, without making one object per address.

    As `ipaddress` defines it: every address but the network and broadcast ones; a /31 has
    both of its addresses, a /32 its one.
    """
    first = int(net.network_address)
    last = int(net.broadcast_address)
    if net.prefixlen >= 31:
        return range(first, last + 1)
    return range(first + 1, last)


def _free(candidates: range, used: set[int]) -> Iterator[int]:
    """The addresses of `candidates` not in `used`, lowest first."""
    return (ip for ip in candidates if ip not in used)


def _site_cidrs(spec: Spec, previous: Allocations) -> dict[str, str]:
    fixed = [site.cidr for site in spec.sites if site.cidr is not None]
    wanted = [site.name for site in spec.sites if site.cidr is None]
    kept: dict[str, str] = {}
    for name, cidr in _keep(previous.sites, wanted).items():
        net = IPv4Network(cidr)
        if not any(net.overlaps(f) for f in fixed) and not net.overlaps(spec.network.overlay):
            kept[name] = cidr
    taken = [*fixed, spec.network.overlay, *(IPv4Network(c) for c in kept.values())]
    out = dict(kept)
    candidates = _subnets(spec.network.site_pool, spec.network.site_prefix, taken)
    for name in wanted:
        if name in out:
            continue
        cand = next(candidates, None)
        if cand is None:
            raise PlanError(
                f"network.site_pool: {spec.network.site_pool} has no free "
                f"/{spec.network.site_prefix} left for site {name!r}"
            )
        out[name] = str(cand)
        taken.append(cand)
    return dict(sorted(out.items()))


def _subnets(pool: IPv4Network, prefix: int, taken: list[IPv4Network]) -> Iterator[IPv4Network]:
    """The /`prefix` subnets of `pool` that overlap nothing in `taken`, lowest first.

    `taken` may grow between two `next()`s (each subnet handed out joins it). A subnet that
    overlaps a taken network skips straight past that network's last address, so a pool
    mostly covered by one big fixed CIDR costs one step, not one per subnet inside it.
    """
    if prefix < pool.prefixlen:
        return
    size = 1 << (32 - prefix)
    start = int(pool.network_address)
    end = int(pool.broadcast_address)
    while start + size - 1 <= end:
        last = start + size - 1
        clash = next(
            (t for t in taken if int(t.network_address) <= last and start <= int(t.broadcast_address)),
            None,
        )
        if clash is None:
            yield IPv4Network((start, prefix))
            start += size
        else:
            # the next aligned subnet after the clash's broadcast address
            start = (int(clash.broadcast_address) // size + 1) * size


def has_lan(spec: Spec, site: Site) -> bool:
    """Whether a site gets provider-private addresses planned by cloudcast.

    AWS and Linode let us pick them. A lab site is a LAN (a bridge in the site CIDR, `lan0` on
    every host) when it says so (`lan`, as rehearsals of cloud sites do: their private network),
    else exactly when the topology routes sites through gateways or hubs: members need it as
    their data path. Other mesh lab sites have none: every node is on the overlay itself.
    """
    if site.provider in (Provider.AWS, Provider.LINODE):
        return True
    if site.provider is not Provider.LAB:
        return False
    return site.lan if site.lan is not None else spec.network.topology is not Topology.MESH


def _private(spec: Spec, previous: Allocations, allocated: dict[str, str]) -> dict[str, str]:
    """Provider-private addresses for the sites `has_lan` names (AWS, Linode, lab LANs)."""
    out: dict[str, str] = {}
    # every address handed out before, parsed once (not once per site)
    taken = {int(IPv4Address(v)) for v in previous.private.values()}
    for site in spec.sites:
        if not has_lan(spec, site):
            continue
        cidr = site.cidr or IPv4Network(allocated[site.name])
        names = [n.name for n in site.nodes]
        kept = {k: v for k, v in _keep(previous.private, names).items() if IPv4Address(v) in cidr}
        used = taken  # `kept` is part of `previous.private`
        hosts = host_range(cidr)
        # the 10th host up to the last but one; in a site too small for that, from the 4th
        free = _free(hosts[PRIVATE_FIRST_HOST - 1 : -1] or hosts[3:-1], used)
        out.update(kept)
        for name in names:
            if name not in out:
                ip = next(free, None)
                if ip is None:
                    raise PlanError(f"site {site.name!r}: {cidr} has no free address for {name!r}")
                out[name] = str(IPv4Address(ip))
    return dict(sorted(out.items()))


def _lab(spec: Spec, previous: Allocations) -> dict[str, int]:
    names = [n.name for s in spec.sites if s.provider is Provider.LAB for n in s.nodes]
    wanted = set(names)
    kept = {k: v for k, v in previous.lab.items() if k in wanted}
    used = set(previous.lab.values())
    out = dict(kept)
    nxt = 0
    for name in names:
        if name in out:
            continue
        while nxt in used:
            nxt += 1
        if nxt >= LAB_MAX:
            raise PlanError("the lab has no free underlay address left")
        out[name] = nxt
        used.add(nxt)
    return dict(sorted(out.items()))


def lab_ip(index: int) -> str:
    """The simulated-internet address of the lab host with underlay index `index`."""
    return str(LAB_BASE + index)
