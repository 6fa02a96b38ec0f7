"""One lab host: its own network, mount, UTS and PID namespaces, with sshd as PID 1.

`ip netns exec` alone shares /etc, /run and /root with the machine (wireguard-go's sockets in
/run/wireguard then collide between hosts), so each host starts as

    setsid ip netns exec NS unshare --mount --uts --pid --fork --kill-child --mount-proc \\
        --propagation private /bin/sh INIT

and INIT mounts overlays of /etc and /var, a private /root, tmpfs on /run and /tmp, sets the
hostname, makes its own SSH host key, then `exec sshd -D -e` (PID 1 of the host). SIGTERM to
that sshd ends every process of the host; SIGKILL kills it on the spot.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path

from cloudcast.errors import LabError
from cloudcast.lab import proc
from cloudcast.lab.registry import HostRecord, LabPaths

HOST_KEY = "/etc/ssh/cloudcast_host_ed25519_key"
READY_TIMEOUT = 15.0

#: Set in every SSH session of a lab host: the kernel here has no WireGuard module.
SESSION_ENV = {"WG_QUICK_USERSPACE_IMPLEMENTATION": "wireguard-go"}


def sshd_config_path(paths: LabPaths, name: str) -> str:
    # The file name carries the lab's marker, so `down` can find stray sshds by command line.
    return f"/etc/ssh/{paths.marker}{name}.conf"


def sshd_config(listen: str) -> str:
    lines = [
        f"ListenAddress {listen}",
        "Port 22",
        f"HostKey {HOST_KEY}",
        "PidFile /run/sshd.pid",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "AuthorizedKeysFile .ssh/authorized_keys",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "UseDNS no",
        "PrintMotd no",
        "PrintLastLog no",
        "MaxStartups 100:30:200",
        "MaxSessions 64",
        "AcceptEnv LANG LC_*",
        "Subsystem sftp internal-sftp",
        "SetEnv " + " ".join(f"{k}={v}" for k, v in SESSION_ENV.items()),
    ]
    return "\n".join(lines) + "\n"


def init_script(paths: LabPaths, record: HostRecord) -> str:
    """The shell script that becomes the host's PID 1 (and then execs sshd)."""
    host_dir = paths.host_dir(record.name)
    name = record.name
    conf = sshd_config_path(paths, name)
    q = shlex.quote
    return f"""#!/bin/sh
# cloudcast lab host {name} (lab {paths.prefix}): PID 1 of its own mount, UTS and PID namespaces.
set -eu
S={q(str(host_dir))}
# Drop the copies of /run/netns/* this mount namespace inherited: they would keep other
# hosts' namespaces (and their veths) alive after those hosts are deleted.
umount -R -l /run/netns 2>/dev/null || true
mount -t overlay cc-etc -o "lowerdir=/etc,upperdir=$S/etc.upper,workdir=$S/etc.work" /etc
mount -t overlay cc-var -o "lowerdir=/var,upperdir=$S/var.upper,workdir=$S/var.work" /var
mount --bind "$S/root" /root
mount -t tmpfs -o mode=0755,nosuid,nodev,size=64m cc-run /run
mount -t tmpfs -o mode=1777,nosuid,nodev,size=512m cc-tmp /tmp
mkdir -p /run/sshd /run/wireguard /run/lock
chmod 0755 /run/sshd
hostname {q(name)}
printf '%s\\n' {q(name)} > /etc/hostname
printf '127.0.0.1\\tlocalhost\\n127.0.1.1\\t%s\\n::1\\tlocalhost ip6-localhost ip6-loopback\\n' \\
    {q(name)} > /etc/hosts
[ -s {HOST_KEY} ] || ssh-keygen -q -t ed25519 -N '' -C {q(name)} -f {HOST_KEY}
cat > {q(conf)} <<'CLOUDCAST_EOF'
{sshd_config(record.private_ip)}CLOUDCAST_EOF
exec {proc.SSHD} -D -e -f {q(conf)}
"""


def prepare_dirs(paths: LabPaths, record: HostRecord, controller_pub: str) -> Path:
    """Create the host's upper/work/root dirs, authorized keys and INIT; return INIT."""
    host_dir = paths.host_dir(record.name)
    for sub in ("etc.upper", "etc.work", "var.upper", "var.work"):
        (host_dir / sub).mkdir(parents=True, exist_ok=True, mode=0o755)
    write_authorized_keys(paths, record, controller_pub)
    init = host_dir / "init.sh"
    init.write_text(init_script(paths, record))
    init.chmod(0o700)
    return init


def write_authorized_keys(paths: LabPaths, record: HostRecord, controller_pub: str) -> None:
    """Root's authorized keys; /root of the host is a bind of this dir, so it applies live."""
    root = paths.host_dir(record.name) / "root"
    ssh_dir = root / ".ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    root.chmod(0o700)
    ssh_dir.chmod(0o700)
    keys = [controller_pub, *(k.strip() for k in record.authorized_keys if k.strip())]
    unique = list(dict.fromkeys(keys))
    target = ssh_dir / "authorized_keys"
    tmp = ssh_dir / "authorized_keys.tmp"
    tmp.write_text("\n".join(unique) + "\n")
    tmp.chmod(0o600)
    tmp.replace(target)


def start(paths: LabPaths, record: HostRecord, init: Path) -> int:
    """Launch the host; return the root-namespace PID of its PID 1 (sshd once INIT execs)."""
    ns = paths.host_ns(record.name)
    log = paths.host_dir(record.name) / "sshd.log"
    launcher = proc.spawn_detached(
        [
            "ip",
            "netns",
            "exec",
            ns,
            "unshare",
            "--mount",
            "--uts",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "--propagation",
            "private",
            "/bin/sh",
            str(init),
        ],
        log,
    )
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        for pid in proc.all_pids():
            if proc.parent_pid(pid) == launcher.pid and proc.ns_pid(pid) == 1:
                return pid
        if launcher.poll() is not None:
            break
        time.sleep(0.005)
    raise LabError(
        f"lab host {record.name} did not start: {_log_tail(log)}",
        hint=f"see {log}",
    )


def wait_ready(paths: LabPaths, record: HostRecord, pid: int, timeout: float = READY_TIMEOUT) -> None:
    """Wait until the host's sshd listens on port 22."""
    log = paths.host_dir(record.name) / "sshd.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.is_running(pid):
            raise LabError(
                f"lab host {record.name} exited while starting: {_log_tail(log)}",
                hint=f"see {log}",
            )
        if listening_on_22(pid) and proc.comm(pid) == "sshd":
            return
        time.sleep(0.01)
    raise LabError(
        f"lab host {record.name}: sshd not listening after {timeout:g} s: {_log_tail(log)}",
        hint=f"see {log}",
    )


def listening_on_22(pid: int) -> bool:
    try:
        table = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    for row in table:
        fields = row.split()
        if len(fields) > 3 and fields[1].endswith(":0016") and fields[3] == "0A":
            return True
    return False


def is_alive(pid: int | None, ns_inode: int | None) -> bool:
    """True when `pid` is a running sshd, PID 1 of a host, in the namespace `ns_inode`."""
    if pid is None or ns_inode is None or not proc.is_running(pid):
        return False
    return proc.netns_inode_of(pid) == ns_inode and proc.ns_pid(pid) == 1 and proc.comm(pid) == "sshd"


def _log_tail(log: Path) -> str:
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines()]
    except OSError:
        return "no log"
    lines = [line for line in lines if line]
    return lines[-1] if lines else "no output"
