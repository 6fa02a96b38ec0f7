"""The lab's state: names, the state dir, the lock, the registry of hosts, the controller key.

One lab per prefix (env `CLOUDCAST_LAB_PREFIX`, default `cclab`). Everything it makes is named
after the prefix, so `down` can find it on the system even when the registry is lost.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from cloudcast.errors import LabError
from cloudcast.lab import proc

PREFIX_ENV = "CLOUDCAST_LAB_PREFIX"
DEFAULT_PREFIX = "cclab"
STATE_ROOT = Path("/run/cloudcast")
LOCK_TIMEOUT = 300.0

NatMode = Literal["none", "nat", "double"]
NAT_MODES: tuple[NatMode, ...] = ("none", "nat", "double")
Machine = Literal["namespace", "vm"]
MACHINES: tuple[Machine, ...] = ("namespace", "vm")

#: The simulated internet: the benchmarking range, never routed on the real internet.
INTERNET = ipaddress.IPv4Network("198.18.0.0/15")
ROUTER_IP = ipaddress.IPv4Address("198.18.0.1")  # the internet's side of every link
ROOT_IP = ipaddress.IPv4Address("198.18.0.2")  # the root namespace's one address
MIRROR_IP = ipaddress.IPv4Address("198.18.0.3")  # the package mirror VMs install from

_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,10}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,38}[A-Za-z0-9])?$")
_ROUTER_SUFFIX_RE = re.compile(r"-r[0-9]+$")
_LAN_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38}[A-Za-z0-9])?$")


def resolve_prefix(prefix: str | None) -> str:
    value = prefix if prefix is not None else os.environ.get(PREFIX_ENV) or DEFAULT_PREFIX
    if not _PREFIX_RE.match(value):
        raise LabError(
            f"invalid lab prefix {value!r}: use 1-11 lowercase letters and digits, starting with a letter",
            hint=f"set {PREFIX_ENV} to e.g. `cclab`",
        )
    return value


def check_name(name: str) -> str:
    if not _NAME_RE.match(name) or name == "inet" or _ROUTER_SUFFIX_RE.search(name):
        raise LabError(
            f"invalid lab host name {name!r}: use letters, digits, '-' and '_' (at most 40), "
            "not `inet` and not ending in -r<digit>",
        )
    return name


def check_public_ip(text: str) -> ipaddress.IPv4Address:
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError as exc:
        raise LabError(f"invalid public IP {text!r}: not an IPv4 address") from exc
    reserved = {INTERNET.network_address, INTERNET.broadcast_address, ROUTER_IP, ROOT_IP, MIRROR_IP}
    if address not in INTERNET or address in reserved:
        raise LabError(
            f"lab public IP {address} must lie in {INTERNET} and not be {ROUTER_IP} (the "
            f"internet router), {ROOT_IP} (this machine) or {MIRROR_IP} (the package mirror)",
            hint="the lab hands out 198.19.0.11, 198.19.0.12, ...",
        )
    return address


def check_lan(lan: str, lan_ip: str) -> tuple[str, str]:
    """A LAN name (a site name) and an interface address in it, both given or both empty."""
    if not lan and not lan_ip:
        return "", ""
    if not lan or not lan_ip:
        raise LabError("--lan and --lan-ip go together: the LAN's name and the host's address on it")
    if not _LAN_RE.match(lan):
        raise LabError(f"invalid LAN name {lan!r}: use letters, digits and '-' (at most 40)")
    try:
        iface = ipaddress.IPv4Interface(lan_ip)
    except ValueError as exc:
        raise LabError(f"invalid LAN address {lan_ip!r}: use A.B.C.D/LEN, e.g. 10.1.0.10/24") from exc
    net = iface.network
    if "/" not in lan_ip or net.prefixlen > 30 or iface.ip in (net.network_address, net.broadcast_address):
        raise LabError(f"invalid LAN address {lan_ip!r}: a host address with a prefix of at most /30")
    for reserved in (INTERNET, ipaddress.IPv4Network("100.64.0.0/10"), ipaddress.IPv4Network("127.0.0.0/8")):
        if net.overlaps(reserved):
            raise LabError(f"LAN {lan} ({net}) overlaps {reserved}, which the lab uses itself")
    return lan, str(iface)


def check_nat(nat: str) -> NatMode:
    if nat not in NAT_MODES:
        raise LabError(f"invalid NAT mode {nat!r}: use one of {', '.join(NAT_MODES)}")
    return nat


def check_machine(machine: str) -> Machine:
    if machine not in MACHINES:
        raise LabError(f"invalid machine {machine!r}: use one of {', '.join(MACHINES)}")
    return machine


@dataclass(frozen=True)
class LabPaths:
    """Where one lab's names and files live."""

    prefix: str

    @property
    def state_dir(self) -> Path:
        return STATE_ROOT / f"lab-{self.prefix}"

    @property
    def lock_file(self) -> Path:
        # Beside the state dir, so `down` can delete the dir while holding the lock.
        return STATE_ROOT / f"lab-{self.prefix}.lock"

    @property
    def registry_file(self) -> Path:
        return self.state_dir / "registry.json"

    @property
    def key_file(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def inet_ns(self) -> str:
        return f"{self.prefix}-inet"

    @property
    def root_link(self) -> str:
        return f"{self.prefix}0"

    @property
    def ns_prefix(self) -> str:
        return f"{self.prefix}-"

    def host_ns(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def router_ns(self, name: str, level: int) -> str:
        return f"{self.prefix}-{name}-r{level}"

    def host_dir(self, name: str) -> Path:
        return self.state_dir / "hosts" / name

    @property
    def mirror_ns(self) -> str:
        """The package mirror's namespace (a '.' no host name can contain)."""
        return f"{self.prefix}-srv.mirror"

    def lan_ns(self, lan: str) -> str:
        """The namespace holding LAN `lan`'s bridge (a '.' no host name can contain)."""
        return f"{self.prefix}-lan.{lan}"

    @property
    def marker(self) -> str:
        """A string in the command line of every process the lab starts."""
        return f"cloudcast-lab-{self.prefix}-"


@dataclass(frozen=True)
class HostRecord:
    """One host as the registry remembers it."""

    name: str
    public_ip: str
    nat: NatMode
    lan_index: int  # N of 100.64.N.0/24 (and 100.65.N.0/24); 0 without NAT
    link_index: int  # the internet side of the host's link is `v<link_index>`
    authorized_keys: tuple[str, ...] = ()
    pid: int | None = None  # sshd, PID 1 of the host; QEMU for a VM
    cut: bool = False
    created: float = field(default_factory=time.time)
    lan: str = ""  # the site LAN the host has a second interface (`lan0`) on; "" for none
    lan_ip: str = ""  # its address there with the prefix length, e.g. 10.1.0.10/24
    machine: Machine = "namespace"

    @property
    def private_ip(self) -> str:
        if self.nat == "nat":
            return f"100.64.{self.lan_index}.2"
        if self.nat == "double":
            return f"100.65.{self.lan_index}.2"
        return self.public_ip

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["authorized_keys"] = list(self.authorized_keys)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HostRecord:
        return cls(
            name=str(data["name"]),
            public_ip=str(data["public_ip"]),
            nat=check_nat(str(data["nat"])),
            lan_index=int(data["lan_index"]),
            link_index=int(data["link_index"]),
            authorized_keys=tuple(str(k) for k in data.get("authorized_keys", ())),
            pid=None if data.get("pid") is None else int(data["pid"]),
            cut=bool(data.get("cut", False)),
            created=float(data.get("created", 0.0)),
            lan=str(data.get("lan", "")),
            lan_ip=str(data.get("lan_ip", "")),
            machine=check_machine(str(data.get("machine", "namespace"))),
        )

    def with_(self, **changes: Any) -> HostRecord:
        return replace(self, **changes)


@dataclass
class Registry:
    """The hosts of one lab; saved atomically as JSON in the state dir."""

    paths: LabPaths
    hosts: dict[str, HostRecord] = field(default_factory=dict)

    @classmethod
    def load(cls, paths: LabPaths) -> Registry:
        try:
            raw = json.loads(paths.registry_file.read_text())
        except FileNotFoundError:
            return cls(paths)
        except (OSError, ValueError) as exc:
            raise LabError(
                f"cannot read the lab registry {paths.registry_file}: {exc}",
                hint="`cloudcast lab down` removes the lab from what it finds on the system",
            ) from exc
        hosts = {name: HostRecord.from_json(data) for name, data in dict(raw.get("hosts", {})).items()}
        return cls(paths, hosts)

    def save(self) -> None:
        self.paths.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = {
            "version": 1,
            "prefix": self.paths.prefix,
            "hosts": {name: rec.to_json() for name, rec in sorted(self.hosts.items())},
        }
        tmp = self.paths.registry_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, self.paths.registry_file)

    def free_link_index(self, taken_on_system: set[int], exclude: str) -> int:
        used = {rec.link_index for rec in self.hosts.values() if rec.name != exclude} | taken_on_system
        index = 1
        while index in used:
            index += 1
        return index

    def free_lan_index(self, exclude: str) -> int:
        used = {rec.lan_index for rec in self.hosts.values() if rec.nat != "none" and rec.name != exclude}
        for index in range(1, 255):
            if index not in used:
                return index
        raise LabError("no free LAN index: the lab has 254 hosts behind NAT already")


@contextmanager
def locked(paths: LabPaths, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the lab's exclusive lock (Terraform runs `host-up` ten at a time)."""
    STATE_ROOT.mkdir(parents=True, exist_ok=True, mode=0o755)
    deadline = time.monotonic() + timeout
    while True:
        fd = os.open(paths.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() > deadline:
                        raise LabError(
                            f"another cloudcast lab command has held {paths.lock_file} for {timeout:g} s",
                            hint=f"wait for it to finish, or find it with `fuser {paths.lock_file}`",
                        ) from None
                    time.sleep(0.02)
            # `down` unlinks the lock file while holding it: if ours was unlinked or
            # replaced while we waited, start over on the current file.
            try:
                same = os.stat(paths.lock_file).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                yield
                return
        finally:
            os.close(fd)


def ensure_controller_key(paths: LabPaths) -> Path:
    """The controller's SSH key pair, made on first use (call with the lock held)."""
    key = paths.key_file
    pub = key.with_suffix(".pub")
    if key.exists() and pub.exists():
        return key
    paths.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for stale in (key, pub):
        stale.unlink(missing_ok=True)
    proc.run(
        [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            f"cloudcast-lab-{paths.prefix}-controller",
            "-f",
            str(key),
        ],
        what="making the lab's controller SSH key",
    )
    key.chmod(0o600)
    return key


def public_key_text(paths: LabPaths) -> str:
    return paths.key_file.with_suffix(".pub").read_text().strip()
