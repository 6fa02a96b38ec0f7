"""The lab's package mirror: the image's Debian repository, served on the lab internet.

A namespace `<prefix>-srv.mirror` holds 198.18.0.3 on a link into the internet namespace and
runs `python3 -m http.server` over the image's `mirror/` directory. VMs have it as their only
apt source (`deb [trusted=yes] http://198.18.0.3/ ./`, from their cloud-init seed), so the
bootstrapper's real `apt-get install` runs on them with no route to any real registry.
Made with the first VM, removed by `lab down` with every other namespace of the lab.
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

from cloudcast.errors import LabError
from cloudcast.lab import internet, netns, proc
from cloudcast.lab.registry import MIRROR_IP, LabPaths

PORT = 80
LINK = "mirror"  # the internet side of the mirror's veth
APT_SOURCE = f"deb [trusted=yes] http://{MIRROR_IP}/ ./"


def _pid_file(paths: LabPaths) -> Path:
    return paths.state_dir / "mirror.pid"


def running(paths: LabPaths) -> int | None:
    """The PID of the mirror's HTTP server when it runs in the mirror namespace."""
    try:
        pid = int(_pid_file(paths).read_text())
    except (OSError, ValueError):
        return None
    ino = netns.inode(paths.mirror_ns)
    if ino is None or not proc.is_running(pid) or proc.netns_inode_of(pid) != ino:
        return None
    return pid


def ensure(paths: LabPaths, directory: Path) -> int:
    """Serve `directory` from the mirror host (made when missing); returns the server's PID."""
    pid = running(paths)
    if pid is not None:
        return pid
    ns = paths.mirror_ns
    if netns.inode(ns) is not None:
        netns.stop_processes(ns)  # a server that lost its pid file
    netns.delete(ns)
    netns.add(ns)
    internet.attach_link(paths, LINK, ns, "eth0", str(MIRROR_IP))
    log = paths.state_dir / "mirror.log"
    server = proc.spawn_detached(
        netns.exec_argv(
            ns,
            [
                sys.executable,
                "-m",
                "http.server",
                "--bind",
                str(MIRROR_IP),
                "--directory",
                str(directory),
                str(PORT),
            ],
        ),
        log,
    )
    _pid_file(paths).write_text(str(server.pid))
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise LabError("the lab's package mirror exited at start", hint=f"see {log}")
        if _answers():
            return server.pid
        time.sleep(0.05)
    raise LabError(f"the lab's package mirror does not answer on {MIRROR_IP}:{PORT}", hint=f"see {log}")


def _answers() -> bool:
    try:
        with socket.create_connection((str(MIRROR_IP), PORT), timeout=0.5):
            return True
    except OSError:
        return False
