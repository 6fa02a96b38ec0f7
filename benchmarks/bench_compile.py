"""Benchmark: `cloudcast compile` of a generated 200-node full mesh (19,900 pairs).

Runs the real CLI in a subprocess (import time included, as a user sees it) and reports wall
time and peak RSS. Target: under 2 s and under 300 MB on the 2-core CI machine.

    python benchmarks/bench_compile.py [--nodes 200] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_spec(nodes: int) -> dict[str, object]:
    providers = [("aws", "us-east-1"), ("linode", "us-east"), ("vultr", "ewr"), ("static", None)]
    per = nodes // len(providers)
    sites = []
    count = 0
    for i, (provider, region) in enumerate(providers):
        site_nodes = []
        for _ in range(per if i < len(providers) - 1 else nodes - count):
            node: dict[str, object] = {"name": f"n{count}"}
            if provider == "static":
                node["ssh"] = {"host": f"host{count}.example.net"}
            site_nodes.append(node)
            count += 1
        site: dict[str, object] = {"name": f"site{i}", "provider": provider, "nodes": site_nodes}
        if region:
            site["region"] = region
        sites.append(site)
    return {
        "name": "bench",
        "network": {"overlay": "10.15.0.0/16"},
        "ssh": {"private_key": "~/.ssh/id_ed25519"},
        "sites": sites,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        (home / ".ssh").mkdir(parents=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / ".ssh" / "id_ed25519")],
            check=True,
        )
        spec = Path(tmp) / "mesh.json"
        spec.write_text(json.dumps(make_spec(args.nodes)))
        env = {**os.environ, "HOME": str(home)}
        times = []
        for run in range(args.runs):
            out = Path(tmp) / f"out{run}"
            start = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "cloudcast",
                    "compile",
                    str(spec),
                    "-o",
                    str(out),
                    "--workdir",
                    str(Path(tmp) / f"wd{run}"),
                ],
                check=True,
                env=env,
                stdout=subprocess.DEVNULL,
            )
            times.append(time.perf_counter() - start)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        plan = json.loads((Path(tmp) / "out0" / "cloudcast.plan.json").read_text())
        pairs = len({tuple(sorted((n["name"], p["peer"]))) for n in plan["nodes"] for p in n["peers"]})
        print(
            f"compile {args.nodes} nodes, {pairs} pairs: best {min(times):.2f} s, median {sorted(times)[len(times) // 2]:.2f} s, peak RSS {peak_mb:.0f} MB"
        )


if __name__ == "__main__":
    main()
