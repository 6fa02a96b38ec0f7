"""Network namespaces: create, configure in batches, empty of processes, delete."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from cloudcast.errors import LabError
from cloudcast.lab import proc

NETNS_DIR = Path("/run/netns")


def names() -> list[str]:
    """Every named network namespace on the machine."""
    try:
        return sorted(entry for entry in os.listdir(NETNS_DIR) if not entry.startswith("."))
    except FileNotFoundError:
        return []


def exists(ns: str) -> bool:
    return (NETNS_DIR / ns).exists()


def inode(ns: str) -> int | None:
    """Inode of the namespace behind the name (None when the name is gone or stale)."""
    try:
        ino = os.stat(NETNS_DIR / ns).st_ino
    except OSError:
        return None
    # An unmounted leftover file has an ordinary ext4/tmpfs inode; a live one is on nsfs.
    return ino if _is_nsfs(NETNS_DIR / ns) else None


def _is_nsfs(path: Path) -> bool:
    try:
        return os.stat(path).st_dev == os.stat("/proc/self/ns/net").st_dev
    except OSError:
        return False


def add(ns: str) -> None:
    proc.run(["ip", "netns", "add", ns], what=f"creating namespace {ns}")
    ip(ns, ["link set lo up"])


def ip(ns: str | None, commands: Sequence[str]) -> None:
    """Run `ip` commands (one per line, without the leading `ip`) in one process."""
    if not commands:
        return
    argv = ["ip"] + (["-n", ns] if ns else []) + ["-batch", "-"]
    where = f"in namespace {ns}" if ns else "in the root namespace"
    proc.run(argv, input="\n".join(commands) + "\n", what=f"configuring links {where}")


def sysctl(ns: str, settings: Mapping[str, str]) -> None:
    """Set sysctls inside a namespace (the net.* ones are per namespace)."""
    args = [f"{key}={value}" for key, value in settings.items()]
    proc.run(
        ["ip", "netns", "exec", ns, "sysctl", "-q", "-w", *args],
        what=f"setting {', '.join(args)} in namespace {ns}",
    )


def iptables_restore(ns: str, rules: str) -> None:
    proc.run(
        ["ip", "netns", "exec", ns, "iptables-restore"],
        input=rules,
        what=f"loading firewall rules in namespace {ns}",
    )


def exec_argv(ns: str, argv: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def link_exists(ns: str | None, name: str) -> bool:
    argv = ["ip"] + (["-n", ns] if ns else []) + ["link", "show", "dev", name]
    return proc.run(argv, check=False).returncode == 0


def pids(ns: str) -> list[int]:
    """Processes whose network namespace is `ns` (like `ip netns pids`)."""
    ino = inode(ns)
    return proc.pids_in_netns(ino) if ino is not None else []


def stop_processes(ns: str, *, grace: float = 2.0) -> int:
    """End every process in `ns`: SIGTERM each PID 1 (sshd), then SIGKILL what is left.

    SIGTERM to a PID namespace's init ends the whole host; the `unshare` launcher
    exits with it. Returns how many processes were found.
    """
    found = pids(ns)
    if not found:
        return 0
    inits = [pid for pid in found if proc.ns_pid(pid) == 1]
    proc.signal_pids(inits, signal.SIGTERM)
    proc.wait_gone(found, grace if inits else 0.0)
    leftovers = pids(ns)
    proc.signal_pids(leftovers, signal.SIGKILL)
    still = proc.wait_gone(leftovers, 5.0)
    if still:
        raise LabError(
            f"processes {', '.join(map(str, still))} in namespace {ns} survived SIGKILL",
            hint="they may be stuck in the kernel (D state); check `ps -o pid,stat,wchan -p PID`",
        )
    return len(found)


def delete(ns: str) -> None:
    """Delete a namespace name; its links (and their veth peers) go with it."""
    if not (NETNS_DIR / ns).exists():
        return
    result = proc.run(["ip", "netns", "del", ns], check=False)
    if result.returncode != 0 and (NETNS_DIR / ns).exists():
        # A stale file (e.g. the mount vanished after a crash): remove it by hand.
        proc.run(["umount", "-l", str(NETNS_DIR / ns)], check=False)
        try:
            (NETNS_DIR / ns).unlink()
        except OSError as exc:
            raise LabError(f"cannot delete namespace {ns}: {exc}") from exc


def delete_all(namespaces: Iterable[str]) -> None:
    for ns in namespaces:
        delete(ns)
