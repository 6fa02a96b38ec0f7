"""verify's CI views: JUnit XML (a case per ordered pair and per MTU probe) and Prometheus text."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cloudcast.plan import build_plan
from cloudcast.plan.model import NetworkPlan
from cloudcast.spec import load_spec
from cloudcast.verify.probe import Probe, VerifyResult
from cloudcast.verify.reports import junit_xml, pair_path, prometheus_text
from cloudcast.verify.status import NodeStatus, PeerStatus, StatusResult
from tests.conftest import EXAMPLES


@pytest.fixture(scope="module")
def plan() -> NetworkPlan:
    """examples/lab.json: alpha, bravo public; charlie and delta behind NAT, relayed through alpha."""
    return build_plan(load_spec(EXAMPLES / "lab.json"))[0]


def result() -> VerifyResult:
    names = ["alpha", "bravo", "charlie", "delta"]
    r = VerifyResult(nodes=names, mtu=1420, seconds=2.5)
    r.matrix = {s: {d: Probe(True, 0.5, True) for d in names if d != s} for s in names}
    r.matrix["bravo"]["charlie"] = Probe(False, error="no reply")
    r.matrix["charlie"]["alpha"] = Probe(True, 1.25, False)
    r.tunnels = ["bravo -> charlie: endpoint (none: waits for the peer), handshake never, rx 0 B, tx 0 B"]
    return r


def test_pair_paths_tell_direct_from_relayed(plan: NetworkPlan) -> None:
    assert pair_path(plan, "alpha", "charlie").kind == "direct"
    relayed = pair_path(plan, "charlie", "delta")
    assert (relayed.kind, relayed.via) == ("relayed", "alpha")


def test_junit_has_a_case_per_ordered_pair_and_per_mtu_probe(plan: NetworkPlan) -> None:
    root = ET.fromstring(junit_xml(result(), plan))
    assert root.tag == "testsuites"
    reach, mtu = root.findall("testsuite")
    assert reach.get("name") == "demo.reach" and mtu.get("name") == "demo.mtu"
    assert len(reach.findall("testcase")) == len(mtu.findall("testcase")) == 12  # 4 x 3 ordered pairs
    assert (reach.get("failures"), mtu.get("failures"), mtu.get("skipped")) == ("1", "1", "1")
    assert root.get("tests") == "24" and root.get("failures") == "2"
    by_name = {c.get("name"): c for c in reach.iter("testcase")}
    failed = by_name["bravo -> charlie"].find("failure")
    assert failed is not None and "bravo cannot reach charlie over the overlay: no reply" in failed.get("message", "")
    assert "handshake never" in (failed.text or "")
    out = by_name["charlie -> delta"].find("system-out")
    assert out is not None and out.text == "path: relayed via alpha"
    cases = {c.get("name"): c for c in mtu.iter("testcase")}
    assert cases["charlie -> alpha MTU 1420"].find("failure") is not None
    assert cases["bravo -> charlie MTU 1420"].find("skipped") is not None  # unreachable: not probed
    assert cases["alpha -> bravo MTU 1420"].get("time") == "0.000500"


def test_junit_escapes_what_it_quotes(plan: NetworkPlan) -> None:
    r = result()
    r.matrix["bravo"]["charlie"] = Probe(False, error='<&"> ]]>')
    ET.fromstring(junit_xml(r, plan))  # still well-formed


#: one sample line of the text exposition format: name{labels} value
_SAMPLE = re.compile(r'^[a-z_]+\{([a-z_]+="(?:[^"\\\n]|\\.)*",?)*\} (-?[0-9.e+-]+|NaN)$')


def test_prometheus_text_is_the_exposition_format(plan: NetworkPlan) -> None:
    live = StatusResult(
        [NodeStatus("alpha", True, (PeerStatus("bravo", "k", "198.19.0.12:51871", 17, 10, 20),))]
    )
    text = prometheus_text(result(), plan, live)
    assert text.endswith("\n")
    families: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            families[name] = kind
        elif not line.startswith("# HELP "):
            assert _SAMPLE.match(line), line
            assert line.split("{")[0] in families, line
    assert set(families.values()) == {"gauge"}
    assert 'cloudcast_pair_reachable{network="demo",src="bravo",dst="charlie",path="direct"} 0' in text
    assert 'cloudcast_pair_rtt_seconds{network="demo",src="charlie",dst="alpha",path="direct"} 0.00125' in text
    assert 'cloudcast_pair_mtu_ok{network="demo",src="charlie",dst="alpha",mtu="1420"} 0' in text
    assert 'cloudcast_pair_relayed{network="demo",src="charlie",dst="delta",path="relayed",via="alpha"} 1' in text
    assert 'cloudcast_pair_handshake_age_seconds{network="demo",src="alpha",dst="bravo"} 17' in text
    assert 'cloudcast_verify_pairs_failed{network="demo"} 1' in text
    assert 'cloudcast_verify_ok{network="demo"} 0' in text
    # an unreachable pair has no round-trip time, an unprobed MTU no sample
    assert 'cloudcast_pair_rtt_seconds{network="demo",src="bravo",dst="charlie"' not in text
    assert 'cloudcast_pair_mtu_ok{network="demo",src="bravo",dst="charlie"' not in text


def test_prometheus_label_values_are_escaped(plan: NetworkPlan, tmp_path: Path) -> None:
    from cloudcast.verify.reports import _labels

    assert _labels(a='x"y\\z\nw') == '{a="x\\"y\\\\z\\nw"}'
