"""Stage: configure every host over SSH (facts first, then actions), WireGuard up, proven keys."""

from cloudcast.bootstrap.actions import Action, apply_actions, prepare_actions, teardown_actions
from cloudcast.bootstrap.desired import Desired, desired_state
from cloudcast.bootstrap.facts import Facts, parse_facts
from cloudcast.bootstrap.fanout import Outcome, fan_out
from cloudcast.bootstrap.run import (
    BootstrapResult,
    Connector,
    HostResult,
    Reporter,
    bootstrap,
    connector,
    gather,
    teardown,
)
from cloudcast.bootstrap.transport import ConnectError, Result, SSHOptions, SSHTransport, Transport

__all__ = [
    "Action",
    "BootstrapResult",
    "ConnectError",
    "Connector",
    "Desired",
    "Facts",
    "HostResult",
    "Outcome",
    "Reporter",
    "Result",
    "SSHOptions",
    "SSHTransport",
    "Transport",
    "apply_actions",
    "bootstrap",
    "connector",
    "desired_state",
    "fan_out",
    "gather",
    "parse_facts",
    "prepare_actions",
    "teardown",
    "teardown_actions",
]
