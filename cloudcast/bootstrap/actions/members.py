"""A member's routes via its gateway: present, none stale, run again at boot (systemd)."""

from __future__ import annotations

import shlex

from cloudcast.bootstrap.actions.model import Action, ActionKind, shell
from cloudcast.bootstrap.desired import Desired, route_dst
from cloudcast.bootstrap.facts import Facts
from cloudcast.bootstrap.paths import ROUTE_PROTO


def _owned_routes(facts: Facts) -> list[str]:
    """Destinations of the routes cloudcast added (marked with its protocol number)."""
    return [r.dst for r in facts.routes if r.protocol == str(ROUTE_PROTO)]


def _present(facts: Facts, cidr: str, via: str) -> bool:
    return any(r.dst == route_dst(cidr) and r.gateway == via for r in facts.routes)


def route_actions(desired: Desired, facts: Facts, changed: set[str]) -> list[Action]:
    """Run the routes script when it changed, a route is missing or a stale one is left."""
    p = desired.paths
    if not desired.routes:
        return [drop_routes_action(facts)] if _owned_routes(facts) else []
    actions: list[Action] = []
    present = all(_present(facts, c, v) for c, v in desired.routes)
    wanted = {route_dst(c) for c, _ in desired.routes}
    stale = [d for d in _owned_routes(facts) if d not in wanted]
    if p.routes in changed or not present or stale:
        via = desired.routes[0][1]
        direct = len(desired.routes) - sum(1 for _, v in desired.routes if v == via)
        note = f", {direct} on the LAN" if direct else ""
        note += f", drop {len(stale)} old" if stale else ""
        n = len(desired.routes) - direct
        command = f"sh {shlex.quote(p.routes)}"
        actions.append(Action(ActionKind.SET_ROUTES, f"route {n} CIDRs via {via}{note}", command))
    actions.extend(routes_unit_actions(desired, facts, changed))
    return actions


def drop_routes_action(facts: Facts) -> Action:
    """Delete every route cloudcast added."""
    what = f"remove {len(_owned_routes(facts))} routes cloudcast added"
    return Action(ActionKind.DROP_ROUTES, what, shell("routes-drop.sh.j2", proto=ROUTE_PROTO))


def routes_unit_actions(desired: Desired, facts: Facts, changed: set[str]) -> list[Action]:
    """The unit running the routes script at boot (systemd), enabled when new or changed."""
    p = desired.paths
    if not facts.systemd or p.routes_unit not in {f.path for f in desired.files}:
        return []
    if facts.routes_enabled and p.routes_unit not in changed:
        return []
    unit = shlex.quote(p.routes_unit_name)
    command = f"systemctl daemon-reload && systemctl enable -q {unit}"
    return [Action(ActionKind.ENABLE, f"run {p.routes} at boot ({p.routes_unit_name})", command)]


def routes_teardown(desired: Desired, facts: Facts) -> list[Action]:
    """The planned routes deleted, then any other route cloudcast added, and the unit disabled."""
    p = desired.paths
    actions: list[Action] = []
    for cidr, via in desired.routes:
        if _present(facts, cidr, via):
            command = f"ip route del {shlex.quote(cidr)} via {shlex.quote(via)}"
            actions.append(Action(ActionKind.DROP_ROUTES, f"remove route {cidr}", command))
    if any(d not in {route_dst(c) for c, _ in desired.routes} for d in _owned_routes(facts)):
        actions.append(drop_routes_action(facts))
    if facts.routes_enabled:
        command = f"systemctl disable -q {shlex.quote(p.routes_unit_name)}"
        actions.append(Action(ActionKind.DISABLE, f"disable {p.routes_unit_name}", command))
    return actions
