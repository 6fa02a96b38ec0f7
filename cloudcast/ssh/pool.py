"""One SSH connection per host for a whole command: bootstrap and verify share it."""

from __future__ import annotations

import threading

from cloudcast.inventory.hosts import Host
from cloudcast.ssh.connectors import Connector
from cloudcast.ssh.transport import Result, Transport


class _Borrowed:
    """A pooled transport whose `close` leaves the connection open for the next stage."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.name = inner.name

    def run(self, cmd: str, *, stdin: bytes | None = None, timeout: float = 120.0) -> Result:
        return self.inner.run(cmd, stdin=stdin, timeout=timeout)

    def put(self, path: str, data: bytes, mode: int = 0o600) -> None:
        self.inner.put(path, data, mode)

    def close(self) -> None:
        return None


class Pool:
    """A connector that caches one transport per host from `connector`; `close_all` ends them.

    A dead connection is replaced.
    """

    def __init__(self, connector: Connector) -> None:
        self._connector = connector
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._open: dict[str, Transport] = {}

    def connect(self, host: Host) -> Transport:
        with self._lock:
            lock = self._locks.setdefault(host.name, threading.Lock())
        with lock:
            current = self._open.get(host.name)
            if current is None or not _alive(current):
                if current is not None:
                    current.close()
                current = self._connector.connect(host)
                self._open[host.name] = current
            return _Borrowed(current)

    def close_all(self) -> None:
        with self._lock:
            items, self._open = list(self._open.values()), {}
        for transport in items:
            transport.close()


def _alive(transport: Transport) -> bool:
    client = getattr(transport, "client", None)
    if client is None:
        return True
    inner = client.get_transport()
    return bool(inner is not None and inner.is_active())
