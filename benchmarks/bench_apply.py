"""Benchmark: `cloudcast apply` converge time on the local lab, hosts already up.

For each size N: the lab hosts are created first (`apply --skip-bootstrap`, untimed), then
`apply` is timed (Terraform no-op plan + SSH bootstrap of every node + N*(N-1) verify probes),
then `apply` with no change (best of three). One node in five is behind NAT. Needs root.

    python benchmarks/bench_apply.py [--sizes 5 10 20 40]

Targets on the 2-core machine: 20 nodes converge in <= 10 s; no-change re-apply of 20 in <= 2 s.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def spec(n: int) -> dict[str, object]:
    nodes = [{"name": f"h{i}", **({"behind_nat": True} if i % 5 == 4 else {})} for i in range(n)]
    return {"name": f"bench{n}", "network": {"overlay": "10.15.0.0/22"}, "sites": [{"name": "lab", "provider": "lab", "nodes": nodes}]}


def cloudcast(*args: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "cloudcast", *args], env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"cloudcast {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[5, 10, 20, 40])
    args = ap.parse_args()
    env = {**os.environ, "CLOUDCAST_LAB_PREFIX": "ccbench", "CI": "1"}
    rows = []
    # only one lab can own the simulated internet: queue behind lab test sessions
    lock = os.open("/run/cloudcast/lab-tests.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        for n in args.sizes:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "spec.json"
                path.write_text(json.dumps(spec(n)))
                common = [str(path), "--auto-approve", "--workdir", str(Path(tmp) / "wd")]
                cloudcast("apply", *common, "--skip-bootstrap", env=env)
                converge = cloudcast("apply", *common, env=env)
                again = min(cloudcast("apply", *common, env=env) for _ in range(3))
                cloudcast("destroy", *common, env=env)
                rows.append((n, n * (n - 1), converge, again))
                print(f"{n:>3} nodes  {n * (n - 1):>5} pairs  converge {converge:6.2f} s  no-change re-apply {again:5.2f} s", flush=True)
    finally:
        subprocess.run([sys.executable, "-m", "cloudcast", "lab", "down"], env=env, capture_output=True)
        os.close(lock)
    print("\n| nodes | ordered pairs verified | converge (s) | no-change re-apply (s) |")
    print("|---|---|---|---|")
    for n, pairs, converge, again in rows:
        print(f"| {n} | {pairs} | {converge:.2f} | {again:.2f} |")


if __name__ == "__main__":
    main()
