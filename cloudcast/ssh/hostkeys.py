"""SSH host keys: recorded on first contact (trust on first use), or checked strictly."""

from __future__ import annotations

import re
import shlex
import threading
from pathlib import Path

import paramiko

from cloudcast.errors import HostKeyError
from cloudcast.state.store import write_private

# Every connection thread of this process shares one lock: two first contacts must not
# overwrite each other's freshly recorded line.
_LOCK = threading.Lock()
#: a known_hosts host field naming exactly one host: `host` or `[host]:port`
_ONE_HOST = re.compile(r"[A-Za-z0-9.:_-]+|\[[A-Za-z0-9.:_-]+\]:[0-9]+")


def known_hosts_name(host: str, port: int) -> str:
    """How OpenSSH (and Paramiko) name a host in known_hosts: `[host]:port` unless port 22."""
    return host if port == 22 else f"[{host}]:{port}"


def forget_hint(path: Path, name: str) -> str:
    """The exact command that forgets a recorded key."""
    command = shlex.join(["ssh-keygen", "-f", str(path), "-R", name])
    return f"if the host was rebuilt, forget its old key: {command}"


class KnownHosts:
    """A known_hosts file: the work dir's (records new hosts) or the spec's (strict)."""

    def __init__(self, path: Path, *, strict: bool = False) -> None:
        self.path = path
        self.strict = strict

    def load_into(self, client: paramiko.SSHClient) -> None:
        if self.path.exists():
            client.get_host_keys().load(str(self.path))

    def record(self, name: str, key: paramiko.PKey) -> None:
        """Add `name`'s key, keeping every other line (re-read under the lock first).

        `name` must be one host, not a pattern or list: a space, ',' or '*' in it would record
        the key for other hosts too.
        """
        if not _ONE_HOST.fullmatch(name):
            raise HostKeyError(f"refusing to record a host key for {name[:60]!r}: not one host name")
        line = f"{name} {key.get_name()} {key.get_base64()}"
        with _LOCK:
            lines = self.path.read_text().splitlines() if self.path.exists() else []
            if line not in lines:
                write_private(self.path, "\n".join([*lines, line]) + "\n")

    def forget(self, names: set[str]) -> int:
        """Drop the recorded keys of `names` (hosts Terraform just created anew); returns lines removed."""
        with _LOCK:
            if not names or not self.path.exists():
                return 0
            lines = self.path.read_text().splitlines()
            keep = [ln for ln in lines if not (set(ln.split(" ", 1)[0].split(",")) & names)]
            if len(keep) != len(lines):
                write_private(self.path, "".join(f"{ln}\n" for ln in keep))
            return len(lines) - len(keep)


class RecordPolicy(paramiko.MissingHostKeyPolicy):
    """Unknown host: record its key (work dir) or refuse it (strict mode)."""

    def __init__(self, store: KnownHosts, node: str) -> None:
        self.store = store
        self.node = node

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if self.store.strict:
            raise HostKeyError(
                f"node {self.node} ({hostname}): host key {key.get_name()} "
                f"{key.fingerprint} is not in {self.store.path}",
                hint=f"add it (ssh-keyscan) to {self.store.path}, or drop ssh.known_hosts "
                "from the spec to record keys on first contact",
            )
        self.store.record(hostname, key)


def changed_key_error(
    store: KnownHosts, node: str, name: str, got: paramiko.PKey, want: paramiko.PKey
) -> HostKeyError:
    return HostKeyError(
        f"node {node} ({name}): host key changed: it offered {got.get_name()} {got.fingerprint}, "
        f"{store.path} has {want.get_name()} {want.fingerprint}",
        hint=forget_hint(store.path, name),
    )
