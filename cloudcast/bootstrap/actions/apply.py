"""Phase 2 and `destroy`: the steps of every concern, in the order a host takes them."""

from __future__ import annotations

from cloudcast.bootstrap.actions.failover import failover_actions, failover_teardown
from cloudcast.bootstrap.actions.host import (
    file_actions,
    files_teardown,
    firewall_sysctl_actions,
    firewall_teardown,
)
from cloudcast.bootstrap.actions.ipsec import ipsec_actions, ipsec_teardown
from cloudcast.bootstrap.actions.members import route_actions, routes_teardown
from cloudcast.bootstrap.actions.model import Action
from cloudcast.bootstrap.actions.wireguard import wireguard_actions, wireguard_teardown
from cloudcast.bootstrap.desired import Desired
from cloudcast.bootstrap.facts import Facts


def apply_actions(desired: Desired, facts: Facts) -> list[Action]:
    """Files first, then the runtime steps their change (or drift) calls for."""
    actions, changed = file_actions(desired, facts)
    if desired.vpn:
        actions += firewall_sysctl_actions(desired, facts, changed)
        if desired.ipsec:
            actions += ipsec_actions(desired, facts, changed)
        else:
            actions += wireguard_actions(desired, facts, changed)
    if not desired.ipsec:
        # an IPsec node's routes script sets its lo address (above); IPsec fails over at the next apply
        actions += route_actions(desired, facts, changed)
        actions += failover_actions(desired, facts, changed)
    return actions


def teardown_actions(desired: Desired, facts: Facts) -> list[Action]:
    """Remove everything cloudcast put on the host (for `destroy`): what runs first, files last."""
    return [
        *failover_teardown(desired, facts),
        *(ipsec_teardown(desired, facts) if desired.transport == "ipsec" else []),
        *wireguard_teardown(desired, facts),
        *routes_teardown(desired, facts),
        *firewall_teardown(facts),
        *files_teardown(desired, facts),
    ]
