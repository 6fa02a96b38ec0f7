"""The failover agent: started with the script written, restarted when it changed, else stopped."""

from __future__ import annotations

import shlex

from cloudcast.bootstrap.actions.model import Action, ActionKind, shell
from cloudcast.bootstrap.desired import Desired
from cloudcast.bootstrap.facts import Facts
from cloudcast.bootstrap.paths import Paths


def _stop(p: Paths, facts: Facts) -> str:
    return shell(
        "failover-stop.sh.j2",
        systemd=facts.systemd,
        unit=p.failover_unit_name,
        pidfile=p.failover_pid,
        statefile=p.failover_state,
    )


def _stop_action(p: Paths, facts: Facts) -> Action:
    return Action(ActionKind.FAILOVER, "stop the failover agent", _stop(p, facts))


def failover_actions(desired: Desired, facts: Facts, changed: set[str]) -> list[Action]:
    """The agent runs the script written (restarted when it changed); none when unplanned."""
    p = desired.paths
    if desired.file(p.failover) is None:
        return [_stop_action(p, facts)] if facts.failover else []
    if facts.failover and p.failover not in changed:
        return []
    verb = "restart" if facts.failover else "start"
    if facts.systemd:
        unit = shlex.quote(p.failover_unit_name)
        command = f"systemctl daemon-reload && systemctl enable -q {unit} && systemctl restart {unit}"
    else:
        # no systemd (containers, the lab): the agent runs detached, like charon
        script = shlex.quote(p.failover)
        log = shlex.quote(p.failover_log)
        command = f"{_stop(p, facts)}; setsid sh {script} </dev/null >/dev/null 2>>{log} &"
    return [Action(ActionKind.FAILOVER, f"{verb} the failover agent", command)]


def failover_teardown(desired: Desired, facts: Facts) -> list[Action]:
    return [_stop_action(desired.paths, facts)] if facts.failover else []
