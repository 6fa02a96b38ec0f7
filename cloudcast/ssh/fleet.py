"""`Fleet`: how a stage reaches its hosts, as one value instead of a parameter each."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TypeVar

from cloudcast.events import NullReporter, Reporter
from cloudcast.inventory.hosts import Host
from cloudcast.ssh.connectors import Connector
from cloudcast.ssh.fanout import Outcome, fan_out
from cloudcast.ssh.pool import Pool
from cloudcast.ssh.transport import Transport

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Fleet:
    """The connector (Paramiko's carries the connection settings: `SSHConnector(SSHOptions(...))`),
    how many hosts at once, and who hears what happens on them."""

    connector: Connector
    parallel: int = 32
    reporter: Reporter = field(default_factory=NullReporter)

    def connect(self, host: Host) -> Transport:
        return self.connector.connect(host)

    def fan_out(
        self, items: Iterable[T], fn: Callable[[T], R], *, key: Callable[[T], str]
    ) -> dict[str, Outcome[R]]:
        """`fan_out` at this fleet's parallelism."""
        return fan_out(items, fn, key=key, parallel=self.parallel)

    @contextmanager
    def pooled(self) -> Iterator[Fleet]:
        """This fleet over one connection per host, shared by every stage until the block ends."""
        pool = Pool(self.connector)
        try:
            yield replace(self, connector=pool)
        finally:
            pool.close_all()
