"""VM lab hosts (issue 10): apply-to-verified for 3 and 6 VMs, reboot to rejoined, and LAN-to-LAN
throughput over kernel WireGuard and kernel ESP beside wireguard-go and kernel-libipsec on the
same VMs. Not a test: nothing is asserted. Needs root, QEMU and the image (`lab image build`).

Every figure here is bound by QEMU's software emulation (TCG: nested KVM fails), which makes a guest's
CPU work 10-20x slower than the host's: boot, dpkg, key generation and every byte of crypto.
Compare the rows with each other, not with cloud machines.

- mesh N: a WireGuard mesh of N VMs (one in three behind NAT). `hosts` is Terraform making the
  VMs (boot to SSH, from a fresh overlay each); `converge` the apply that installs the packages
  from the lab's mirror, brings cc0 up under systemd and verifies all N*(N-1) pairs.
- reboot: `lab host-reboot` of one VM (SSH back), then until it pings every peer over the
  overlay again, with no apply.
- LAN to LAN: two sites, each a VM gateway and a namespace member on the site LAN; one iperf3
  TCP stream member to member through both gateways. Then the gateways lose the kernel's
  datapath (the module is unloaded and refused) and `apply` moves them to the userspace one:
  the same VMs, the same path, wireguard-go or kernel-libipsec.

    python benchmarks/bench_vm.py [--sizes 3 6] [--seconds 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labbench import PREFIX, ROOT, address, cloudcast, iperf, lab, lab_to_ourselves, sh

from cloudcast import __version__
from cloudcast.lab import image, vm

#: what makes a guest's kernel datapath unavailable, so the bootstrapper falls back to userspace
NO_KERNEL = {
    "wireguard": "ip link del cc0 2>/dev/null; rmmod wireguard 2>/dev/null; "
    "echo 'install wireguard /bin/false' > /etc/modprobe.d/ccbench.conf",
    "ipsec": "systemctl stop strongswan 2>/dev/null; ip xfrm state flush; ip xfrm policy flush; "
    "rmmod esp4 2>/dev/null; echo 'install esp4 /bin/false' > /etc/modprobe.d/ccbench.conf",
}


@dataclass
class Figures:
    machine: dict[str, Any] = field(default_factory=dict)
    mesh: list[dict[str, Any]] = field(default_factory=list)
    reboot: dict[str, Any] = field(default_factory=dict)
    lan: list[dict[str, Any]] = field(default_factory=list)


def mesh_spec(n: int) -> dict[str, Any]:
    nodes = [{"name": f"v{i}", **({"behind_nat": True} if i % 3 == 2 else {})} for i in range(n)]
    return {
        "name": f"vmbench{n}",
        "network": {"overlay": "10.46.0.0/24", "domain": "vmb.internal"},
        "sites": [{"name": "vms", "provider": "lab", "machine": "vm", "nodes": nodes}],
    }


def lan_spec(transport: str) -> dict[str, Any]:
    return {
        "name": f"vmlan{transport[:2]}",
        "network": {"overlay": "10.47.0.0/24", "transport": transport, "topology": "gateways",
                    "domain": "vml.internal"},
        "sites": [
            {"name": "east", "provider": "lab", "cidr": "10.25.0.0/24",
             "nodes": [{"name": "bgw-east", "role": "gateway", "machine": "vm"}, {"name": "beast1"}]},
            {"name": "west", "provider": "lab", "cidr": "10.26.0.0/24",
             "nodes": [{"name": "bgw-west", "role": "gateway", "machine": "vm"}, {"name": "bwest1"}]},
        ],
    }  # fmt: skip


def timed(*args: str) -> float:
    start = time.perf_counter()
    cloudcast(*args)
    return time.perf_counter() - start


def write(work: Path, name: str, doc: dict[str, Any]) -> list[str]:
    spec = work / f"{name}.json"
    spec.write_text(json.dumps(doc))
    return [str(spec), "--auto-approve", "--workdir", str(work / f"{name}.state")]


def rejoined(host: str, peers: list[str], budget: float = 300) -> bool:
    deadline = time.monotonic() + budget
    pending = list(peers)
    while pending and time.monotonic() < deadline:
        pending = [p for p in pending if sh(host, f"ping -n -c 1 -W 1 {p}").returncode != 0]
        if pending:
            time.sleep(0.5)
    return not pending


def bench_mesh(n: int, work: Path, figures: Figures, *, reboot: bool) -> None:
    common = write(work, f"mesh{n}", mesh_spec(n))
    hosts = timed("apply", *common, "--skip-bootstrap")
    converge = timed("apply", *common)
    figures.mesh.append({"vms": n, "pairs": n * (n - 1), "hosts_s": round(hosts, 1),
                         "converge_s": round(converge, 1), "total_s": round(hosts + converge, 1)})  # fmt: skip
    print(f"mesh of {n} VMs: hosts {hosts:.1f} s, converge + verify {converge:.1f} s", flush=True)
    if reboot:
        peers = [address(f"v{i}", "cc0") for i in range(1, n)]
        start = time.perf_counter()
        ssh_back = lab.host_reboot("v0", PREFIX)
        ok = rejoined("v0", peers)
        total = time.perf_counter() - start
        figures.reboot = {"ssh_back_s": round(ssh_back, 1), "rejoined_s": round(total, 1), "rejoined": ok}
        print(f"reboot of v0: SSH back {ssh_back:.1f} s, pings all {n - 1} peers {total:.1f} s ({ok=})", flush=True)
    cloudcast("destroy", *common)
    lab.down(PREFIX)


def datapath(transport: str) -> str:
    if transport == "wireguard":
        go = sh("bgw-east", "pgrep -c -x wireguard-go").stdout.strip()
        return "wireguard-go" if go not in ("", "0") else "kernel WireGuard"
    libipsec = sh("bgw-east", "ip link show dev ipsec0").returncode == 0
    return "kernel-libipsec" if libipsec else "kernel ESP"


def bench_lan(transport: str, work: Path, figures: Figures, seconds: int) -> None:
    common = write(work, f"lan-{transport}", lan_spec(transport))
    cloudcast("apply", *common)
    try:
        dst = address("bwest1", "lan0")
        for round_ in ("kernel", "userspace"):
            if round_ == "userspace":
                for gw in ("bgw-east", "bgw-west"):
                    sh(gw, NO_KERNEL[transport])
                cloudcast("apply", *common)
            path = datapath(transport)
            mbit = iperf("beast1", "bwest1", dst, seconds, settle=0.5, slack=120)  # TCG is slow
            figures.lan.append({"transport": transport, "datapath": path, "mbit_s": round(mbit, 1)})
            print(f"LAN to LAN over {transport} ({path}): {mbit:.1f} Mbit/s", flush=True)
    finally:
        cloudcast("destroy", *common)
        lab.down(PREFIX)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 6])
    parser.add_argument("--seconds", type=int, default=5, help="iperf3 run length (5)")
    parser.add_argument("--json", type=Path, help="write the figures here (default benchmarks/results/)")
    args = parser.parse_args()
    figures = Figures(
        machine={"cores": os.cpu_count(), "load": os.getloadavg(), "python": platform.python_version(),
                 "cloudcast": __version__, "accel": " ".join(vm.accelerator(image.require())), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    )  # fmt: skip
    with lab_to_ourselves(), tempfile.TemporaryDirectory(prefix="bench-vm-") as tmp:
        for i, n in enumerate(args.sizes):
            bench_mesh(n, Path(tmp), figures, reboot=i == 0)
        for transport in ("wireguard", "ipsec"):
            bench_lan(transport, Path(tmp), figures, args.seconds)
    out = args.json or ROOT / "benchmarks" / "results" / f"vm-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(asdict(figures), indent=1) + "\n")
    print(f"figures written to {out}")


if __name__ == "__main__":
    main()
