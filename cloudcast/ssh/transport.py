"""How cloudcast reaches a host: a small `Transport` protocol, and Paramiko behind it."""

from __future__ import annotations

import select
import shlex
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import paramiko
from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential

from cloudcast.errors import BootstrapError, HostKeyError
from cloudcast.inventory.hosts import Host
from cloudcast.ssh.hostkeys import (
    KnownHosts,
    RecordPolicy,
    changed_key_error,
    known_hosts_name,
)


class ConnectError(BootstrapError):
    """A host could not be reached or logged into over SSH."""


class CommandTimeout(BootstrapError):
    """A remote command did not finish in time."""


@dataclass(frozen=True, slots=True)
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.code == 0

    def tail(self, lines: int = 3) -> str:
        """The last lines of stderr (else stdout), for one-line error messages."""
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return " | ".join(text[-lines:])


class Transport(Protocol):
    """A root shell on one host."""

    name: str

    def run(self, cmd: str, *, stdin: bytes | None = None, timeout: float = 120.0) -> Result:
        """Run `cmd` with a POSIX shell as root; never raises on a non-zero exit."""
        ...

    def put(self, path: str, data: bytes, mode: int = 0o600) -> None:
        """Write `data` to `path` atomically (temp file in the same dir, then rename)."""
        ...

    def close(self) -> None: ...


def put_script(path: str, mode: int = 0o600) -> str:
    """Shell that writes stdin to `path` atomically with `mode`."""
    p = shlex.quote(path)
    return (
        f'set -e; umask 077; mkdir -p "$(dirname {p})"; t=$(mktemp {p}.XXXXXX); '
        f'trap \'rm -f "$t"\' EXIT; cat > "$t"; chmod {mode:o} "$t"; mv -f "$t" {p}; trap - EXIT'
    )


@dataclass(frozen=True, slots=True)
class SSHOptions:
    """How long to keep trying a host whose SSH is still coming up, and how strict to be."""

    known_hosts: Path  # the work dir's file: keys are recorded here on first contact
    strict_known_hosts: Path | None = None  # the spec's `ssh.known_hosts`: unknown hosts refused
    connect_budget: float = 60.0  # seconds of retries for refused/timed-out connections
    auth_budget: float = 15.0  # cloud-init may install the key a little after sshd starts
    timeout: float = 10.0  # one TCP connect / banner / auth attempt


def _where(host: Host) -> str:
    return f"node {host.name} ({host.ssh_host}:{host.ssh_port})"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, paramiko.AuthenticationException):
        return "authentication failed"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host ({exc.strerror})"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


class SSHTransport:
    """A Paramiko connection; commands run as root (through `sudo -n` for other users)."""

    def __init__(self, host: Host, client: paramiko.SSHClient) -> None:
        self.name = host.name
        self.host = host
        self.client = client
        self.sudo = host.ssh_user != "root"

    @classmethod
    def connect(cls, host: Host, options: SSHOptions) -> SSHTransport:
        """Connect, retrying with exponential backoff while the host's SSH comes up."""
        strict = options.strict_known_hosts
        store = KnownHosts(strict, strict=True) if strict else KnownHosts(options.known_hosts)
        name = known_hosts_name(host.ssh_host, host.ssh_port)
        start = time.monotonic()

        def attempt() -> paramiko.SSHClient:
            client = paramiko.SSHClient()
            store.load_into(client)
            client.set_missing_host_key_policy(RecordPolicy(store, host.name))
            key = str(Path(host.ssh_key).expanduser()) if host.ssh_key else None
            try:
                client.connect(
                    host.ssh_host,
                    port=host.ssh_port,
                    username=host.ssh_user,
                    key_filename=key,
                    allow_agent=key is None,
                    look_for_keys=key is None,
                    timeout=options.timeout,
                    banner_timeout=options.timeout,
                    auth_timeout=options.timeout,
                )
            except paramiko.BadHostKeyException as exc:
                client.close()
                raise changed_key_error(store, host.name, name, exc.key, exc.expected_key) from None
            except BaseException:
                client.close()
                raise
            return client

        def retryable(exc: BaseException) -> bool:
            if isinstance(exc, HostKeyError | paramiko.BadAuthenticationType):
                return False
            if isinstance(exc, paramiko.AuthenticationException):
                return time.monotonic() - start < options.auth_budget
            return isinstance(exc, OSError | paramiko.SSHException | EOFError)

        def stop(state: RetryCallState) -> bool:
            return time.monotonic() - start >= options.connect_budget

        try:
            for tried in Retrying(
                retry=retry_if_exception(retryable),
                stop=stop,
                wait=wait_exponential(multiplier=0.25, max=5.0),
                reraise=True,
            ):
                with tried:
                    client = attempt()
        except HostKeyError:
            raise
        except paramiko.AuthenticationException as exc:
            raise ConnectError(
                f"{_where(host)}: {_reason(exc)} for user {host.ssh_user}"
                + (f" with key {host.ssh_key}" if host.ssh_key else ""),
                hint="check ssh.user and ssh.private_key in the spec",
            ) from None
        except Exception as exc:
            waited = time.monotonic() - start
            raise ConnectError(f"{_where(host)}: {_reason(exc)} (after {waited:.0f} s)") from None
        return cls(host, client)

    def _wrap(self, cmd: str) -> str:
        return f"sudo -n sh -c {shlex.quote(cmd)}" if self.sudo else cmd

    def run(self, cmd: str, *, stdin: bytes | None = None, timeout: float = 120.0) -> Result:
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise ConnectError(f"{_where(self.host)}: connection lost")
        chan = transport.open_session(timeout=30.0)
        try:
            chan.exec_command(self._wrap(cmd))
            if stdin:
                chan.sendall(stdin)
            chan.shutdown_write()
            out, err = self._collect(chan, time.monotonic() + timeout, cmd)
            return Result(chan.recv_exit_status(), out.decode(errors="replace"), err.decode(errors="replace"))
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise ConnectError(f"{_where(self.host)}: {_reason(exc)} while running a command") from None
        finally:
            chan.close()

    def _collect(self, chan: paramiko.Channel, deadline: float, cmd: str) -> tuple[bytes, bytes]:
        # Read both streams as they come: a chatty stderr must never stall stdout (window full).
        out, err = bytearray(), bytearray()
        while True:
            while chan.recv_ready():
                out += chan.recv(65536)
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
            left = deadline - time.monotonic()
            drained = not (chan.recv_ready() or chan.recv_stderr_ready())
            if chan.eof_received and drained and chan.status_event.wait(max(left, 0.0)):
                return bytes(out), bytes(err)
            if left <= 0:
                first = cmd.strip().splitlines()[0][:60] if cmd.strip() else cmd
                raise CommandTimeout(f"{_where(self.host)}: command timed out: {first}")
            select.select([chan], [], [], min(left, 1.0))

    def put(self, path: str, data: bytes, mode: int = 0o600) -> None:
        result = self.run(put_script(path, mode), stdin=data)
        if not result.ok:
            raise BootstrapError(f"{_where(self.host)}: cannot write {path}: {result.tail()}")

    def close(self) -> None:
        self.client.close()
