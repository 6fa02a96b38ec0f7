"""Benchmark: `cloudcast compile` of generated specs, each a real CLI run (start-up included).

Cases (issue 11's compile rows; targets on the 2-core CI machine):
  mesh-200        200-node full mesh (19,900 pairs) over aws/linode/vultr/static      <= 0.4 s
  gateways-1000   1,000 nodes in 50 sites (every other site has a standby gateway,
                  one site in ten's gateways behind NAT), `gateways` topology         <= 2 s, 500 MB
  cidr            3-node lab sites in `gateways` topology, run in turn in this one process:
                  a /24 site and /24 overlay (the yardstick), a 10.0.0.0/8 site, a /8 overlay
                                                                       <= 50 ms more than the /24

Each run is `python -m cloudcast compile SPEC -o OUT --workdir WD` in a fresh work dir; wall
time is taken around the child and peak RSS from the child's own rusage (`os.wait4`). The
cidr cases alternate (/24, /8 site, /8 overlay, /24, ...) so the difference is taken run by run
against the /24 beside it. Results go to benchmarks/results/compile-<UTC time>.json with the
machine's cores, load average and versions. Nothing here asserts on time.

    python benchmarks/bench_compile.py [--runs 5] [--cases mesh-200 gateways-1000 cidr] [--no-save]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
Spec = dict[str, Any]


def make_spec(nodes: int) -> Spec:
    """A full mesh of `nodes` over four providers (the 200-node case)."""
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


def gateways_spec(sites: int = 50, per_site: int = 20) -> Spec:
    """`sites` sites of `per_site` nodes in `gateways` topology, over five providers.

    Every other site has a standby gateway (so the plan carries failover rules for it); one
    site in ten has its gateways behind NAT (so some gateway pairs are relayed).
    """
    providers = [
        ("aws", "us-east-1"),
        ("linode", "us-east"),
        ("vultr", "ewr"),
        ("static", None),
        ("lab", None),
    ]
    out = []
    for i in range(sites):
        provider, region = providers[i % len(providers)]
        gateways = 2 if i % 2 == 0 else 1
        nat = i % 10 == 9
        site_nodes: list[dict[str, object]] = []
        for j in range(per_site):
            node: dict[str, object] = {"name": f"s{i}n{j}"}
            if j < gateways:
                node["role"] = "gateway"
                if nat:
                    node["behind_nat"] = True
            if provider == "static":
                node["ssh"] = {"host": f"s{i}n{j}.example.net"}
            site_nodes.append(node)
        site: dict[str, object] = {"name": f"site{i}", "provider": provider, "nodes": site_nodes}
        if region:
            site["region"] = region
        out.append(site)
    return {
        "name": "gw1000",
        "network": {"overlay": "10.15.0.0/16", "topology": "gateways"},
        "ssh": {"private_key": "~/.ssh/id_ed25519"},
        "sites": out,
    }


def cidr_spec(site_cidr: str, overlay: str) -> Spec:
    """Three lab nodes in one site of `site_cidr` (a LAN: `gateways` topology) on `overlay`."""
    nodes = [{"name": "gw", "role": "gateway"}, {"name": "m1"}, {"name": "m2"}]
    return {
        "name": "cidr",
        "network": {"overlay": overlay, "topology": "gateways"},
        "sites": [{"name": "big", "provider": "lab", "cidr": site_cidr, "nodes": nodes}],
    }


CIDR_CASES: dict[str, Spec] = {
    "cidr-/24": cidr_spec("10.1.2.0/24", "172.16.0.0/24"),
    "cidr-site-/8": cidr_spec("10.0.0.0/8", "172.16.0.0/24"),
    "cidr-overlay-/8": cidr_spec("172.16.0.0/24", "10.0.0.0/8"),
}

SPECS: dict[str, Callable[[], Spec]] = {
    "mesh-200": lambda: make_spec(200),
    "gateways-1000": gateways_spec,
    **{name: (lambda s=spec: s) for name, spec in CIDR_CASES.items()},
}


def compile_once(spec: Path, out: Path, workdir: Path, env: dict[str, str]) -> tuple[float, float, float]:
    """Wall seconds, peak RSS (MB) and CPU seconds of one `cloudcast compile`, the child's own rusage."""
    argv = [
        sys.executable,
        "-m",
        "cloudcast",
        "compile",
        str(spec),
        "-o",
        str(out),
        "--workdir",
        str(workdir),
    ]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"compile of {spec} failed with exit code {proc.returncode}")
    return wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def _summary(walls: list[float], peaks: list[float], cpus: list[float]) -> dict[str, Any]:
    return {
        "runs": len(walls),
        "wall_s": {"min": min(walls), "median": statistics.median(walls), "max": max(walls)},
        "cpu_s": {"min": min(cpus), "median": statistics.median(cpus), "max": max(cpus)},
        "peak_rss_mb": max(peaks),
        "walls_s": walls,
    }


def _pairs(plan_path: Path) -> int:
    plan = json.loads(plan_path.read_text())
    return len({tuple(sorted((n["name"], p["peer"]))) for n in plan["nodes"] for p in n["peers"]})


def machine() -> dict[str, Any]:
    """Cores, load and versions: what a figure needs beside it to be compared."""
    import pydantic

    import cloudcast

    return {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "loadavg": list(os.getloadavg()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cloudcast": cloudcast.__version__,
        "pydantic": pydantic.VERSION,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--cases", nargs="+", default=["mesh-200", "gateways-1000", "cidr"])
    ap.add_argument("--no-save", action="store_true", help="print only; write nothing to benchmarks/results")
    ap.add_argument("--write-specs", type=Path, help="write the generated specs into this directory and stop")
    args = ap.parse_args()
    if args.write_specs:
        args.write_specs.mkdir(parents=True, exist_ok=True)
        for name, make in SPECS.items():
            (args.write_specs / f"{name.replace('/', '')}.json").write_text(json.dumps(make(), indent=1))
        return
    load_before = list(os.getloadavg())
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        (home / ".ssh").mkdir(parents=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / ".ssh" / "id_ed25519")],
            check=True,
        )
        env = {**os.environ, "HOME": str(home)}
        counter = iter(range(1_000_000))

        def run(name: str) -> tuple[float, float, float, Path]:
            path = Path(tmp) / f"{name.replace('/', '')}.json"
            if not path.exists():
                path.write_text(json.dumps(SPECS[name]()))
            n = next(counter)
            out = Path(tmp) / f"out{n}"
            wall, peak, cpu = compile_once(path, out, Path(tmp) / f"wd{n}", env)
            return wall, peak, cpu, out

        def show(name: str, entry: dict[str, Any], extra: str = "") -> None:
            wall, cpu = entry["wall_s"], entry["cpu_s"]
            print(
                f"{name:16} wall median {wall['median']:.3f} s (min {wall['min']:.3f}, max {wall['max']:.3f})"
                f"  cpu median {cpu['median']:.3f} s  peak RSS {entry['peak_rss_mb']:.0f} MB{extra}"
            )

        for case in args.cases:
            names = list(CIDR_CASES) if case == "cidr" else [case]
            samples: dict[str, tuple[list[float], list[float], list[float]]] = {
                c: ([], [], []) for c in names
            }
            last = Path(tmp)
            for name in names:  # one warm-up each: the page cache, .pyc files
                run(name)
            for _ in range(args.runs):
                for name in names:  # the cidr cases in turn, so each /8 run has a /24 beside it
                    wall, peak, cpu, last = run(name)
                    for values, value in zip(samples[name], (wall, peak, cpu), strict=True):
                        values.append(value)
            for name, (walls, peaks, cpus) in samples.items():
                entry = _summary(walls, peaks, cpus)
                extra = ""
                if case == "cidr" and name != "cidr-/24":
                    base = samples["cidr-/24"][0]
                    diffs = [w - b for w, b in zip(walls, base, strict=True)]
                    entry["minus_/24_s"] = {"median": statistics.median(diffs), "max": max(diffs)}
                    extra = f"  {entry['minus_/24_s']['median'] * 1000:+.0f} ms vs /24 (median of pairs)"
                elif case != "cidr":
                    entry["pairs"] = _pairs(last / "cloudcast.plan.json")
                    extra = f"  {entry['pairs']} pairs"
                results[name] = entry
                show(name, entry, extra)
    if args.no_save:
        return
    now = datetime.datetime.now(datetime.UTC)
    record = {
        "benchmark": "compile",
        "time": now.isoformat(timespec="seconds"),
        "machine": {**machine(), "loadavg_before": load_before},
        "results": results,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"compile-{now.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
