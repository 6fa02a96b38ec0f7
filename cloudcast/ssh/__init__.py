"""Reaching hosts: transports, connectors behind one interface, a pool, fan-out, host keys.

Below every stage that touches a host (bootstrap, verify, the pipeline): it imports only
`events`, `errors` and `inventory`'s `Host` records.
"""

from cloudcast.ssh.connectors import Connector, PerHost, SSHConnector
from cloudcast.ssh.fanout import Outcome, describe, fan_out
from cloudcast.ssh.fleet import Fleet
from cloudcast.ssh.hostkeys import KnownHosts, known_hosts_name
from cloudcast.ssh.pool import Pool
from cloudcast.ssh.transport import CommandTimeout, ConnectError, Result, SSHOptions, SSHTransport, Transport

__all__ = [
    "CommandTimeout",
    "ConnectError",
    "Connector",
    "Fleet",
    "KnownHosts",
    "Outcome",
    "PerHost",
    "Pool",
    "Result",
    "SSHConnector",
    "SSHOptions",
    "SSHTransport",
    "Transport",
    "describe",
    "fan_out",
    "known_hosts_name",
]
