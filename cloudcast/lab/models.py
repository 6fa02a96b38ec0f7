"""What the lab API returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LabHost:
    """One lab host as the controller sees it.

    `ssh_host`/`ssh_port` is where the controller connects (the public IP, port 22; behind
    NAT the routers DNAT tcp/22 to the host). `private_ip` is the host's own `eth0` address:
    the public IP without NAT, 100.64.N.2 behind NAT, 100.65.N.2 behind double NAT. `lan` and
    `lan_ip` name the site LAN the host is on (as `lan0`) and its address there ("" for none).
    """

    name: str
    ns: str
    public_ip: str
    private_ip: str
    ssh_host: str
    ssh_port: int
    ssh_user: str
    nat: str
    lan_index: int
    lan: str
    lan_ip: str
    pid: int | None
    alive: bool
    cut: bool
    routers: tuple[str, ...]
    machine: str = "namespace"  # or "vm": a QEMU guest whose NICs are taps in `ns`
    ssh_ready: bool = False  # a VM's sshd answers (namespace hosts: sshd is PID 1, so `alive`)

    @property
    def instance_id(self) -> str:
        return f"lab:{self.ns}"

    @property
    def state(self) -> str:
        """up, cut or dead; a VM is off, booting (QEMU runs, SSH does not answer yet), up or cut."""
        if not self.alive:
            return "off" if self.machine == "vm" else "dead"
        if self.machine == "vm" and not self.ssh_ready:
            return "booting"
        return "cut" if self.cut else "up"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ns": self.ns,
            "instance_id": self.instance_id,
            "public_ip": self.public_ip,
            "private_ip": self.private_ip,
            "ssh_host": self.ssh_host,
            "ssh_port": self.ssh_port,
            "ssh_user": self.ssh_user,
            "nat": self.nat,
            "lan_index": self.lan_index,
            "lan": self.lan,
            "lan_ip": self.lan_ip,
            "pid": self.pid,
            "alive": self.alive,
            "cut": self.cut,
            "routers": list(self.routers),
            "machine": self.machine,
            "state": self.state,
        }


@dataclass(frozen=True)
class LabStatus:
    """The whole lab: its internet, the controller key and every host."""

    prefix: str
    state_dir: str
    internet: bool  # the internet namespace and the root namespace's link exist
    controller_key: str | None
    hosts: tuple[LabHost, ...]

    def host(self, name: str) -> LabHost | None:
        return next((h for h in self.hosts if h.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "state_dir": self.state_dir,
            "internet": self.internet,
            "controller_key": self.controller_key,
            "hosts": [h.to_json() for h in self.hosts],
        }


@dataclass(frozen=True)
class LabTeardown:
    """What `down` found and removed."""

    prefix: str
    namespaces: tuple[str, ...]
    processes: int
    root_link: bool
    mounts: int
    state_dir: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "namespaces": list(self.namespaces),
            "processes": self.processes,
            "root_link": self.root_link,
            "mounts": self.mounts,
            "state_dir": self.state_dir,
        }
