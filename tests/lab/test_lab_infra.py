"""The local lab itself: hosts, simulated internet, NAT, teardown, CLI and the tf/lab module.

Builds real namespaces, sshd and wireguard-go; needs root (skipped locally without it, a
failure under CI).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

import cloudcast
from cloudcast import lab
from cloudcast.errors import LabError
from cloudcast.lab import netns, proc
from cloudcast.lab.registry import LabPaths

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
PUBLIC, NATTED, DOUBLE = "host1", "host2", "host3"


# --- helpers --------------------------------------------------------------------------------


def ssh_run(prefix: str, host: lab.LabHost, command: str) -> str:
    """Run `command` on a lab host over real SSH with the controller key; return stdout."""
    key = paramiko.Ed25519Key.from_private_key_file(str(lab.controller_key(prefix)))
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # a throwaway test host
    try:
        client.connect(
            host.ssh_host,
            port=host.ssh_port,
            username=host.ssh_user,
            pkey=key,
            timeout=10,
            allow_agent=False,
            look_for_keys=False,
        )
        _, stdout, stderr = client.exec_command(command, timeout=10)
        out = stdout.read().decode()
        assert stdout.channel.recv_exit_status() == 0, stderr.read().decode()
        return out
    finally:
        client.close()


def sh(prefix: str, name: str, script: str, *, input: str | None = None) -> str:
    result = lab.exec_in(name, ["sh", "-c", script], prefix, input=input, timeout=20)
    assert result.returncode == 0, f"{name}: {script}: {result.stderr}"
    return result.stdout


def popen_in(prefix: str, name: str, argv: list[str]) -> subprocess.Popen[str]:
    """A background process inside a host's mount, UTS and network namespaces (e.g. a listener).

    Not its PID namespace: `nsenter -p` would fork, and killing nsenter would orphan the
    listener (holding our pipes open) instead of ending it.
    """
    host = lab.status(prefix).host(name)
    assert host is not None and host.pid is not None
    return subprocess.Popen(
        ["nsenter", "-t", str(host.pid), "-m", "-u", "-n", "--", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def wait_for(check: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def listening(prefix: str, name: str, proto: str, port: int) -> bool:
    flag = "-Hltn" if proto == "tcp" else "-Hlun"
    out = lab.exec_in(name, ["ss", flag, f"sport = :{port}"], prefix).stdout
    return bool(out.strip())


def tcp_banner(address: str, timeout: float = 1.0) -> bytes | None:
    try:
        with socket.create_connection((address, 22), timeout=timeout) as conn:
            return conn.recv(64)
    except OSError:
        return None


def leftovers(prefix: str) -> list[str]:
    """Everything of lab `prefix` still on the system (empty when `down` did its job)."""
    paths = LabPaths(prefix)
    found = [f"namespace {ns}" for ns in netns.names() if ns.startswith(paths.ns_prefix)]
    if Path("/sys/class/net", paths.root_link).exists():
        found.append(f"root link {paths.root_link}")
    for pid in proc.all_pids():
        line = " ".join(proc.cmdline(pid))
        if proc.is_running(pid) and (paths.marker in line or str(paths.state_dir) + "/" in line):
            found.append(f"process {pid}: {line}")
    mounts = subprocess.run(
        ["findmnt", "-rn", "-o", "TARGET,SOURCE"], capture_output=True, text=True, check=True
    ).stdout
    found += [f"mount {m}" for m in mounts.splitlines() if f"{prefix}-" in m or f"lab-{prefix}" in m]
    if paths.state_dir.exists():
        found.append(f"state dir {paths.state_dir}")
    if paths.lock_file.exists():
        found.append(f"lock file {paths.lock_file}")
    routes = subprocess.run(
        ["ip", "-4", "route", "show", "root", "198.18.0.0/15"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found += [f"route {r}" for r in routes.splitlines() if f"{prefix}0" in r]
    return found


# --- without root -----------------------------------------------------------------------------


def test_missing_privileges_are_named_plainly() -> None:
    with pytest.raises(LabError) as caught:
        proc.require_privileges(capabilities=0)
    assert "needs root" in caught.value.message
    assert "CAP_NET_ADMIN" in caught.value.message
    assert caught.value.hint and "sudo" in caught.value.hint


def test_bad_prefix_name_and_ip_are_refused() -> None:
    with pytest.raises(LabError, match="invalid lab prefix"):
        lab.status(prefix="Bad-Prefix")
    from cloudcast.lab.registry import check_name, check_public_ip

    with pytest.raises(LabError, match=r"must lie in 198\.18\.0\.0/15"):
        check_public_ip("10.1.2.3")
    with pytest.raises(LabError, match="must lie in"):
        check_public_ip("198.18.0.1")
    with pytest.raises(LabError, match="invalid lab host name"):
        check_name("web1-r1")


# --- one shared lab: host1 public, host2 behind NAT, host3 behind double NAT -----------------


@pytest.fixture(scope="class")
def lab3(class_lab_prefix: str) -> Iterator[str]:
    lab.up(hosts=3, nat=1, double_nat=1, prefix=class_lab_prefix)
    yield class_lab_prefix


class TestSharedLab:
    def test_hosts_are_alive_with_the_documented_shape(self, lab3: str) -> None:
        status = lab.status(lab3)
        assert status.internet
        assert [(h.name, h.nat, h.public_ip, h.private_ip) for h in status.hosts] == [
            ("host1", "none", "198.19.0.11", "198.19.0.11"),
            ("host2", "nat", "198.19.0.12", "100.64.1.2"),
            ("host3", "double", "198.19.0.13", "100.65.2.2"),
        ]
        assert all(h.alive and h.pid and h.ssh_port == 22 for h in status.hosts)
        assert [h.routers for h in status.hosts][1:] == [
            (f"{lab3}-host2-r1",),
            (f"{lab3}-host3-r1", f"{lab3}-host3-r2"),
        ]
        assert json.loads(json.dumps(status.to_json()))["hosts"][2]["instance_id"] == (f"lab:{lab3}-host3")
        # The root namespace got one link with one address, and one route: nothing else.
        link = subprocess.run(["ip", "-j", "addr", "show", "dev", f"{lab3}0"], capture_output=True, text=True)
        addresses = [a["local"] for a in json.loads(link.stdout)[0]["addr_info"]]
        assert addresses == ["198.18.0.2"]

    def test_controller_sshes_into_every_host(self, lab3: str) -> None:
        for host in lab.status(lab3).hosts:
            out = ssh_run(
                lab3,
                host,
                "hostname; ip -4 -o addr show dev eth0; echo env=$WG_QUICK_USERSPACE_IMPLEMENTATION",
            )
            lines = out.splitlines()
            assert lines[0] == host.name
            assert f"inet {host.private_ip}/" in lines[1]
            assert lines[2] == "env=wireguard-go"

    def test_nat_hosts_reach_out_from_their_public_ip(self, lab3: str) -> None:
        listener = popen_in(
            lab3,
            PUBLIC,
            [
                "socat",
                "-T5",
                "TCP-LISTEN:7000,bind=198.19.0.11,reuseaddr,fork",
                "SYSTEM:echo $SOCAT_PEERADDR",
            ],
        )
        try:
            wait_for(lambda: listening(lab3, PUBLIC, "tcp", 7000), what="tcp listener")
            for name, public_ip in ((NATTED, "198.19.0.12"), (DOUBLE, "198.19.0.13")):
                seen = sh(lab3, name, "socat -T3 - TCP:198.19.0.11:7000 </dev/null").strip()
                assert seen == public_ip, f"{name} appeared as {seen!r}"
        finally:
            listener.kill()
            listener.communicate(timeout=5)

    def test_nat_hosts_get_no_unsolicited_udp(self, lab3: str) -> None:
        targets = {
            PUBLIC: ("198.19.0.11", 9001),
            NATTED: ("198.19.0.12", 9002),
            DOUBLE: ("198.19.0.13", 9003),
        }
        receivers = {
            name: popen_in(lab3, name, ["timeout", "2", "socat", "-u", f"UDP-RECV:{port}", "-"])
            for name, (_, port) in targets.items()
        }
        try:
            for name, (_, port) in targets.items():
                wait_for(lambda n=name, p=port: listening(lab3, n, "udp", p), what=f"udp listener on {name}")
            for name, (address, port) in targets.items():
                sender = NATTED if name == PUBLIC else PUBLIC
                sh(lab3, sender, f"echo knock | socat -u - UDP-SENDTO:{address}:{port}")
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.sendto(b"knock\n", (address, port))  # from the controller too
            got = {name: r.communicate(timeout=5)[0] for name, r in receivers.items()}
        finally:
            for receiver in receivers.values():
                receiver.kill()
        assert "knock" in got[PUBLIC]  # the probe works...
        assert got[NATTED] == "" and got[DOUBLE] == ""  # ...and NAT lets nothing in
        # Nor any other TCP port: only 22 is forwarded.
        probe = sh(
            lab3, PUBLIC, "socat -T1 - TCP:198.19.0.12:7000,connect-timeout=1 </dev/null 2>&1; echo rc=$?"
        )
        assert "rc=0" not in probe

    def test_hosts_have_their_own_etc_run_tmp_root(self, lab3: str) -> None:
        marker = f"cc-marker-{os.getpid()}"
        sh(lab3, PUBLIC, f"for d in /etc /run /tmp /root /var/lib; do echo x > $d/{marker}; done")
        for d in ("/etc", "/run", "/tmp", "/root", "/var/lib"):
            assert sh(lab3, PUBLIC, f"cat {d}/{marker}") == "x\n"
            assert sh(lab3, NATTED, f"test -e {d}/{marker} && echo yes || echo no") == "no\n"
            assert not Path(d, marker).exists(), f"{d}/{marker} leaked into this machine"
        assert sh(lab3, NATTED, "hostname").strip() == NATTED
        assert sh(lab3, PUBLIC, "cat /etc/hostname").strip() == PUBLIC
        # Each host is PID 1 = sshd of its own PID namespace.
        assert sh(lab3, PUBLIC, "cat /proc/1/comm").strip() == "sshd"

    def test_ip_forward_is_settable_per_host(self, lab3: str) -> None:
        before = Path("/proc/sys/net/ipv4/ip_forward").read_text()
        assert sh(lab3, DOUBLE, "sysctl -w net.ipv4.ip_forward=1").strip().endswith("= 1")
        assert sh(lab3, NATTED, "cat /proc/sys/net/ipv4/ip_forward").strip() == "0"
        assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == before

    def test_wireguard_go_runs_in_two_hosts_at_once(self, lab3: str) -> None:
        keys = {
            name: sh(
                lab3,
                name,
                "umask 077; mkdir -p /etc/wireguard; wg genkey > /etc/wireguard/cc0.key; "
                "wg pubkey < /etc/wireguard/cc0.key",
            ).strip()
            for name in (PUBLIC, NATTED)
        }
        configs = {
            PUBLIC: "[Interface]\nAddress = 10.99.0.1/24\nListenPort = 51820\n"
            "PostUp = wg set %i private-key /etc/wireguard/cc0.key\n"
            f"[Peer]\nPublicKey = {keys[NATTED]}\nAllowedIPs = 10.99.0.2/32\n",
            NATTED: "[Interface]\nAddress = 10.99.0.2/24\n"
            "PostUp = wg set %i private-key /etc/wireguard/cc0.key\n"
            f"[Peer]\nPublicKey = {keys[PUBLIC]}\nAllowedIPs = 10.99.0.1/32\n"
            "Endpoint = 198.19.0.11:51820\nPersistentKeepalive = 5\n",
        }
        try:
            for name, config in configs.items():
                # No env var here: sshd (and exec_in) set WG_QUICK_USERSPACE_IMPLEMENTATION.
                sh(lab3, name, "cat > /etc/wireguard/cc0.conf && wg-quick up cc0", input=config)
            for name in (PUBLIC, NATTED):
                assert sh(lab3, name, "wg show interfaces").split() == ["cc0"]
                assert sh(lab3, name, "wg show cc0 public-key").strip() == keys[name]
                assert sh(lab3, name, "ls /run/wireguard").split() == ["cc0.sock"]
            assert not Path("/run/wireguard/cc0.sock").exists()
            # The NATed side starts the tunnel; then both directions work.
            sh(lab3, NATTED, "ping -c1 -W1 10.99.0.1 >/dev/null || ping -c3 -i0.3 -W2 10.99.0.1")
            sh(lab3, PUBLIC, "ping -c2 -i0.2 -W2 10.99.0.2")
        finally:
            for name in (PUBLIC, NATTED):
                lab.exec_in(name, ["wg-quick", "down", "cc0"], lab3)

    def test_up_again_changes_nothing(self, lab3: str) -> None:
        paths = LabPaths(lab3)
        before = lab.status(lab3)
        registry = paths.registry_file.read_text()
        again = lab.up(hosts=3, nat=1, double_nat=1, prefix=lab3)
        assert [h.pid for h in again] == [h.pid for h in before.hosts]
        assert lab.status(lab3) == before
        assert paths.registry_file.read_text() == registry
        same = lab.host_up(NATTED, "198.19.0.12", "nat", prefix=lab3)
        assert same.pid == before.hosts[1].pid

    def test_another_lab_cannot_take_the_range(self, lab3: str) -> None:
        other = "cctest" + "zz" + lab3[-2:]
        try:
            with pytest.raises(LabError, match="another lab"):
                lab.up(prefix=other)
        finally:
            lab.down(other)
        assert lab.status(lab3).internet

    def test_cut_and_uncut(self, lab3: str) -> None:
        assert tcp_banner("198.19.0.12", 3.0)
        lab.cut(NATTED, lab3)
        try:
            assert lab.status(lab3).host(NATTED).cut
            assert tcp_banner("198.19.0.12", 0.5) is None
            assert "rc=0" not in sh(
                lab3,
                PUBLIC,
                "ping -c1 -W1 198.19.0.13 >/dev/null; "
                "socat -T1 - TCP:198.19.0.12:22,connect-timeout=1 "
                "</dev/null >/dev/null 2>&1; echo rc=$?",
            )
        finally:
            lab.uncut(NATTED, lab3)
        assert tcp_banner("198.19.0.12", 3.0)

    def test_killed_host_keeps_its_network_and_comes_back(self, lab3: str) -> None:
        before = lab.status(lab3).host(DOUBLE)
        assert before is not None and before.pid
        hostkey = sh(lab3, DOUBLE, "cat /etc/ssh/cloudcast_host_ed25519_key.pub")
        lab.kill_host(DOUBLE, lab3)
        dead = lab.status(lab3).host(DOUBLE)
        assert dead is not None and not dead.alive
        assert not proc.is_running(before.pid)
        addr = subprocess.run(
            ["ip", "-n", dead.ns, "-4", "-o", "addr", "show", "dev", "eth0"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "100.65.2.2/24" in addr
        with pytest.raises(LabError, match="not running"):
            lab.exec_in(DOUBLE, ["true"], lab3)
        back = lab.host_up(DOUBLE, "198.19.0.13", "double", prefix=lab3)
        assert back.alive and back.pid != before.pid
        assert sh(lab3, DOUBLE, "cat /etc/ssh/cloudcast_host_ed25519_key.pub") == hostkey
        assert ssh_run(lab3, back, "hostname").strip() == DOUBLE

    def test_cli_host_up_status_and_host_down(self, lab3: str, cli: Callable[..., Any]) -> None:
        inet_links = subprocess.run(
            ["ip", "-n", f"{lab3}-inet", "-o", "link"], capture_output=True, text=True
        ).stdout.count("\n")
        key = Path(str(lab.controller_key(lab3)) + ".pub").read_text().strip()
        extra_key = key.replace("controller", "operator")
        result = cli(
            "lab",
            "host-up",
            "extra",
            "--ip",
            "198.19.3.3",
            "--nat",
            "nat",
            "--lan-index",
            "9",
            "--authorized-key",
            extra_key,
            "--prefix",
            lab3,
            "--json",
        )
        assert result.code == 0, result.err
        host = json.loads(result.out)
        assert host["private_ip"] == "100.64.9.2" and host["alive"]
        auth = (LabPaths(lab3).host_dir("extra") / "root/.ssh/authorized_keys").read_text()
        assert extra_key in auth and key in auth
        table = cli("lab", "status", environ={"CLOUDCAST_LAB_PREFIX": lab3})
        assert table.code == 0 and "extra" in table.out and "100.64.9.2" in table.out
        down = cli("lab", "host-down", "extra", "--prefix", lab3)
        assert down.code == 0 and "removed" in down.out
        assert not any(ns.startswith(f"{lab3}-extra") for ns in netns.names())
        after = subprocess.run(
            ["ip", "-n", f"{lab3}-inet", "-o", "link"], capture_output=True, text=True
        ).stdout.count("\n")
        assert after == inet_links
        bad = cli("lab", "host-up", "x", "--ip", "10.0.0.1", "--prefix", lab3)
        assert bad.code == 1 and "198.18.0.0/15" in bad.err


# --- teardown ---------------------------------------------------------------------------------


def test_down_leaves_nothing(lab_prefix: str) -> None:
    lab.up(hosts=2, nat=1, prefix=lab_prefix)
    sh(lab_prefix, "host2", "wireguard-go cc0 && wg show interfaces")  # a daemon to reap
    assert leftovers(lab_prefix)
    report = lab.down(lab_prefix)
    assert len(report.namespaces) == 4 and report.root_link and report.state_dir
    assert leftovers(lab_prefix) == []
    again = lab.down(lab_prefix)
    assert again.namespaces == () and not again.state_dir


def test_down_after_a_crash_mid_way(lab_prefix: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(cloudcast.__file__).parents[1])}
    builder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from cloudcast import lab; lab.up(hosts=10, nat=3, double_nat=3, prefix={lab_prefix!r})",
        ],
        env=env,
    )
    try:
        wait_for(
            lambda: len([n for n in netns.names() if n.startswith(lab_prefix)]) >= 6,
            timeout=20,
            what="the builder to get half way",
        )
    finally:
        builder.send_signal(signal.SIGKILL)
        builder.wait()
    # Make it worse: a stray namespace with a process in it, and no registry.
    stray = f"{lab_prefix}-stray"
    subprocess.run(["ip", "netns", "add", stray], check=True)
    sleeper = subprocess.Popen(["ip", "netns", "exec", stray, "sleep", "300"])
    LabPaths(lab_prefix).registry_file.unlink(missing_ok=True)
    assert lab.status(lab_prefix).hosts == ()
    try:
        lab.down(lab_prefix)
        assert sleeper.wait(timeout=5) == -signal.SIGKILL
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
    assert leftovers(lab_prefix) == []


# --- tf/lab through real Terraform ------------------------------------------------------------


def test_tf_lab_module_apply_and_destroy(lab_prefix: str, tmp_path: Path) -> None:
    terraform = shutil.which("terraform") or shutil.which("tofu")
    if terraform is None:
        message = "terraform (or tofu) is not installed"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path / "root"
    root.mkdir()
    config = {
        "module": {
            "lab": {
                "source": str(ROOT / "tf" / "lab"),
                "site": "home",
                "name_prefix": "t-home-",
                "lab_command": [sys.executable, "-m", "cloudcast"],
                "lab_prefix": lab_prefix,
                "ssh_public_key": "",
                "nodes": {
                    "pub1": {"public_ip": "198.19.0.31", "nat": "none", "role": "gateway"},
                    "nat1": {"public_ip": "198.19.0.32", "nat": "nat", "role": "member", "lan_index": 7},
                    "dbl1": {"public_ip": "198.19.0.33", "nat": "double", "role": "member", "lan_index": 8},
                },
            }
        },
        "output": {
            "nodes": {"value": "${module.lab.nodes}"},
            "vpc_id": {"value": "${module.lab.vpc_id}"},
            "route_table_ids": {"value": "${module.lab.route_table_ids}"},
        },
    }
    (root / "main.tf.json").write_text(json.dumps(config, indent=2))
    (tmp_path / "terraformrc").write_text("")
    env = {
        **os.environ,
        "CHECKPOINT_DISABLE": "1",
        "TF_IN_AUTOMATION": "1",
        "TF_CLI_CONFIG_FILE": str(tmp_path / "terraformrc"),
        "PYTHONPATH": str(Path(cloudcast.__file__).parents[1]),
    }

    def tf(*args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [terraform, *args, "-no-color"]
            + (["-input=false"] if args[0] in ("init", "plan", "apply", "destroy") else []),
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"terraform {args[0]}: {result.stderr}\n{result.stdout}"
        return result

    tf("init")
    tf("validate")
    try:
        tf("apply", "-auto-approve")
        outputs = json.loads(tf("output", "-json").stdout)
        nodes = outputs["nodes"]["value"]
        assert outputs["vpc_id"]["value"] == "lab:home"
        assert outputs["route_table_ids"]["value"] == []
        status = lab.status(lab_prefix)
        assert sorted(h.name for h in status.hosts if h.alive) == ["dbl1", "nat1", "pub1"]
        for name, node in nodes.items():
            host = status.host(name)
            assert host is not None
            assert node == {
                "name": name,
                "public_ip": host.public_ip,
                "private_ip": host.private_ip,
                "ssh_host": host.public_ip,
                "ssh_port": 22,
                "ssh_user": "root",
                "instance_id": f"lab:{host.ns}",
                "eni_id": "",
            }
        assert nodes["dbl1"]["private_ip"] == "100.65.8.2"
        assert ssh_run(lab_prefix, status.host("nat1"), "hostname").strip() == "nat1"
        # Nothing to change on a second look.
        assert "No changes." in tf("plan").stdout
    finally:
        tf("destroy", "-auto-approve")
    assert lab.status(lab_prefix).hosts == ()
    assert not [ns for ns in netns.names() if ns.startswith(f"{lab_prefix}-") and not ns.endswith("-inet")]
