"""Shared pieces of the pipeline-level lab tests: a lab prefix and one network driven by the CLI."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.conftest import EXAMPLES, CliResult, run_cli
from tests.lab.conftest import fresh_lab


def lab_prefix_fixture() -> Iterator[str]:
    """A fresh lab prefix (machine-wide lock held); the lab is torn down at the end, also on failure."""
    with fresh_lab() as prefix:
        yield prefix


def write_spec(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc, indent=1))
    return path


class LabNet:
    """One network on lab hosts: its spec (an example or a document), work dir and CLI."""

    def __init__(self, prefix: str, tmp: Path, spec: str | dict[str, Any]) -> None:
        self.prefix = prefix
        self.tmp = tmp
        self.workdir = tmp / "state"
        self.outputs: list[str] = []  # everything the CLI printed, for secret scans
        if isinstance(spec, str):
            self.spec = tmp / spec
            self.spec.write_text((EXAMPLES / spec).read_text())
        else:
            self.spec = write_spec(tmp / "spec.json", spec)

    def cli(self, *args: str) -> CliResult:
        res = run_cli(*args, environ={"CLOUDCAST_LAB_PREFIX": self.prefix})
        self.outputs += [res.out, res.err]
        return res

    def apply(self) -> CliResult:
        return self.cli("apply", str(self.spec), "--auto-approve", "--workdir", str(self.workdir))

    def sh(self, host: str, command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        from cloudcast import lab

        return lab.exec_in(host, ["sh", "-c", command], self.prefix, timeout=timeout)

    def ike_sas(self, host: str) -> list[str]:
        """`conn: #id ... SPIs` of every IKE SA on an IPsec host: changes whenever an SA is made again."""
        out = self.sh(host, "swanctl --list-sas 2>/dev/null").stdout
        return sorted(line for line in out.splitlines() if re.match(r"^cc-\S+: #\d+, ESTABLISHED", line))

    def agent_state(self, host: str) -> str:
        """A host's tunnel and failover agent, for failure messages."""
        return self.sh(
            host,
            "echo \"== $(hostname) $(date +%T)\"; wg show cc0 allowed-ips; wg show cc0 endpoints; "
            "wg show cc0 latest-handshakes; ps -o pid,args -e | grep [f]ailover; "
            "cat /var/log/cloudcast-cc0-failover.log",
        ).stdout

    def reaches(self, src: str, dst: str, seconds: float = 10.0) -> bool:
        """`src` pings `dst` within `seconds` (handshakes and failovers take a moment)."""
        deadline = time.monotonic() + seconds
        while self.sh(src, f"ping -n -c 1 -W 1 {dst}").returncode != 0:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.3)
        return True


def rehearse(prefix: str, tmp_path: Path, example: str, *args: str) -> CliResult:
    """Run `cloudcast ARGS COPY-OF-EXAMPLE --lab` (a rehearsal on lab hosts)."""
    spec = tmp_path / example
    if not spec.exists():
        spec.write_text((EXAMPLES / example).read_text())
    return run_cli(*args, str(spec), "--lab", environ={"CLOUDCAST_LAB_PREFIX": prefix})
