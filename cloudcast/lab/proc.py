"""Running system commands and inspecting processes for the local lab.

Every failure becomes a one-line `LabError`; nothing here prints.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from cloudcast.errors import LabError

#: Binaries the lab calls, with the Debian package that ships each.
REQUIRED_TOOLS: dict[str, str] = {
    "ip": "iproute2",
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "mount": "mount",
    "ssh-keygen": "openssh-client",
    "iptables-restore": "iptables",
    "iptables": "iptables",
}
SSHD = "/usr/sbin/sshd"
#: Searched after $PATH: Terraform may run us with a bare environment, and the tools live
#: in sbin directories that an ordinary user's PATH lacks.
SYSTEM_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


def search_path() -> str:
    """$PATH plus the system directories it lacks."""
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    return os.pathsep.join(dirs + [d for d in SYSTEM_PATH if d not in dirs])


def which(tool: str) -> str | None:
    """Where `tool` is, on $PATH or in the system directories."""
    return shutil.which(tool, path=search_path())


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for commands we run: ours, with the full search path."""
    return {**os.environ, "PATH": search_path(), **(extra or {})}


_CAP_NET_ADMIN = 12
_CAP_SYS_ADMIN = 21
_INSTALL_HINT = (
    "apt-get install -y --no-install-recommends iproute2 util-linux openssh-server "
    "iptables wireguard-tools wireguard-go socat"
)


def effective_capabilities() -> int:
    """The calling process's effective capability bitmask (0 when unreadable)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def require_privileges(capabilities: int | None = None) -> None:
    """Fail with a plain message unless we may create namespaces, links and mounts."""
    caps = effective_capabilities() if capabilities is None else capabilities
    missing = [
        name
        for bit, name in ((_CAP_NET_ADMIN, "CAP_NET_ADMIN"), (_CAP_SYS_ADMIN, "CAP_SYS_ADMIN"))
        if not caps & (1 << bit)
    ]
    if missing:
        raise LabError(
            "the local lab needs root: it creates network namespaces, veth links and mounts "
            f"(missing {' and '.join(missing)})",
            hint="run it as root, e.g. `sudo cloudcast lab up`",
        )


def require_tools() -> None:
    """Fail naming the first missing binary and the package that provides it."""
    for tool, package in REQUIRED_TOOLS.items():
        if shutil.which(tool, path=search_path()) is None:
            raise LabError(f"`{tool}` is not installed (package {package})", hint=_INSTALL_HINT)
    if not os.access(SSHD, os.X_OK):
        raise LabError(f"{SSHD} is not installed (package openssh-server)", hint=_INSTALL_HINT)


def run(
    argv: Sequence[str],
    *,
    input: str | None = None,
    check: bool = True,
    timeout: float = 30.0,
    what: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing output; with `check`, a failure raises LabError."""
    try:
        result = subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=None if input is not None else subprocess.DEVNULL,
            env=child_env(env),
            cwd=cwd,
        )
    except FileNotFoundError as exc:
        raise LabError(f"`{argv[0]}` is not installed", hint=_INSTALL_HINT) from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{what or _show(argv)} timed out after {timeout:g} s") from exc
    if check and result.returncode != 0:
        detail = _last_line(result.stderr) or _last_line(result.stdout) or f"exit {result.returncode}"
        raise LabError(f"{what or _show(argv)} failed: {detail}")
    return result


def _show(argv: Sequence[str]) -> str:
    text = " ".join(argv)
    return f"`{text[:120]}{'...' if len(text) > 120 else ''}`"


def _last_line(text: str) -> str:
    """The gist of an error output: its last line, after the reason when `ip -batch` failed."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    if len(lines) > 1 and lines[-1].startswith("Command failed"):
        return f"{lines[-2]} ({lines[-1]})"
    return lines[-1]


# --- processes -----------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state first), or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def is_running(pid: int) -> bool:
    """True when the process exists and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def parent_pid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def ns_pid(pid: int) -> int | None:
    """The PID a process has inside its innermost PID namespace."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    except (OSError, ValueError):
        pass
    return None


def all_pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def netns_inode_of(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def pids_in_netns(inode: int) -> list[int]:
    """Live processes whose network namespace is the one with this inode."""
    me = os.getpid()
    return [pid for pid in all_pids() if pid != me and netns_inode_of(pid) == inode and is_running(pid)]


def signal_pids(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait until none of `pids` runs; return those still running at the deadline."""
    remaining = [pid for pid in pids if is_running(pid)]
    deadline = time.monotonic() + timeout
    while remaining and time.monotonic() < deadline:
        reap_children()
        time.sleep(0.02)
        remaining = [pid for pid in remaining if is_running(pid)]
    return remaining


# --- children we spawned ------------------------------------------------------------------

_children: list[subprocess.Popen[bytes]] = []


def spawn_detached(argv: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    """Start a long-lived process in its own session, stdio away from our caller's pipes.

    Terraform waits for EOF on a provisioner's stdout: a host that inherited it would
    hang `terraform apply` forever, so the output goes to `log` instead.
    """
    reap_children()
    with open(log, "ab") as out:
        child = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            cwd="/",
            env=child_env(),
        )
    _children.append(child)
    return child


def reap_children() -> None:
    """Collect exited hosts' launcher processes so a long-lived caller keeps no zombies."""
    for child in list(_children):
        if child.poll() is not None:
            _children.remove(child)
