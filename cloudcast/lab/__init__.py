"""The local lab: simulated hosts on this machine, each in its own namespaces.

Hosts (own sshd, /etc, /var, /root, /run, /tmp), a routed simulated internet in 198.18.0.0/15
with no uplink, and NAT / double-NAT routers. A host may also be a QEMU virtual machine (its
own kernel and systemd) on the same links, booted from a cached Debian image (`lab image
build`). Needs root. See `cloudcast lab --help`.
"""

from __future__ import annotations

from cloudcast.lab.api import (
    controller_key,
    cut,
    down,
    exec_in,
    host_down,
    host_reboot,
    host_up,
    kill_host,
    status,
    uncut,
    up,
)
from cloudcast.lab.models import LabHost, LabStatus, LabTeardown
from cloudcast.lab.registry import DEFAULT_PREFIX, PREFIX_ENV

__all__ = [
    "DEFAULT_PREFIX",
    "PREFIX_ENV",
    "LabHost",
    "LabStatus",
    "LabTeardown",
    "controller_key",
    "cut",
    "down",
    "exec_in",
    "host_down",
    "host_reboot",
    "host_up",
    "kill_host",
    "status",
    "uncut",
    "up",
]
