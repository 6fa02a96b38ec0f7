"""How long traffic stops when a primary hub or gateway dies, with no `apply` (the failover
agents alone), on the local lab. Not a test: nothing is asserted.

For each case the example is applied on a fresh lab; a ping runs from SRC to DST every 0.1 s;
the primary is killed (its processes: sshd and wireguard-go); the outage is the time between
the last reply before the kill and the first reply after it.

- hub: examples/lab-hub.json, spoke1 -> spoke2 (through hub1, then hub2);
- gateways: examples/lab-gateways.json, member east1 -> member west1 (through gw-east, then
  the standby gw-east2: east1 re-routes, gw-west moves east's CIDR to gw-east2).

Run as root: `python benchmarks/bench_failover.py [--runs 3]`.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path

from labbench import PREFIX, ROOT, address, cloudcast, lab, lab_to_ourselves, sh

CASES = (
    # name, example, source, destination (address on the host), primary that dies
    ("hub", "lab-hub.json", "spoke1", ("spoke2", "cc0"), "hub1"),
    ("gateways", "lab-gateways.json", "east1", ("west1", "lan0"), "gw-east"),
)


def outage(src: str, dst: str, primary: str) -> float:
    """Seconds without a reply around killing `primary`, from one ping every 0.1 s.

    (One ping per process: a long-running ping quits at the first "net unreachable" that the
    killed gateway's namespace, still up in the lab, answers with.)
    """
    probe = f"end=$(($(date +%s) + 27)); while [ $(date +%s) -lt $end ]; do " \
        f"ping -n -c 1 -W 1 {dst} >/dev/null 2>&1 && date +%s.%N; sleep 0.1; done"
    result: list[str] = []
    pinger = threading.Thread(target=lambda: result.append(sh(src, probe, timeout=60).stdout))
    pinger.start()
    time.sleep(2)
    killed = time.time()
    lab.kill_host(primary, PREFIX)
    pinger.join()
    stamps = [float(t) for t in result[0].split()]
    before = max(t for t in stamps if t <= killed)
    after = [t for t in stamps if t > killed]
    return after[0] - before if after else float("inf")


def run_case(example: str, src: str, dst: tuple[str, str], primary: str, work: Path) -> float:
    spec = work / example
    shutil.copy(ROOT / "examples" / example, spec)
    state = work / f"{example}.state"
    cloudcast("apply", str(spec), "--auto-approve", "--workdir", str(state))
    try:
        return outage(src, address(*dst), primary)
    finally:
        lab.down(PREFIX)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per case (3)")
    args = parser.parse_args()
    results: dict[str, list[float]] = {}
    with lab_to_ourselves():
        for name, example, src, dst, primary in CASES:
            for _ in range(args.runs):
                with tempfile.TemporaryDirectory(prefix="bench-failover-") as tmp:
                    results.setdefault(name, []).append(run_case(example, src, dst, primary, Path(tmp)))
    print(f"{'case':<10} {'outage (s), each run':<28} median")
    for name, runs in results.items():
        each = ", ".join(f"{r:.1f}" for r in runs)
        print(f"{name:<10} {each:<28} {sorted(runs)[len(runs) // 2]:.1f}")


if __name__ == "__main__":
    main()
