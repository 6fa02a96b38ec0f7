"""A cloud-init NoCloud seed per VM: its SSH keys, hostname, static addresses and apt source.

This is how a cloud hands a fresh instance its identity; the image itself carries none. The
seed is an ISO 9660 volume labelled `cidata` (`genisoimage`), the VM's second virtio disk.
Every value comes from the lab's own validated records, and the YAML is written with
`json.dumps` for each scalar (JSON is YAML), so no value can add a key or a line.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cloudcast.errors import LabError
from cloudcast.lab import proc


@dataclass(frozen=True)
class NicConfig:
    """One guest interface: its name (eth0, eth1 in PCI order, with net.ifnames=0) and address."""

    name: str
    address: str  # A.B.C.D/LEN
    gateway: str = ""


def _q(value: str) -> str:
    return json.dumps(value)


def user_data(hostname: str, keys: Sequence[str], apt_source: str) -> str:
    lines = [
        "#cloud-config",
        f"hostname: {_q(hostname)}",
        # cloudcast keeps its own block in /etc/hosts: cloud-init must not rewrite the file at boot
        "manage_etc_hosts: false",
        "disable_root: false",
        "ssh_pwauth: false",
        # one host key, not three: an RSA key takes many seconds under software emulation
        "ssh_genkeytypes: [ed25519]",
        "users: []",
        "ssh_authorized_keys:",
        *(f"  - {_q(key)}" for key in keys),
        "write_files:",
        "  - path: /etc/apt/sources.list.d/cloudcast-lab-mirror.list",
        "    permissions: '0644'",
        f"    content: {_q(apt_source + chr(10))}",
    ]
    return "\n".join(lines) + "\n"


def meta_data(instance_id: str, hostname: str) -> str:
    return f"instance-id: {_q(instance_id)}\nlocal-hostname: {_q(hostname)}\n"


def network_config(nics: Sequence[NicConfig]) -> str:
    """network-config v2 with static addresses (the lab runs no DHCP)."""
    lines = ["version: 2", "ethernets:"]
    for nic in nics:
        lines += [
            f"  {nic.name}:",
            f"    match: {{name: {_q(nic.name)}}}",
            f"    addresses: [{_q(nic.address)}]",
        ]
        if nic.gateway:
            lines.append(f"    gateway4: {_q(nic.gateway)}")
    return "\n".join(lines) + "\n"


def write_iso(directory: Path, *, user: str, meta: str, network: str) -> Path:
    """Write the three files and the `cidata` ISO beside them; returns the ISO's path."""
    tool = shutil.which("genisoimage", path=proc.search_path())
    if tool is None:
        raise LabError(
            "`genisoimage` is not installed (package genisoimage): VM seeds need it",
            hint="apt-get install -y --no-install-recommends genisoimage",
        )
    directory.mkdir(parents=True, exist_ok=True)
    files = {"user-data": user, "meta-data": meta, "network-config": network}
    for name, text in files.items():
        (directory / name).write_text(text)
    iso = directory / "seed.iso"
    proc.run(
        [tool, "-quiet", "-output", str(iso), "-volid", "cidata", "-joliet", "-rock", *files],
        cwd=directory,
        what="making the VM's cloud-init seed",
    )
    return iso
