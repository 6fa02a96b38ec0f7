"""VM lab hosts: a QEMU guest whose NICs are taps inside the host's own lab namespace.

The host namespace is built as for any lab host (its `eth0` on the internet or behind NAT
routers, `lan0` on a site LAN), then its addresses are handed to the guest: each link is
bridged with a tap (`br0` = eth0 + tap0, `br1` = lan0 + tap1) and the namespace keeps no
address of its own. The guest, not the namespace, holds the host's addresses (from its
cloud-init seed), so it sits on the lab's links and nowhere else:

    internet ─ v<N> ─ eth0 ┐br0┌ tap0 ═ guest eth0 [public IP/15, or 100.64.N.2/24 via .1]
               site LAN ─ lan0 ┘br1└ tap1 ═ guest eth1 [LAN address]

A public guest holds its address as a /15 and the internet's side of its link answers ARP
for the rest of the range (proxy ARP), as routed hosts reach 198.18.0.0/15 via 198.18.0.1.

Each VM boots the cached image's kernel directly, from its own qcow2 overlay of the image
(so every VM starts as a fresh machine and the image is never written), with the KVM
accelerator where it works and TCG (`-accel tcg -cpu max`) where it does not.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from cloudcast.errors import LabError
from cloudcast.lab import internet, mirror, netns, proc, seed
from cloudcast.lab.image import Image
from cloudcast.lab.registry import INTERNET, STATE_ROOT, HostRecord, LabPaths

QEMU = "qemu-system-x86_64"
ACCEL_ENV = "CLOUDCAST_VM_ACCEL"  # "kvm" or "tcg": skip the probe
MEMORY_MB = 512
READY_TIMEOUT = 600.0  # TCG boots sharing two cores with other VMs take minutes
TCG = ("-accel", "tcg", "-cpu", "max")
KVM = ("-accel", "kvm", "-cpu", "host")
BRIDGES = (("br0", "eth0", "tap0"), ("br1", "lan0", "tap1"))
VM_TOOLS = {
    QEMU: "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "genisoimage": "genisoimage",
    "ssh": "openssh-client",
}


def require_tools() -> None:
    for tool, package in VM_TOOLS.items():
        if proc.which(tool) is None:
            raise LabError(
                f"`{tool}` is not installed (package {package}): VM lab hosts need it",
                hint="apt-get install -y --no-install-recommends qemu-system-x86 qemu-utils genisoimage",
            )


# --- networking -------------------------------------------------------------------------------


def _links(record: HostRecord) -> list[tuple[str, str, str]]:
    return list(BRIDGES[: 2 if record.lan else 1])


def plumb(paths: LabPaths, record: HostRecord) -> None:
    """Hand the host namespace's links to the guest: a bridge with a tap on each."""
    ns = paths.host_ns(record.name)
    commands: list[str] = []
    for bridge, link, tap in _links(record):
        commands += [
            f"addr flush dev {link}",
            f"tuntap add dev {tap} mode tap",
            f"link add {bridge} type bridge",
            f"link set dev {bridge} type bridge forward_delay 0 stp_state 0",
            f"link set dev {bridge} addrgenmode none",
            f"link set dev {link} master {bridge}",
            f"link set dev {tap} master {bridge}",
            f"link set dev {tap} up",
            f"link set dev {bridge} up",
        ]
    netns.ip(ns, commands)
    if record.nat == "none":
        internet.proxy_arp(paths, record.link_index)


def mac(record: HostRecord, nic: int) -> str:
    """A MAC unique in the lab (site LANs are shared L2 segments): from the host's link index."""
    return f"52:54:00:{0xC0 + nic:02x}:{record.link_index >> 8 & 0xFF:02x}:{record.link_index & 0xFF:02x}"


def guest_nics(record: HostRecord) -> list[seed.NicConfig]:
    if record.nat == "none":
        nics = [seed.NicConfig("eth0", f"{record.public_ip}/{INTERNET.prefixlen}")]
    else:
        gateway = record.private_ip.rsplit(".", 1)[0] + ".1"
        nics = [seed.NicConfig("eth0", f"{record.private_ip}/24", gateway)]
    if record.lan:
        nics.append(seed.NicConfig("eth1", record.lan_ip))
    return nics


# --- the machine ------------------------------------------------------------------------------


def disk(paths: LabPaths, name: str) -> Path:
    return paths.host_dir(name) / "disk.qcow2"


def console_log(paths: LabPaths, name: str) -> Path:
    return paths.host_dir(name) / "console.log"


def prepare(paths: LabPaths, record: HostRecord, keys: Sequence[str], image: Image) -> None:
    """The VM's overlay disk (kept across restarts: a power cycle, not a new machine) and seed."""
    host_dir = paths.host_dir(record.name)
    host_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    overlay = disk(paths, record.name)
    if not overlay.exists():
        proc.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(image.disk), str(overlay)],
            what=f"making the disk of VM {record.name}",
        )
    instance = f"{paths.prefix}-{record.name}-{int(record.created * 1000)}"
    seed.write_iso(
        host_dir / "seed",
        user=seed.user_data(record.name, keys, mirror.APT_SOURCE),
        meta=seed.meta_data(instance, record.name),
        network=seed.network_config(guest_nics(record)),
    )


def qemu_argv(paths: LabPaths, record: HostRecord, image: Image, accel: Sequence[str]) -> list[str]:
    host_dir = paths.host_dir(record.name)
    argv = [
        QEMU,
        # the lab's marker: `down` finds a VM by its command line even without its namespace
        "-name",
        f"{paths.marker}{record.name}.vm",
        *accel,
        "-m",
        str(MEMORY_MB),
        "-smp",
        "1",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-serial",
        f"file:{console_log(paths, record.name)}",
        "-kernel",
        str(image.kernel),
        "-initrd",
        str(image.initrd),
        "-append",
        "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet",
        "-drive",
        f"file={disk(paths, record.name)},format=qcow2,if=virtio",
        "-drive",
        f"file={host_dir / 'seed' / 'seed.iso'},format=raw,if=virtio,readonly=on",
        "-device",
        "virtio-rng-pci",
    ]
    for nic, (_, _, tap) in enumerate(_links(record)):
        argv += [
            "-netdev",
            f"tap,id=n{nic},ifname={tap},script=no,downscript=no",
            "-device",
            f"virtio-net-pci,netdev=n{nic},mac={mac(record, nic)}",
        ]
    return argv


def start(paths: LabPaths, record: HostRecord, image: Image) -> int:
    """Power the VM on inside its namespace; returns QEMU's PID (`ip netns exec` execs it)."""
    log = paths.host_dir(record.name) / "qemu.log"
    console_log(paths, record.name).unlink(missing_ok=True)
    argv = qemu_argv(paths, record, image, accelerator(image))
    child = proc.spawn_detached(netns.exec_argv(paths.host_ns(record.name), argv), log)
    time.sleep(0.3)
    if child.poll() is not None:
        raise LabError(f"VM {record.name} did not start: {_tail(log)}", hint=f"see {log}")
    return child.pid


def is_alive(pid: int | None, ns_inode: int | None) -> bool:
    """True when `pid` is a running QEMU in the host namespace `ns_inode`."""
    if pid is None or ns_inode is None or not proc.is_running(pid):
        return False
    return proc.netns_inode_of(pid) == ns_inode and proc.comm(pid).startswith("qemu-system")


def power_off(pid: int) -> None:
    """Pull the plug: SIGKILL QEMU (the guest gets no shutdown)."""
    proc.signal_pids([pid], signal.SIGKILL)
    if proc.wait_gone([pid], 10.0):
        raise LabError(f"QEMU (pid {pid}) survived SIGKILL")


# --- reaching the guest -------------------------------------------------------------------------


def ssh_argv(key: Path, host: str, command: Sequence[str], *, connect_timeout: int = 5) -> list[str]:
    """`ssh` to a lab guest as root with the controller key (lab guests are new every time:
    their host keys are not recorded here; the bootstrapper keeps its own known_hosts)."""
    return [
        proc.which("ssh") or "ssh",
        "-i",
        str(key),
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        f"ConnectTimeout={connect_timeout}",
        f"root@{host}",
        "--",
        shlex.join(command),
    ]


def run(
    key: Path, host: str, command: Sequence[str], timeout: float = 60.0, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `command` on a guest over SSH (raises subprocess.TimeoutExpired)."""
    return subprocess.run(
        ssh_argv(key, host, command),
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=proc.child_env(),
    )


def ssh_port_open(host: str, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, 22), timeout=timeout) as conn:
            conn.settimeout(timeout)
            return conn.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def wait_ready(paths: LabPaths, record: HostRecord, key: Path, timeout: float = READY_TIMEOUT) -> float:
    """Wait until the controller logs in to the guest; returns the seconds it took."""
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        if not proc.is_running(record.pid or 0):
            raise LabError(
                f"VM {record.name} stopped while booting: {_tail(console_log(paths, record.name))}",
                hint=f"see {paths.host_dir(record.name)}/qemu.log and console.log",
            )
        if ssh_port_open(record.public_ip, 1.0):
            try:
                if run(key, record.public_ip, ["true"], timeout=20).returncode == 0:
                    return time.monotonic() - started
            except subprocess.TimeoutExpired:
                pass
        time.sleep(1.0)
    raise LabError(
        f"VM {record.name}: no SSH login after {timeout:g} s: {_tail(console_log(paths, record.name))}",
        hint=f"see {console_log(paths, record.name)}",
    )


def boot_id(key: Path, host: str) -> str | None:
    try:
        out = run(key, host, ["cat", "/proc/sys/kernel/random/boot_id"], timeout=20)
    except subprocess.TimeoutExpired:
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def reboot(paths: LabPaths, record: HostRecord, key: Path, timeout: float = READY_TIMEOUT) -> float:
    """A real guest reboot (`systemctl reboot`); returns the seconds until SSH is back."""
    before = boot_id(key, record.public_ip)
    if before is None:
        raise LabError(f"VM {record.name} does not answer over SSH; it cannot be asked to reboot")
    started = time.monotonic()
    # the connection drops as the guest goes down: its exit status means nothing
    run(key, record.public_ip, ["systemctl", "reboot"], timeout=30)
    deadline = started + timeout
    while time.monotonic() < deadline:
        if not proc.is_running(record.pid or 0):
            raise LabError(f"VM {record.name} powered off instead of rebooting")
        now = boot_id(key, record.public_ip)
        if now is not None and now != before:
            return time.monotonic() - started
        time.sleep(1.0)
    raise LabError(f"VM {record.name} did not come back within {timeout:g} s of its reboot")


# --- the accelerator ----------------------------------------------------------------------------


def accelerator(image: Image) -> tuple[str, ...]:
    """KVM where a guest kernel really runs on it, else TCG; probed once per machine boot."""
    forced = os.environ.get(ACCEL_ENV, "")
    if forced in ("kvm", "tcg"):
        return KVM if forced == "kvm" else TCG
    cache = STATE_ROOT / "vm-accel"
    try:
        cached = cache.read_text().split()[0]
    except (OSError, IndexError):
        cached = ""
    if cached not in ("kvm", "tcg"):
        cached = "kvm" if _kvm_works(image) else "tcg"
        STATE_ROOT.mkdir(parents=True, exist_ok=True)
        cache.write_text(cached + "\n")
    return KVM if cached == "kvm" else TCG


def _kvm_works(image: Image, timeout: float = 20.0) -> bool:
    """Boot the image's kernel under KVM with no disk and no NIC until it panics for lack of
    a root: on this kind of machine nested KVM dies ("emulation failure") or hangs instead."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    argv = [
        QEMU, *KVM, "-m", "256", "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none",
        "-no-reboot", "-serial", "stdio", "-kernel", str(image.kernel),
        "-append", "console=ttyS0 panic=-1 root=/dev/nonexistent",
    ]  # fmt: skip
    try:
        out = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL,
            env=proc.child_env(),
        )  # fmt: skip
    except (subprocess.TimeoutExpired, OSError):
        return False
    return "Kernel panic" in out.stdout and "KVM internal error" not in out.stderr


def _tail(log: Path, lines: int = 1) -> str:
    try:
        text = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return " / ".join(text[-lines:]) if text else "no output"
