"""What the lab benchmarks share: the lab prefix, the machine-wide lab lock, running commands
on lab hosts and the cloudcast CLI."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cloudcast import lab  # noqa: E402

PREFIX = "ccbench"
MACHINE_LOCK = Path("/run/cloudcast/lab-tests.lock")  # the lab tests' lock: one lab at a time


def sh(host: str, command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return lab.exec_in(host, ["sh", "-c", command], PREFIX, timeout=timeout)


def cloudcast(*args: str) -> None:
    env = {**os.environ, "CLOUDCAST_LAB_PREFIX": PREFIX, "CI": "1"}
    done = subprocess.run([sys.executable, "-m", "cloudcast", *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"cloudcast {' '.join(args)} failed:\n{done.stderr[-3000:]}")


def address(host: str, dev: str) -> str:
    """The IPv4 address of `dev` on lab host `host`."""
    return sh(host, f"ip -4 -o addr show dev {dev}").stdout.split()[3].split("/")[0]


def iperf(src: str, dst_host: str, dst: str, seconds: int, *, settle: float = 0.3, slack: float = 60) -> float:
    """Mbit/s of one iperf3 TCP stream from `src` to `dst` (served by `dst_host`), receiver side.
    `settle`: seconds for the server to listen; `slack`: what the client may take beyond `seconds`."""
    sh(dst_host, "iperf3 -s -D -1 --logfile /tmp/iperf3.log")
    time.sleep(settle)
    out = sh(src, f"iperf3 -c {dst} -t {seconds} -J", timeout=seconds + slack).stdout
    sh(dst_host, "pkill -x iperf3 || true")
    return float(json.loads(out)["end"]["sum_received"]["bits_per_second"]) / 1e6


@contextmanager
def lab_to_ourselves() -> Iterator[None]:
    """Root, the machine's lab lock (queue behind lab test sessions) and a clean lab prefix."""
    if os.geteuid() != 0:
        raise SystemExit("the lab needs root")
    MACHINE_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(MACHINE_LOCK, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lab.down(PREFIX)
        try:
            yield
        finally:
            lab.down(PREFIX)
