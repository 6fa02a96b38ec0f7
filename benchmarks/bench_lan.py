"""LAN-to-LAN latency and throughput over WireGuard gateways and over IPsec gateways, beside the
underlay's, on the local lab (issue 5's closing note). Not a test: nothing is asserted.

For each transport the matching example (examples/lab-gateways.json, examples/lab-ipsec.json) is
applied on a fresh lab, then from a member of site east to a member of site west:

- LAN to LAN: the members' LAN addresses, so traffic goes member -> gateway -> tunnel ->
  gateway -> member;
- underlay: the same two hosts' eth0 addresses on the simulated internet (no tunnel, no gateway).

Latency is the average of `ping -c 50 -i 0.02`; throughput one `iperf3 -t SECONDS` TCP stream
(receiver side). Run as root: `python benchmarks/bench_lan.py [--seconds 5]`.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from labbench import PREFIX, ROOT, address, cloudcast, iperf, lab, lab_to_ourselves, sh

CASES = (
    # transport, example, source member, destination member
    ("WireGuard", "lab-gateways.json", "east1", "west1"),
    ("IPsec", "lab-ipsec.json", "seast1", "swest1"),
)


@dataclass
class Measure:
    path: str
    ping_ms: float
    mbit_s: float


def ping(src: str, dst: str) -> float:
    out = sh(src, f"ping -n -q -c 50 -i 0.02 -W 2 {dst}").stdout
    line = next(ln for ln in out.splitlines() if "min/avg/max" in ln)
    return float(line.split("=")[1].split("/")[1])


def run_case(transport: str, example: str, src: str, dst: str, seconds: int, work: Path) -> list[Measure]:
    spec = work / example
    shutil.copy(ROOT / "examples" / example, spec)
    state = work / f"{example}.state"
    cloudcast("apply", str(spec), "--auto-approve", "--workdir", str(state))
    try:
        out = []
        lan_dst = address(dst, "lan0")
        out.append(Measure(f"{transport}: LAN to LAN ({src} -> {dst})", ping(src, lan_dst), 0.0))
        out[-1].mbit_s = iperf(src, dst, lan_dst, seconds)
        under = address(dst, "eth0")
        out.append(Measure(f"underlay ({src} -> {dst}, eth0)", ping(src, under), iperf(src, dst, under, seconds)))
        return out
    finally:
        cloudcast("destroy", str(spec), "--auto-approve", "--workdir", str(state))
        lab.down(PREFIX)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="iperf3 run length (5)")
    args = parser.parse_args()
    rows: list[Measure] = []
    with lab_to_ourselves(), tempfile.TemporaryDirectory(prefix="bench-lan-") as tmp:
        for case in CASES:
            rows += run_case(*case, args.seconds, Path(tmp))
    width = max(len(r.path) for r in rows)
    print(f"{'path':<{width}}  {'ping avg (ms)':>13}  {'iperf3 (Mbit/s)':>15}")
    for r in rows:
        print(f"{r.path:<{width}}  {r.ping_ms:>13.3f}  {r.mbit_s:>15.0f}")


if __name__ == "__main__":
    main()
