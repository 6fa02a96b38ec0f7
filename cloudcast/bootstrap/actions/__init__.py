"""Facts + desired state -> the list of actions for one host, AS DATA (pyinfra's habit).

Nothing here touches a host: the same inputs always give the same actions, so golden tests
pin them, `plan` can show them, and a host already in shape gets an empty list. One module
per concern (packages and keys, host files and firewall, WireGuard, IPsec, member routes,
the failover agent); `apply` puts their steps in order.
"""

from cloudcast.bootstrap.actions.apply import apply_actions, teardown_actions
from cloudcast.bootstrap.actions.ipsec import renew_action, renew_script, settle_script
from cloudcast.bootstrap.actions.model import Action, ActionKind
from cloudcast.bootstrap.actions.packages import PACKAGES, prepare_actions, required_tools
from cloudcast.bootstrap.actions.wireguard import syncconf_script

__all__ = [
    "PACKAGES",
    "Action",
    "ActionKind",
    "apply_actions",
    "prepare_actions",
    "renew_action",
    "renew_script",
    "required_tools",
    "settle_script",
    "syncconf_script",
    "teardown_actions",
]
