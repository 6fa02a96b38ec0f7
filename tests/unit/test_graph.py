"""`cloudcast graph`: every example drawn (Graphviz's own `dot`), the SVG's elements checked."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cloudcast.graph import Live, TunnelState, draw, live_from_status, write_graph
from cloudcast.plan import build_plan
from cloudcast.spec import load_spec
from cloudcast.verify.status import NodeStatus, PeerStatus, StatusResult
from tests.conftest import EXAMPLES, run_cli

SVG = "{http://www.w3.org/2000/svg}"
EXAMPLE_FILES = sorted(p for p in EXAMPLES.glob("*.json") if p.name != "cloudcast.schema.json")
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz's dot is not installed")


def titles(svg: Path, kind: str) -> set[str]:
    root = ET.parse(svg).getroot()
    return {
        (g.findtext(f"{SVG}title") or "")
        for g in root.iter(f"{SVG}g")
        if g.get("class") == kind
    }


@needs_dot
@pytest.mark.parametrize("example", EXAMPLE_FILES, ids=[p.name for p in EXAMPLE_FILES])
def test_every_example_draws(example: Path, tmp_path: Path) -> None:
    plan = build_plan(load_spec(example))[0]
    out = write_graph(plan, tmp_path / "net.svg")
    nodes = titles(out, "node")
    assert {n.name for n in plan.nodes} <= nodes
    assert titles(out, "cluster") == {f"cluster_{s.name}" for s in plan.sites}
    edges = titles(out, "edge")
    for pair in plan.pairs():
        a, b = pair.split("--")
        assert f"{a}->{b}" in edges or f"{b}->{a}" in edges, pair
    text = " ".join(ET.parse(out).getroot().itertext())  # SVG writes '-' as &#45;
    for node in plan.nodes:
        assert (node.overlay_ip if node.vpn else node.name) in text


@needs_dot
def test_the_policy_is_drawn_between_tags(tmp_path: Path) -> None:
    plan = build_plan(load_spec(EXAMPLES / "lab-policy.json"))[0]
    out = write_graph(plan, tmp_path / "net.svg")
    assert {"tag_web", "tag_app", "tag_db"} <= titles(out, "node")
    edges = titles(out, "edge")
    assert {"tag_web->tag_app", "tag_app->tag_db", "admin->web1", "admin->app1"} <= edges
    text = " ".join(ET.parse(out).getroot().itertext())
    assert "tcp/8080 (policy[0])" in text and "tcp/22 (policy[2])" in text


def test_standby_paths_are_dashed_and_members_hang_off_their_gateways() -> None:
    plan = build_plan(load_spec(EXAMPLES / "lab-gateways.json"))[0]
    source = draw(plan).source
    dashed = [line for line in source.splitlines() if "gw-east2" in line and "->" in line]
    assert dashed and all("dashed" in line for line in dashed)
    assert any(line.strip().startswith("east1 -> \"gw-east\"") and "LAN" in line for line in source.splitlines())


def test_live_colours_tunnels_by_their_state() -> None:
    plan = build_plan(load_spec(EXAMPLES / "lab.json"))[0]
    status = StatusResult([
        NodeStatus("alpha", True, (PeerStatus("bravo", "k", None, 5, 1, 1), PeerStatus("charlie", "k", None, None, 0, 0))),
        NodeStatus("delta", False, error="timed out"),
    ])
    live = live_from_status(status)
    assert live.tunnels[("alpha", "bravo")] == TunnelState(True, 5)
    assert live.tunnels[("alpha", "charlie")].up is False and live.unreachable == {"delta"}
    source = draw(plan, live).source
    line = next(x for x in source.splitlines() if x.strip().startswith("alpha -> bravo"))
    assert "#2ca02c" in line and 'label="5s"' in line
    line = next(x for x in source.splitlines() if x.strip().startswith("alpha -> charlie"))
    assert "#d62728" in line
    assert draw(plan, Live({}, frozenset())).source.count("#d62728") >= len(plan.pairs())


@needs_dot
def test_the_cli_writes_each_format(tmp_path: Path) -> None:
    spec = tmp_path / "lab-policy.json"
    spec.write_text((EXAMPLES / "lab-policy.json").read_text())
    for name in ("net.svg", "net.png", "net.dot"):
        res = run_cli("graph", str(spec), "-o", str(tmp_path / name), "--workdir", str(tmp_path / "wd"))
        assert res.code == 0, res.err
        assert (tmp_path / name).stat().st_size > 100
    assert (tmp_path / "net.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "net.dot").read_text().startswith("digraph tiers {")
    res = run_cli("graph", str(spec), "-o", str(tmp_path / "net.gif"), "--workdir", str(tmp_path / "wd"))
    assert res.code == 1 and "unknown picture format '.gif'" in res.err
