"""The local lab's public functions: build, inspect, break and remove simulated hosts.

Every mutation runs under the lab's file lock, so Terraform may call `host-up`/`host-down`
for many nodes at once.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from cloudcast.errors import LabError
from cloudcast.lab import hosts, image, internet, lan, mirror, nat, netns, proc, vm
from cloudcast.lab.models import LabHost, LabStatus, LabTeardown
from cloudcast.lab.registry import (
    HostRecord,
    LabPaths,
    Registry,
    check_lan,
    check_machine,
    check_name,
    check_nat,
    check_public_ip,
    ensure_controller_key,
    locked,
    public_key_text,
    resolve_prefix,
)

#: `up` numbers hosts host1..hostN with public IPs FIRST_IP + i (host1 = 198.19.0.11).
FIRST_IP = ipaddress.IPv4Address("198.19.0.10")
SSH_PORT = 22
SSH_USER = "root"


def _paths(prefix: str | None) -> LabPaths:
    paths = LabPaths(resolve_prefix(prefix))
    proc.require_privileges()
    proc.require_tools()
    return paths


# --- reading ------------------------------------------------------------------------------


def _router_names(paths: LabPaths, record: HostRecord) -> tuple[str, ...]:
    levels = {"none": 0, "nat": 1, "double": 2}[record.nat]
    return tuple(paths.router_ns(record.name, level) for level in range(1, levels + 1))


def _alive(paths: LabPaths, record: HostRecord) -> bool:
    """sshd runs as the host's PID 1, or the VM's QEMU runs in the host's namespace."""
    ino = netns.inode(paths.host_ns(record.name))
    if record.machine == "vm":
        return vm.is_alive(record.pid, ino)
    return hosts.is_alive(record.pid, ino)


def _to_host(paths: LabPaths, record: HostRecord) -> LabHost:
    ns = paths.host_ns(record.name)
    alive = _alive(paths, record)
    return LabHost(
        name=record.name,
        ns=ns,
        public_ip=record.public_ip,
        private_ip=record.private_ip,
        ssh_host=record.public_ip,
        ssh_port=SSH_PORT,
        ssh_user=SSH_USER,
        nat=record.nat,
        lan_index=record.lan_index,
        lan=record.lan,
        lan_ip=record.lan_ip,
        pid=record.pid,
        alive=alive,
        cut=record.cut,
        routers=_router_names(paths, record),
        machine=record.machine,
        ssh_ready=alive and (record.machine != "vm" or vm.ssh_port_open(record.public_ip)),
    )


def status(prefix: str | None = None) -> LabStatus:
    """The lab as it stands: its internet, controller key and hosts (alive or not)."""
    paths = _paths(prefix)
    registry = Registry.load(paths)
    key = paths.key_file
    return LabStatus(
        prefix=paths.prefix,
        state_dir=str(paths.state_dir),
        internet=netns.exists(paths.inet_ns) and Path("/sys/class/net", paths.root_link).exists(),
        controller_key=str(key) if key.exists() else None,
        hosts=tuple(_to_host(paths, rec) for _, rec in sorted(registry.hosts.items())),
    )


def controller_key(prefix: str | None = None) -> Path:
    """The private key the controller uses for every lab host (made on first use)."""
    paths = _paths(prefix)
    if paths.key_file.exists() and paths.key_file.with_suffix(".pub").exists():
        return paths.key_file
    with locked(paths):
        return ensure_controller_key(paths)


# --- building -----------------------------------------------------------------------------


def host_up(
    name: str,
    public_ip: str,
    nat: str = "none",
    authorized_keys: Sequence[str] = (),
    prefix: str | None = None,
    lan_index: int | None = None,
    site_lan: str = "",
    lan_ip: str = "",
    machine: str = "namespace",
) -> LabHost:
    """Make sure host `name` exists with this public IP and NAT mode, and that sshd runs.

    Idempotent: the same arguments change nothing. A changed IP, NAT mode, LAN index or site
    LAN rebuilds the host from scratch (new host key); a host whose sshd died is restarted
    with its /etc (and host key) kept. Creates the lab internet when it is missing.
    `lan_index` (1-254) picks N of the host's NAT LAN 100.64.N.0/24 (100.65.N.0/24 behind double
    NAT); by default the lowest one free. `site_lan` and `lan_ip` (both or neither) plug the
    host into the site LAN of that name (a bridge shared by the site's hosts) as `lan0` with
    address `lan_ip` (A.B.C.D/LEN); `eth0` on the internet stays, for SSH.
    `machine="vm"` makes the host a QEMU guest of the cached image (`lab image build`) on the
    same links; it returns once the controller can log in (the boot runs outside the lab's
    lock, so Terraform boots many VMs at once). A changed machine or extra key rebuilds a VM.
    """
    paths = _paths(prefix)
    check_name(name)
    address = str(check_public_ip(public_ip))
    mode = check_nat(nat)
    site = check_lan(site_lan, lan_ip)
    kind = check_machine(machine)
    if lan_index is not None and not 1 <= lan_index <= 254:
        raise LabError(f"invalid LAN index {lan_index}: use 1-254")
    if kind == "vm":
        vm.require_tools()
        image.require()
    keys = tuple(k.strip() for k in authorized_keys if k.strip())
    with locked(paths):
        registry = Registry.load(paths)
        record = _host_up_locked(paths, registry, name, address, mode, keys, lan_index, site, kind)
    return _ready(paths, record)


def _ready(paths: LabPaths, record: HostRecord) -> LabHost:
    """The host once it answers: a VM is waited for here, without the lab's lock."""
    if record.machine == "vm":
        vm.wait_ready(paths, record, paths.key_file)
    return _to_host(paths, record)


def _prepare_lab(paths: LabPaths) -> str:
    """Internet and controller key; returns the controller's public key text."""
    internet.ensure(paths)
    ensure_controller_key(paths)
    return public_key_text(paths)


def _host_up_locked(
    paths: LabPaths,
    registry: Registry,
    name: str,
    address: str,
    mode: str,
    keys: tuple[str, ...],
    lan_index: int | None,
    site: tuple[str, str] = ("", ""),
    machine: str = "namespace",
) -> HostRecord:
    controller_pub = _prepare_lab(paths)
    mode = check_nat(mode)
    kind = check_machine(machine)
    site_lan, lan_ip = site
    for other in registry.hosts.values():
        if other.name != name and other.public_ip == address:
            raise LabError(
                f"lab public IP {address} already belongs to host {other.name}",
                hint="give each lab host its own address in 198.18.0.0/15",
            )
        same_lan = other.name != name and bool(site_lan) and other.lan == site_lan
        if same_lan and other.lan_ip.split("/")[0] == lan_ip.split("/")[0]:
            raise LabError(f"LAN {site_lan}: address {lan_ip} already belongs to host {other.name}")
    existing = registry.hosts.get(name)
    if mode == "none":
        want_lan = 0
    elif lan_index is not None:
        want_lan = lan_index
    elif existing is not None and existing.nat != "none":
        want_lan = existing.lan_index
    else:
        want_lan = registry.free_lan_index(exclude=name)

    same_shape = (
        existing is not None
        and existing.public_ip == address
        and existing.nat == mode
        and existing.lan_index == want_lan
        and (existing.lan, existing.lan_ip) == (site_lan, lan_ip)
        and existing.machine == kind
        # keys reach a VM only through its seed, at its first boot
        and (kind != "vm" or existing.authorized_keys == keys)
    )
    if existing is not None and same_shape and _network_intact(paths, existing):
        record = existing
        if record.authorized_keys != keys:
            record = record.with_(authorized_keys=keys)
            hosts.write_authorized_keys(paths, record, controller_pub)
        if not _alive(paths, record):
            record = _start_process(paths, record, controller_pub)
        if record != existing:
            registry.hosts[name] = record
            registry.save()
        return record

    # Build from scratch (after removing whatever is left of an older or broken host).
    _remove_host(paths, name, existing, wipe=not same_shape)
    link_index = registry.free_link_index(internet.links_on_system(paths), exclude=name)
    record = HostRecord(
        name=name,
        public_ip=address,
        nat=mode,
        lan_index=want_lan,
        link_index=link_index,
        authorized_keys=keys,
        cut=existing.cut if existing is not None and same_shape else False,
        lan=site_lan,
        lan_ip=lan_ip,
        machine=kind,
    )
    if existing is not None and same_shape:  # the same machine (a VM keeps its cloud-init instance)
        record = record.with_(created=existing.created)
    registry.hosts[name] = record
    registry.save()
    try:
        _build_network(paths, record)
        record = _start_process(paths, record, controller_pub)
    except BaseException:
        _remove_host(paths, name, record, wipe=not same_shape)
        del registry.hosts[name]
        registry.save()
        raise
    registry.hosts[name] = record
    registry.save()
    _remove_unused_lans(paths, registry)
    return record


def _network_intact(paths: LabPaths, record: HostRecord) -> bool:
    namespaces = [paths.host_ns(record.name), *_router_names(paths, record)]
    if any(netns.inode(ns) is None for ns in namespaces):
        return False
    if record.lan and not lan.attached(paths, record.lan, record.link_index):
        return False
    if record.machine == "vm" and not netns.link_exists(paths.host_ns(record.name), "tap0"):
        return False
    return internet.links_on_system(paths).issuperset({record.link_index})


def _build_network(paths: LabPaths, record: HostRecord) -> None:
    host_ns = paths.host_ns(record.name)
    netns.add(host_ns)
    hops = nat.chain(paths, record.name, record.nat, record.public_ip, record.lan_index)
    if hops:
        nat.build(paths, hops, host_ns, record.link_index)
    else:
        internet.attach(paths, record.link_index, host_ns, "eth0", record.public_ip)
    if record.lan:
        lan.attach(paths, record.lan, record.link_index, host_ns, record.lan_ip)
    if record.machine == "vm":
        vm.plumb(paths, record)
    if record.cut:
        internet.cut(paths, record.public_ip)


def _start_process(paths: LabPaths, record: HostRecord, controller_pub: str) -> HostRecord:
    ns = paths.host_ns(record.name)
    netns.stop_processes(ns)  # a half-dead host: nothing of it may linger
    if record.machine == "vm":
        built = image.require()
        mirror.ensure(paths, built.mirror)
        vm.prepare(paths, record, [controller_pub, *record.authorized_keys], built)
        return record.with_(pid=vm.start(paths, record, built))
    init = hosts.prepare_dirs(paths, record, controller_pub)
    pid = hosts.start(paths, record, init)
    record = record.with_(pid=pid)
    hosts.wait_ready(paths, record, pid)
    return record


def _remove_host(paths: LabPaths, name: str, record: HostRecord | None, *, wipe: bool) -> None:
    """Stop and delete a host's processes, namespaces and (with `wipe`) its files."""
    host_ns = paths.host_ns(name)
    namespaces = [host_ns] + [
        ns for ns in netns.names() if ns.startswith(f"{host_ns}-r") and ns[len(host_ns) + 2 :].isdigit()
    ]
    for ns in namespaces:
        netns.stop_processes(ns)
    _kill_marked(paths, only_host=name)
    for ns in namespaces:
        netns.delete(ns)
    if record is not None:
        internet.detach(paths, record.link_index, record.public_ip)
        if record.cut:
            internet.uncut(paths, record.public_ip)
    if wipe:
        shutil.rmtree(paths.host_dir(name), ignore_errors=True)


def host_down(name: str, prefix: str | None = None) -> bool:
    """Remove host `name` (processes, namespaces, NAT routers, files); True if it existed."""
    paths = _paths(prefix)
    check_name(name)
    with locked(paths):
        registry = Registry.load(paths)
        record = registry.hosts.pop(name, None)
        found = record is not None or netns.exists(paths.host_ns(name))
        _remove_host(paths, name, record, wipe=True)
        if record is not None:
            registry.save()
        _remove_unused_lans(paths, registry)
        return found


def _remove_unused_lans(paths: LabPaths, registry: Registry) -> None:
    """A site LAN lives as long as some host is on it."""
    used = {rec.lan for rec in registry.hosts.values() if rec.lan}
    for name in lan.lan_names(paths):
        if name not in used:
            lan.remove(paths, name)


def up(hosts: int = 0, nat: int = 0, double_nat: int = 0, prefix: str | None = None) -> list[LabHost]:
    """The lab internet plus `hosts` hosts named host1..hostN, host i at 198.19.0.(10+i).

    Of these, the first `hosts - nat - double_nat` are public, the next `nat` sit behind
    NAT and the last `double_nat` behind double NAT: `up(3, 1, 1)` makes host1 public,
    host2 NAT, host3 double NAT. Idempotent; never removes hosts (use `host_down`/`down`).
    """
    if min(hosts, nat, double_nat) < 0:
        raise LabError("host counts must not be negative")
    if nat + double_nat > hosts:
        raise LabError(
            f"--nat {nat} plus --double-nat {double_nat} exceeds --hosts {hosts}",
            hint="NAT hosts are counted among the hosts: e.g. `--hosts 5 --nat 1 --double-nat 1`",
        )
    paths = _paths(prefix)
    public = hosts - nat - double_nat
    with locked(paths):
        _prepare_lab(paths)
        registry = Registry.load(paths)
        records: list[HostRecord] = []
        for i in range(1, hosts + 1):
            mode = "none" if i <= public else "nat" if i <= public + nat else "double"
            name = f"host{i}"
            existing = registry.hosts.get(name)
            keys = existing.authorized_keys if existing is not None else ()
            site = (existing.lan, existing.lan_ip) if existing is not None else ("", "")
            kind = existing.machine if existing is not None else "namespace"
            records.append(
                _host_up_locked(paths, registry, name, str(FIRST_IP + i), mode, keys, None, site, kind)
            )
    return [_ready(paths, record) for record in records]


# --- tearing down -------------------------------------------------------------------------


def _kill_marked(paths: LabPaths, only_host: str | None = None) -> int:
    """SIGKILL lab processes found by command line (e.g. whose namespace lost its name)."""
    host_dir = str(paths.state_dir / "hosts") + "/"
    marker = paths.marker
    if only_host is not None:
        host_dir += only_host + "/"
        marker += only_host + "."
    victims = []
    for pid in proc.all_pids():
        comm = proc.comm(pid)
        if pid == os.getpid() or not (comm in ("sshd", "unshare", "sh") or comm.startswith("qemu-system")):
            continue
        line = " ".join(proc.cmdline(pid))
        if (host_dir in line or marker in line) and proc.is_running(pid):
            victims.append(pid)
    proc.signal_pids(victims, signal.SIGKILL)
    proc.wait_gone(victims, 5.0)
    return len(victims)


def _mount_points() -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if len(fields) > 4:
            points.append(_unescape(fields[4]))
    return points


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and text[i + 1 : i + 4].isdigit():
            out.append(chr(int(text[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _lab_mounts(paths: LabPaths) -> list[str]:
    state = str(paths.state_dir)
    ns_dir = f"{netns.NETNS_DIR}/{paths.ns_prefix}"
    return [p for p in _mount_points() if p == state or p.startswith(state + "/") or p.startswith(ns_dir)]


def down(prefix: str | None = None) -> LabTeardown:
    """Remove everything of the lab, from what is on the system (not only the registry).

    Namespaces named `<prefix>-*` and their processes (SIGTERM to each host's sshd, then
    SIGKILL to what is left), stray lab processes found by command line, mounts, the root
    namespace's link `<prefix>0` (and its route), the state dir and the lock file.
    """
    paths = _paths(prefix)
    with locked(paths):
        namespaces = [ns for ns in netns.names() if ns.startswith(paths.ns_prefix)]
        # Hosts first (their sshd takes the host down), routers and the internet after.
        ordered = sorted(namespaces, key=lambda ns: (ns == paths.inet_ns, ns))
        processes = sum(netns.stop_processes(ns) for ns in ordered)
        processes += _kill_marked(paths)
        root_link = Path("/sys/class/net", paths.root_link).exists()
        netns.delete_all(ordered)
        with internet.root_namespace_lock():
            # Deleting the internet namespace takes the root link with it, in the background.
            internet.wait_root_link_gone(paths)
        mounts = _lab_mounts(paths)
        for point in sorted(mounts, key=len, reverse=True):
            proc.run(["umount", "-l", point], check=False)
        had_state = paths.state_dir.exists()
        shutil.rmtree(paths.state_dir, ignore_errors=True)
        if paths.state_dir.exists():
            raise LabError(
                f"could not remove {paths.state_dir}",
                hint=f"check `findmnt -R {paths.state_dir}` and remove it by hand",
            )
        paths.lock_file.unlink(missing_ok=True)
    proc.reap_children()
    return LabTeardown(
        prefix=paths.prefix,
        namespaces=tuple(ordered),
        processes=processes,
        root_link=root_link,
        mounts=len(mounts),
        state_dir=had_state,
    )


# --- breaking things on purpose (tests) -----------------------------------------------------


def _record(paths: LabPaths, name: str) -> HostRecord:
    record = Registry.load(paths).hosts.get(name)
    if record is None:
        raise LabError(
            f"lab {paths.prefix} has no host {name!r}",
            hint="`cloudcast lab status` lists the hosts",
        )
    return record


def kill_host(name: str, prefix: str | None = None) -> None:
    """SIGKILL the host's sshd (PID 1), or a VM's QEMU: all its processes die; namespace,
    addresses (and a VM's disk) stay, and `host_up` with the same arguments starts it again."""
    paths = _paths(prefix)
    with locked(paths):
        record = _record(paths, name)
        if record.pid is not None and record.machine == "vm" and _alive(paths, record):
            vm.power_off(record.pid)  # a power cut: the guest's disk stays for `host-up`
        elif record.pid is not None and _alive(paths, record):
            os.kill(record.pid, signal.SIGKILL)
            if proc.wait_gone([record.pid], 5.0):
                raise LabError(f"lab host {name} (pid {record.pid}) survived SIGKILL")
        proc.reap_children()


def record_ns(paths: LabPaths, record: HostRecord) -> str:
    return paths.host_ns(record.name)


def cut(name: str, prefix: str | None = None) -> None:
    """Drop all traffic to and from the host's public IP in the internet router."""
    _set_cut(name, prefix, True)


def uncut(name: str, prefix: str | None = None) -> None:
    """Undo `cut`."""
    _set_cut(name, prefix, False)


def _set_cut(name: str, prefix: str | None, value: bool) -> None:
    paths = _paths(prefix)
    with locked(paths):
        registry = Registry.load(paths)
        record = _record(paths, name)
        if value:
            internet.cut(paths, record.public_ip)
        else:
            internet.uncut(paths, record.public_ip)
        registry.hosts[name] = record.with_(cut=value)
        registry.save()


def exec_in(
    name: str,
    argv: Sequence[str],
    prefix: str | None = None,
    *,
    input: str | None = None,
    timeout: float = 60.0,
    check: bool = False,
    env: Iterable[tuple[str, str]] = (),
) -> subprocess.CompletedProcess[str]:
    """Run `argv` inside a host (its mount, UTS, network and PID namespaces), as root."""
    paths = _paths(prefix)
    record = _record(paths, name)
    if not _alive(paths, record):
        raise LabError(f"lab host {name} is not running", hint="start it again with `lab host-up`")
    assert record.pid is not None
    if record.machine == "vm":
        return _exec_vm(paths, record, argv, input=input, timeout=timeout, check=check, env=env)
    environ = {
        "PATH": os.pathsep.join(proc.SYSTEM_PATH),
        "HOME": "/root",
        "LANG": "C.UTF-8",
        **hosts.SESSION_ENV,
        **dict(env),
    }
    command = [
        shutil.which("nsenter", path=proc.search_path()) or "nsenter",
        "-t",
        str(record.pid),
        "-m",
        "-u",
        "-n",
        "-p",
        "--",
        *argv,
    ]
    try:
        result = subprocess.run(
            command,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=environ,
            cwd="/",
            stdin=None if input is not None else subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"`{' '.join(argv)}` on lab host {name} timed out after {timeout:g} s") from exc
    if check and result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        raise LabError(f"`{' '.join(argv)}` failed on lab host {name}: {detail}")
    return result


def _exec_vm(
    paths: LabPaths,
    record: HostRecord,
    argv: Sequence[str],
    *,
    input: str | None,
    timeout: float,
    check: bool,
    env: Iterable[tuple[str, str]],
) -> subprocess.CompletedProcess[str]:
    """`exec_in` on a VM: over SSH with the controller key, as on any real machine."""
    command = ["env", *(f"{k}={v}" for k, v in env), *argv] if env else list(argv)
    try:
        result = vm.run(paths.key_file, record.public_ip, command, timeout=timeout, input=input)
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"`{' '.join(argv)}` on lab VM {record.name} timed out after {timeout:g} s") from exc
    if check and result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        raise LabError(f"`{' '.join(argv)}` failed on lab VM {record.name}: {detail}")
    return result


def host_reboot(name: str, prefix: str | None = None) -> float:
    """Reboot a VM host from inside (`systemctl reboot`); returns the seconds until SSH is back."""
    paths = _paths(prefix)
    record = _record(paths, name)
    if record.machine != "vm":
        raise LabError(
            f"lab host {name} is a namespace host: it has no kernel of its own to reboot",
            hint="`lab host-up` restarts a namespace host; VM hosts (--machine vm) reboot",
        )
    if not _alive(paths, record):
        raise LabError(f"lab VM {name} is off", hint="power it on with `lab host-up`")
    return vm.reboot(paths, record, paths.key_file)
