"""Fixtures for tests that build real lab hosts (network namespaces, sshd, WireGuard).

Each lab gets a unique prefix `cctest<4 hex>` and is torn down with `lab.down` even when the
test fails. Missing prerequisites fail the test under CI (env CI set) and skip it otherwise.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from cloudcast import lab
from cloudcast.lab import netns, proc

_TOOLS = (
    "ip", "unshare", "nsenter", "iptables-restore", "ssh-keygen", "socat", "wg", "wg-quick", "nft", "ping",
    "terraform",
)
_STALE = re.compile(r"^(cctest[0-9a-f]{4})(?:-|0$)")


def lab_problem() -> str | None:
    """Why lab tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "lab tests need root (network namespaces, veths, mounts)"
    missing = [tool for tool in _TOOLS if shutil.which(tool, path=proc.search_path()) is None]
    if not os.access("/usr/sbin/sshd", os.X_OK):
        missing.append("sshd")
    if shutil.which("wireguard-go", path=proc.search_path()) is None:
        missing.append("wireguard-go")
    if missing:
        return f"lab tests need {', '.join(missing)} (apt-get install --no-install-recommends ...)"
    if not Path("/dev/net/tun").exists():
        return "lab tests need /dev/net/tun"
    return None


def require_lab() -> None:
    problem = lab_problem()
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(problem)
    pytest.skip(problem)


def stale_test_prefixes() -> set[str]:
    """Prefixes of test labs left behind by a killed test run."""
    found = set()
    names = list(netns.names())
    with suppress(OSError):
        names += os.listdir("/sys/class/net")
    for name in names:
        match = _STALE.match(name)
        if match and not _owner_alive(match.group(1)):
            found.add(match.group(1))
    return found


def _owner_file(prefix: str) -> Path:
    return Path(f"/run/cloudcast/{prefix}.test-owner")


def _owner_alive(prefix: str) -> bool:
    """True when the test process that made lab `prefix` still runs (another session's)."""
    try:
        pid = int(_owner_file(prefix).read_text())
    except (OSError, ValueError):
        return False
    return Path(f"/proc/{pid}").exists()


_ACTIVE: set[str] = set()  # labs of this test session that are still in use
_MACHINE_LOCK = Path("/run/cloudcast/lab-tests.lock")
_MACHINE_WAIT = 1200.0
_machine_fd: list[int] = []  # the lock's fd while this process holds it
_machine_users = [0]


@contextmanager
def machine_lock() -> Iterator[None]:
    """One test session at a time may have labs up on this machine.

    The root namespace can route 198.18.0.0/15 to one lab only, and several sessions (or
    developers) may run lab tests at once: they queue here instead of failing.
    """
    if _machine_users[0] == 0:
        _MACHINE_LOCK.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(_MACHINE_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + _MACHINE_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    pytest.fail(f"another test session held {_MACHINE_LOCK} for {_MACHINE_WAIT:g} s")
                time.sleep(0.2)
        _machine_fd.append(fd)
    _machine_users[0] += 1
    try:
        yield
    finally:
        _machine_users[0] -= 1
        if _machine_users[0] == 0:
            os.close(_machine_fd.pop())


@contextmanager
def fresh_lab() -> Iterator[str]:
    """A fresh prefix whose lab is removed on exit, whatever happens.

    Only one lab can own 198.18.0.0/15 in the root namespace at a time, so leftovers of
    killed test runs (`cctest????` labs whose test process is gone) are removed first.
    """
    require_lab()
    with machine_lock(), _lab(prefix := "cctest" + secrets.token_hex(2)):
        yield prefix


@contextmanager
def _lab(prefix: str) -> Iterator[None]:
    for stale in stale_test_prefixes() - _ACTIVE:
        lab.down(stale)
        _owner_file(stale).unlink(missing_ok=True)
    _ACTIVE.add(prefix)
    owner = _owner_file(prefix)
    owner.parent.mkdir(parents=True, exist_ok=True)
    owner.write_text(str(os.getpid()))
    try:
        yield
    finally:
        try:
            lab.down(prefix)
        finally:
            _ACTIVE.discard(prefix)
            owner.unlink(missing_ok=True)


@pytest.fixture
def lab_prefix() -> Iterator[str]:
    """A fresh, empty lab prefix for one test; `lab.down` runs afterwards even on failure."""
    with fresh_lab() as prefix:
        yield prefix


@pytest.fixture(scope="module")
def module_lab_prefix() -> Iterator[str]:
    """Like `lab_prefix`, shared by the tests of one module (torn down at its end)."""
    with fresh_lab() as prefix:
        yield prefix


@pytest.fixture(scope="class")
def class_lab_prefix() -> Iterator[str]:
    """Like `lab_prefix`, shared by the tests of one class (torn down at its end)."""
    with fresh_lab() as prefix:
        yield prefix
