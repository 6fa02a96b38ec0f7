"""Benchmark: `cloudcast validate` of generated specs that stress the cross-checks and the loader.

Cases (each a real CLI run in a subprocess, import time included, as a user sees it):
  sites-10000   10,000 lab sites with their own CIDRs (the overlap check was pairwise: 38 s)
  dup-3000      3,000 duplicate node names (the report is cut to 20 problems)
  yaml-bomb     a 12 KB YAML alias bomb (was 800 MB and never ended)
Target (issue 8): 10,000 sites in under 2 s; every hostile spec in under 5 s and 300 MB.

    python benchmarks/bench_validate.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def sites_spec(count: int) -> dict[str, object]:
    sites = [
        {"name": f"s{i}", "provider": "lab", "cidr": f"10.{i // 256}.{i % 256}.0/24", "nodes": [{"name": f"n{i}"}]}
        for i in range(count)
    ]
    return {"name": "big", "network": {"overlay": "172.16.0.0/16"}, "sites": sites}


def dup_spec(count: int) -> dict[str, object]:
    nodes = [{"name": "same"} for _ in range(count)]
    return {"name": "dup", "sites": [{"name": "a", "provider": "lab", "nodes": nodes}]}


BOMB = "a: &a [" + ",".join(["x"] * 9) + "]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8)
)


def run(path: Path) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MB) and exit code of one `cloudcast validate PATH`."""
    # a fresh parent per run: RUSAGE_CHILDREN keeps the largest child it ever had
    probe = (
        "import resource, subprocess, sys, time; t = time.perf_counter();"
        "code = subprocess.run(sys.argv[1:], capture_output=True).returncode;"
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)"
    )
    argv = [sys.executable, "-c", probe, sys.executable, "-m", "cloudcast", "validate", str(path)]
    wall, peak_kb, code = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()
    return float(wall), int(peak_kb) / 1024, int(code)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cases = {
            "sites-10000": (Path(tmp) / "sites.json", json.dumps(sites_spec(10_000))),
            "dup-3000": (Path(tmp) / "dup.json", json.dumps(dup_spec(3_000))),
            "yaml-bomb": (Path(tmp) / "bomb.yaml", BOMB),
        }
        for name, (path, text) in cases.items():
            path.write_text(text)
            walls, peaks, codes = [], [], set()
            for _ in range(args.runs):
                wall, peak, code = run(path)
                walls.append(wall)
                peaks.append(peak)
                codes.add(code)
            walls.sort()
            print(
                f"{name:12} {len(text) / 1024:8.0f} KB  best {walls[0]:.2f} s  median {walls[len(walls) // 2]:.2f} s"
                f"  peak RSS {max(peaks):.0f} MB  exit {sorted(codes)}"
            )


if __name__ == "__main__":
    main()
