"""Stage: configure every host over SSH (facts first, then actions), WireGuard up, proven keys."""

from cloudcast.bootstrap.actions import Action, apply_actions, prepare_actions, teardown_actions
from cloudcast.bootstrap.desired import Desired, desired_state
from cloudcast.bootstrap.facts import Facts, parse_facts
from cloudcast.bootstrap.run import BootstrapResult, HostResult, bootstrap, gather, teardown

__all__ = [
    "Action",
    "BootstrapResult",
    "Desired",
    "Facts",
    "HostResult",
    "apply_actions",
    "bootstrap",
    "desired_state",
    "gather",
    "parse_facts",
    "prepare_actions",
    "teardown",
    "teardown_actions",
]
