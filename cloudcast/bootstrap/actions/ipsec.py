"""strongSwan: the overlay address on lo, charon, its connections and the child SAs."""

from __future__ import annotations

import shlex

from cloudcast.bootstrap.actions.members import routes_unit_actions
from cloudcast.bootstrap.actions.model import Action, ActionKind, shell
from cloudcast.bootstrap.desired import ConnSpec, Desired
from cloudcast.bootstrap.facts import Facts
from cloudcast.bootstrap.paths import CHARON

CHARON_PID = "/run/charon.pid"
LOAD_ALL = "swanctl --load-all --noprompt >/dev/null"


def start_charon(facts: Facts, *, restart: bool) -> str:
    """Shell that (re)starts charon and waits until its VICI socket answers."""
    return shell(
        "charon-start.sh.j2", systemd=facts.systemd, restart=restart, charon=CHARON, pidfile=CHARON_PID
    )


def settle_script(children: tuple[tuple[str, str], ...], wait: float = 3.0) -> str:
    """Wait until the child SAs this node starts are INSTALLED; initiate the ones still missing."""
    return shell("sas-settle.sh.j2", children=children, rounds=max(1, int(wait / 0.2)))


def renew_script(conn: ConnSpec) -> str:
    """Drop the IKE SA with a peer and start it again with every child (first one alone)."""
    first, *rest = [ch.name for ch in conn.children]
    return shell("sas-renew.sh.j2", conn=conn.name, first=first, rest=rest)


def renew_action(conn: ConnSpec) -> Action:
    """Renew the SAs with a peer whose charon restarted (it forgot them)."""
    what = f"renew the SAs with {conn.peer} (its charon restarted)"
    return Action(ActionKind.SAS, what, renew_script(conn))


def ipsec_actions(desired: Desired, facts: Facts, changed: set[str]) -> list[Action]:
    """The overlay address, charon (or a reload of its connections), then the SAs this node starts."""
    p = desired.paths
    actions: list[Action] = []
    if p.routes in changed or any(a not in facts.lo_addresses for a in desired.lo_addresses):
        what = f"overlay address {', '.join(desired.lo_addresses)} on lo"
        actions.append(Action(ActionKind.ADDRESS, what, f"sh {shlex.quote(p.routes)}"))
    actions.extend(routes_unit_actions(desired, facts, changed))
    how = "kernel-libipsec" if desired.libipsec else "kernel ESP"
    if not facts.charon or p.strongswan_conf in changed:
        verb = "restart" if facts.charon else "start"
        script = start_charon(facts, restart=facts.charon)
        actions.append(Action(ActionKind.CHARON, f"{verb} charon ({how}) and load the connections", script))
    elif changed & {p.swanctl_conf, p.ipsec_cert, p.ipsec_ca} or set(facts.conns) != {
        c.name for c in desired.conns
    }:
        actions.append(Action(ActionKind.RELOAD, f"reload {len(desired.conns)} IPsec connections", LOAD_ALL))
    wanted = desired.initiated_children
    if wanted and (actions or any(child not in facts.children_up for _, child in wanted)):
        actions.append(Action(ActionKind.SAS, f"bring up {len(wanted)} child SAs", settle_script(wanted)))
    return actions


def ipsec_teardown(desired: Desired, facts: Facts) -> list[Action]:
    """Unload cloudcast's connections and SAs; stop charon only when nothing else is loaded."""
    p = desired.paths
    actions: list[Action] = []
    if facts.charon:
        ours = [c for c in facts.conns if c.startswith("cc-")]
        stop = (
            "systemctl disable -q --now strongswan"
            if facts.systemd
            else f'[ -s {CHARON_PID} ] && kill "$(cat {CHARON_PID})"'
        )
        terminate = "; ".join(
            f"swanctl --terminate --ike {shlex.quote(c)} --force >/dev/null 2>&1" for c in ours
        )
        actions.append(
            Action(
                ActionKind.CHARON,
                f"unload {len(ours)} IPsec connections",
                f"rm -f {shlex.quote(p.swanctl_conf)}; {LOAD_ALL} 2>&1; "
                f"{terminate + '; ' if terminate else ''}"
                f'[ -n "$(swanctl --list-conns 2>/dev/null)" ] || {{ {stop}; }} || true',
            )
        )
    for address in desired.lo_addresses:
        if address in facts.lo_addresses:
            command = f"ip address del {shlex.quote(address)} dev lo"
            actions.append(Action(ActionKind.ADDRESS, f"remove {address} from lo", command))
    return actions
