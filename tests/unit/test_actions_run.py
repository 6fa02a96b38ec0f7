"""The run machinery without SSH: facts parsing, the one-round-trip script, fan-out, phases."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from cloudcast.bootstrap import bootstrap, parse_facts, teardown
from cloudcast.bootstrap.actions import Action
from cloudcast.bootstrap.desired import ManagedFile
from cloudcast.bootstrap.execute import StepFailed, build_script, execute
from cloudcast.bootstrap.facts import Facts, HostRoute, facts_script
from cloudcast.bootstrap.paths import Paths
from cloudcast.errors import BootstrapError
from cloudcast.inventory.hosts import Host
from cloudcast.ssh import Fleet, fan_out
from cloudcast.ssh.hostkeys import KnownHosts, known_hosts_name
from cloudcast.ssh.transport import ConnectError, Result, put_script
from cloudcast.state.store import Secrets, State
from tests.unit.bootstrap_cases import TOOLED, key_of, lab_inventory, lab_plan, psks

DUMP_FACTS = """\
tool=wg
tool=wg-quick
tool=ip
systemd=1
pubkey=PUBKEY=
iface=1
mtu=1420
addr=10.15.0.2/24
route_localnet=0
iface_pubkey=PUBKEY=
listen_port=51871
peer\tAAA=\t198.18.1.10:51871\t10.15.0.1/32\t1700000000\t100\t200\toff
peer\tBBB=\t(none)\t10.15.0.4/32,10.15.0.3/32\t0\t0\t0\t25
peer\tshort\tline
ip_forward=0
hash=abc123 /etc/wireguard/cc0.conf
hosts=MTI3LjAuMC4xIGxvY2FsaG9zdAo=
table=1
routes=[{"dst":"10.16.0.0/24","gateway":"10.20.0.5","dev":"eth0","flags":[]}]
now=1700000100
"""


def test_parse_facts() -> None:
    f = parse_facts(DUMP_FACTS)
    assert f.tools == {"wg", "wg-quick", "ip"} and f.systemd and not f.kernel_wg
    assert f.public_key == f.iface_public_key == "PUBKEY="
    assert f.iface and f.mtu == 1420 and f.addresses == ("10.15.0.2/24",) and f.listen_port == 51871
    assert [p.public_key for p in f.peers] == ["AAA=", "BBB="]
    a, b = f.peers
    assert a.endpoint == "198.18.1.10:51871" and a.keepalive is None and a.rx == 100
    assert b.endpoint is None and b.allowed_ips == ("10.15.0.3/32", "10.15.0.4/32") and b.keepalive == 25
    assert f.hashes == {"/etc/wireguard/cc0.conf": "abc123"}
    assert f.hosts == "127.0.0.1 localhost\n" and f.table and not f.enabled
    assert f.routes == (HostRoute("10.16.0.0/24", "10.20.0.5", "eth0"),) and f.now == 1700000100


def test_facts_script_never_returns_private_material() -> None:
    script = facts_script(Paths("cc0"))
    assert "tail -n +2 | cut -f1,3-" in script  # interface line (private key) and PSKs dropped
    assert "cat /etc/wireguard/cc0.key" not in script
    assert 'wg pubkey < "$K"' in script


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a private network namespace")
def test_facts_script_runs_on_an_empty_host() -> None:
    # valid POSIX sh, run in a throwaway network namespace: its kernel-WireGuard probe must
    # never create an interface in this machine's own namespace
    out = subprocess.run(
        ["unshare", "--net", "sh", "-s"],
        input=facts_script(Paths("ccnone9")),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    f = parse_facts(out.stdout)
    assert f.now > 0 and not f.iface and "sh" not in f.tools


def _files_of(script: str) -> dict[str, bytes]:
    """Decode the files a `build_script` script writes: path -> content."""
    staged = dict(
        re.findall(r"base64 -d > \"\$t(\d+)\" <<'CLOUDCAST_EOF'\n(.*?)\nCLOUDCAST_EOF", script, re.S)
    )
    moves = dict(re.findall(r'mv -f "\$t(\d+)" (\S+) ', script))
    return {path: base64.b64decode(staged[n]) for n, path in moves.items()}


def test_script_stages_all_files_before_any_command(tmp_path: Path) -> None:
    a = tmp_path / "a" / "one.conf"
    b = tmp_path / "two.conf"
    b.write_text("old")
    actions = [
        Action("run", "first command", f"test -f {a} && echo ran > {tmp_path}/ran"),
        Action("write", "write one", file=ManagedFile(str(a), b"secret one\n")),
        Action("write", "write two", file=ManagedFile(str(b), b"two\n", 0o644)),
    ]
    script = build_script(actions)
    assert _files_of(script) == {str(a): b"secret one\n", str(b): b"two\n"}
    out = subprocess.run(["sh", "-s"], input=script, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert a.read_bytes() == b"secret one\n" and oct(a.stat().st_mode & 0o777) == "0o600"
    assert b.read_text() == "two\n" and oct(b.stat().st_mode & 0o777) == "0o644"
    assert (tmp_path / "ran").read_text() == "ran\n"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "one.conf", "ran", "two.conf"]


def test_put_script_is_atomic_and_private(tmp_path: Path) -> None:
    target = tmp_path / "x" / "file"
    out = subprocess.run(["sh", "-c", put_script(str(target))], input=b"data", capture_output=True)
    assert out.returncode == 0 and target.read_bytes() == b"data"
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in target.parent.iterdir()] == ["file"]


class ShellTransport:
    """Runs scripts with the local sh (for executor tests only; never touches the network)."""

    name = "local"

    def run(self, cmd: str, *, stdin: bytes | None = None, timeout: float = 120.0) -> Result:
        out = subprocess.run(["sh", "-c", cmd], input=stdin, capture_output=True, timeout=timeout)
        return Result(out.returncode, out.stdout.decode(), out.stderr.decode())

    def put(self, path: str, data: bytes, mode: int = 0o600) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


def test_execute_names_the_failing_step_and_what_was_done(tmp_path: Path) -> None:
    actions = [
        Action("run", "step one", "true"),
        Action("run", "step two", "echo 'it broke' >&2; exit 3"),
        Action("run", "step three", f"touch {tmp_path}/never"),
        Action("write", "write f", file=ManagedFile(str(tmp_path / "f"), b"x")),
    ]
    with pytest.raises(StepFailed) as info:
        execute(ShellTransport(), actions)
    assert info.value.failed.description == "step two"
    assert [a.description for a in info.value.done] == ["write f", "step one"]
    assert "step two failed: it broke" in str(info.value)
    assert not (tmp_path / "never").exists()


def test_fan_out_keeps_order_bounds_parallelism_and_isolates_failures() -> None:
    active, peak = 0, 0
    lock = threading.Lock()

    def work(n: int) -> int:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.02)
        with lock:
            active -= 1
        if n == 3:
            raise ValueError("host 3 is down")
        return n * 10

    out = fan_out(range(8), work, key=str, parallel=3)
    assert list(out) == [str(n) for n in range(8)]
    assert peak <= 3
    assert out["3"].error is not None and "host 3" in str(out["3"].error)
    assert [o.value for k, o in out.items() if k != "3"] == [0, 10, 20, 40, 50, 60, 70]


def test_known_hosts_names_and_records(tmp_path: Path) -> None:
    import paramiko

    assert known_hosts_name("198.18.1.10", 22) == "198.18.1.10"
    assert known_hosts_name("198.18.1.10", 2222) == "[198.18.1.10]:2222"
    store = KnownHosts(tmp_path / "known_hosts")
    key = paramiko.Ed25519Key.from_private_key_file(str(_ed25519(tmp_path)))
    store.record("[198.18.1.10]:2222", key)
    store.record("[198.18.1.10]:2222", key)  # recorded once
    lines = (tmp_path / "known_hosts").read_text().splitlines()
    assert lines == [f"[198.18.1.10]:2222 ssh-ed25519 {key.get_base64()}"]
    assert oct((tmp_path / "known_hosts").stat().st_mode & 0o777) == "0o600"
    client = paramiko.SSHClient()
    store.load_into(client)
    assert client.get_host_keys().lookup("[198.18.1.10]:2222") is not None


def _ed25519(tmp_path: Path) -> Path:
    path = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


# --- the two phases, with a fake host per node ---------------------------------------------


def facts_text(f: Facts) -> str:
    lines = [f"tool={t}" for t in sorted(f.tools)]
    if f.public_key:
        lines.append(f"pubkey={f.public_key}")
    lines.append("hosts=" + base64.b64encode(f.hosts.encode()).decode())
    return "\n".join(lines) + "\n"


class FakeHost:
    """Answers the facts script from `facts`, records every other script, succeeds."""

    def __init__(self, name: str, facts: Facts) -> None:
        self.name = name
        self.facts = facts
        self.scripts: list[str] = []
        self.closed = False

    def run(self, cmd: str, *, stdin: bytes | None = None, timeout: float = 120.0) -> Result:
        script = (stdin or b"").decode()
        if 'echo "now=$(date +%s)"' in script:
            return Result(0, facts_text(self.facts), "")
        self.scripts.append(script)
        if "wg genkey" in script:
            self.facts = replace(self.facts, public_key=key_of(self.name))
        marks = "\n".join(f"@@cloudcast-done {n}" for n in range(50))
        return Result(0, marks, "")

    def put(self, path: str, data: bytes, mode: int = 0o600) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.closed = True

    def written(self) -> dict[str, bytes]:
        return {k: v for s in self.scripts for k, v in _files_of(s).items()}


@dataclass(frozen=True)
class Dial:
    """A connector over a function that hands out fake hosts."""

    fn: Callable[[Host], FakeHost]

    def connect(self, host: Host) -> FakeHost:
        return self.fn(host)


def test_bootstrap_configures_peers_of_an_unreachable_host_with_its_last_key(tmp_path: Path) -> None:
    plan = lab_plan()
    inv = lab_inventory(plan)
    fakes = {n.name: FakeHost(n.name, TOOLED) for n in plan.nodes}

    def connect(host: Host) -> FakeHost:
        if host.name == "delta":
            raise ConnectError("node delta (198.18.1.13:22): connection refused (after 60 s)")
        return fakes[host.name]

    state = State(public_keys={"delta": key_of("delta")})
    result = bootstrap(plan, inv, Secrets(psk=psks(plan)), state, Fleet(Dial(connect)))
    assert [h.name for h in result.failed] == ["delta"]
    assert result.host("delta").error == "node delta (198.18.1.13:22): connection refused (after 60 s)"
    assert result.public_keys == {n: key_of(n) for n in ("alpha", "bravo", "charlie")}
    assert result.warnings == ["delta failed; its peers keep its last known key"]
    bravo = result.host("bravo")
    assert bravo.ok and bravo.public_key == key_of("bravo")
    assert bravo.actions[0] == "generate the WireGuard key pair in /etc/wireguard/cc0.key"
    assert "bring up cc0 (wireguard-go)" in bravo.actions
    conf = fakes["bravo"].written()["/etc/wireguard/cc0.conf"].decode()
    assert f"PublicKey = {key_of('delta')}" in conf
    assert all(f.closed for f in fakes.values() if f.name != "delta")


def test_bootstrap_leaves_out_a_peer_never_reached(tmp_path: Path) -> None:
    plan = lab_plan()
    fakes = {n.name: FakeHost(n.name, TOOLED) for n in plan.nodes}

    def connect(host: Host) -> FakeHost:
        if host.name == "delta":
            raise ConnectError("node delta: timed out")
        return fakes[host.name]

    result = bootstrap(plan, lab_inventory(plan), Secrets(psk=psks(plan)), State(), Fleet(Dial(connect)))
    conf = fakes["alpha"].written()["/etc/wireguard/cc0.conf"].decode()
    assert "# delta" not in conf and "# charlie" in conf
    assert result.warnings == [] and len(result.failed) == 1


def test_teardown_only_touches_the_named_hosts(tmp_path: Path) -> None:
    plan = lab_plan()
    seen: list[str] = []

    def connect(host: Host) -> FakeHost:
        seen.append(host.name)
        return FakeHost(host.name, replace(TOOLED, public_key=key_of(host.name)))

    result = teardown(plan, lab_inventory(plan), Fleet(Dial(connect)), only={"bravo"})
    assert seen == ["bravo"] and [h.name for h in result.hosts] == ["bravo"]
    assert result.hosts[0].actions == ["remove /etc/wireguard/cc0.key"]


def test_unknown_transport_is_refused_up_front(tmp_path: Path) -> None:
    plan = replace(lab_plan(), transport="openvpn")

    def connect(host: Host) -> FakeHost:
        raise AssertionError("no host may be touched")

    with pytest.raises(BootstrapError, match="openvpn"):
        bootstrap(plan, lab_inventory(plan), Secrets(), State(), Fleet(Dial(connect)))
