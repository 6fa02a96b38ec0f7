"""The shared record: one change for a host, and the kind of change it is."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cloudcast.bootstrap.desired import ManagedFile
from cloudcast.bootstrap.render import render


class ActionKind(StrEnum):
    """What an action changes; the values are the kinds golden tests and plans show."""

    PACKAGE = "package"  # install missing packages
    KEYGEN = "keygen"  # make the node's key pair on the host
    WRITE = "write"  # write a file (atomically, with its mode)
    REMOVE = "remove"  # remove a file
    FIREWALL = "firewall"  # load or delete cloudcast's nftables table
    SYSCTL = "sysctl"  # forwarding, route_localnet
    UP = "up"  # bring up the WireGuard interface
    DOWN = "down"  # take it down
    SYNCCONF = "syncconf"  # give the running interface the config's peers
    ADDRESS = "address"  # an interface address, or the overlay address on lo (IPsec)
    MTU = "mtu"
    SYSTEMD = "systemd"  # reload systemd units
    ENABLE = "enable"  # a unit runs at boot
    DISABLE = "disable"  # it no longer does
    SET_ROUTES = "routes"  # run the routes script: a member's routes via its gateway
    DROP_ROUTES = "route"  # delete routes cloudcast added
    CHARON = "charon"  # (re)start charon and load the connections; in a teardown, unload them
    RELOAD = "reload"  # reload the IPsec connections into a running charon
    SAS = "sas"  # bring up, or renew, child SAs
    FAILOVER = "failover"  # start, restart or stop the failover agent


@dataclass(frozen=True, slots=True)
class Action:
    """One change: a file to write (atomically, with its mode) or a shell command to run."""

    kind: ActionKind
    description: str
    command: str | None = None
    file: ManagedFile | None = None

    def golden(self) -> tuple[str, str, str | None, str | None]:
        """What golden tests pin (file contents are pinned by the render tests)."""
        return (self.kind, self.description, self.command, self.file.path if self.file else None)


def shell(template: str, **context: Any) -> str:
    """A command from `templates/commands/` (every value in it goes through `| sh`)."""
    return render(f"commands/{template}", **context)
