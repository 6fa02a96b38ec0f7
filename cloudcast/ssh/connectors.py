"""Ways into a host behind one interface (pyinfra's connectors/base.py): a connector turns a
`Host` record into a `Transport`, a root shell on it.

`SSHConnector` (Paramiko) is the real one: cloud, static and lab hosts all run sshd. Another
way in (a lab namespace entered directly, a VM's console, a fake in tests) is one more class
with a `connect` method; `PerHost` sends each host through the one that fits it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cloudcast.inventory.hosts import Host
from cloudcast.ssh.transport import SSHOptions, SSHTransport, Transport


class Connector(Protocol):
    """Opens a transport to a host; raises `ConnectError` when it cannot be reached."""

    def connect(self, host: Host) -> Transport: ...


@dataclass(frozen=True, slots=True)
class SSHConnector:
    """Paramiko SSH: retries while sshd comes up; host keys recorded or checked per `options`."""

    options: SSHOptions

    def connect(self, host: Host) -> Transport:
        return SSHTransport.connect(host, self.options)


@dataclass(frozen=True, slots=True)
class PerHost:
    """Each host through the connector `pick` chooses for it."""

    pick: Callable[[Host], Connector]

    def connect(self, host: Host) -> Transport:
        return self.pick(host).connect(host)
