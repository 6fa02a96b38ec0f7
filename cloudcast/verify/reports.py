"""Views of one verify result for CI: JUnit XML and Prometheus text exposition.

Both are renderings of a `VerifyResult` (and, for handshake ages, a `StatusResult`), never a
second way of probing: what the matrix says, they say.

- JUnit: one test case per ordered pair (`reach`) and one per pair's don't-fragment probe at the
  planned MTU (`mtu`; skipped when the pair could not be reached at all).
- Prometheus (text format 0.0.4): per ordered pair, reachability, round-trip time, the MTU
  probe, the handshake age of a direct tunnel, and whether the pair is direct, relayed through
  a third node or routed through a gateway or hub; plus totals for the run.
"""

from __future__ import annotations

import math
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass

from cloudcast.plan.model import NetworkPlan, Relay
from cloudcast.verify.probe import Probe, VerifyResult
from cloudcast.verify.status import StatusResult


@dataclass(frozen=True, slots=True)
class PairPath:
    """How src's packets reach dst: over their own tunnel, through a relay, or routed."""

    kind: str  # direct | relayed | routed
    via: str | None = None  # the relay, gateway or hub in between


def pair_path(plan: NetworkPlan, src: str, dst: str) -> PairPath:
    """Direct when src peers with dst; relayed when the plan relays the pair; routed otherwise
    (through src's or dst's gateway, or the hub)."""
    nodes = {n.name: n for n in plan.nodes}
    a, b = nodes.get(src), nodes.get(dst)
    if a is not None and any(link.peer == dst for link in a.peers):
        return PairPath("direct")
    for note in plan.notes:
        if isinstance(note, Relay) and {note.a, note.b} == {src, dst}:
            return PairPath("relayed", note.via)
    via = (a.gateway if a is not None else None) or (b.gateway if b is not None else None)
    if via is None and plan.topology == "hub":
        via = next((n.name for n in plan.nodes if n.role == "hub"), None)
    return PairPath("routed", via)


def _pairs(result: VerifyResult) -> Iterator[tuple[str, str, Probe]]:
    for src in result.nodes:
        for dst in result.nodes:
            probe = result.matrix.get(src, {}).get(dst)
            if src != dst and probe is not None:
                yield src, dst, probe


# --- JUnit ----------------------------------------------------------------------------------


def junit_xml(result: VerifyResult, plan: NetworkPlan) -> str:
    """A JUnit report (the schema CI systems read: testsuites > testsuite > testcase)."""
    pairs = list(_pairs(result))
    suites = ET.Element("testsuites", name=f"cloudcast verify {plan.name}")
    reach = _suite(suites, f"{plan.name}.reach", result)
    mtu = _suite(suites, f"{plan.name}.mtu", result)
    for src, dst, probe in pairs:
        path = pair_path(plan, src, dst)
        via = f" via {path.via}" if path.via else ""
        case = _case(reach, f"{plan.name}.reach.{src}", f"{src} -> {dst}", probe)
        ET.SubElement(case, "system-out").text = f"path: {path.kind}{via}"
        if not probe.ok:
            why = probe.error or "no reply"
            message = f"{src} cannot reach {dst} over the overlay: {why}"
            _fail(case, "unreachable", message, _tunnel_lines(result, src, dst))
        case = _case(mtu, f"{plan.name}.mtu.{src}", f"{src} -> {dst} MTU {result.mtu}", probe)
        if probe.mtu_ok is None:
            ET.SubElement(case, "skipped", message="not probed: the pair is unreachable")
        elif probe.mtu_ok is False:
            _fail(
                case,
                "mtu",
                f"a {result.mtu}-byte don't-fragment packet from {src} to {dst} was lost: "
                f"the planned MTU does not fit the path",
                "",
            )
    for suite in (reach, mtu):
        cases = suite.findall("testcase")
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
        suite.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))
    if result.flows is not None:
        _flows_suite(suites, result, plan)
    suites.set("tests", str(sum(int(s.get("tests", "0")) for s in suites)))
    suites.set("failures", str(sum(int(s.get("failures", "0")) for s in suites)))
    suites.set("time", f"{result.seconds:.3f}")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _flows_suite(suites: ET.Element, result: VerifyResult, plan: NetworkPlan) -> None:
    """One case per policy flow probed: allowed ones must get through, denied ones must not."""
    assert result.flows is not None
    suite = _suite(suites, f"{plan.name}.policy", result)
    for check in result.flows.checks:
        f = check.flow
        kind = "allowed" if f.allowed else "denied"
        case = ET.SubElement(
            suite, "testcase", classname=f"{plan.name}.policy.{f.src}", name=f"{f} {kind}", time="0"
        )
        rule = f"policy[{f.rule}]" if f.rule is not None else "no rule" if not f.allowed else "network.ping"
        ET.SubElement(case, "system-out").text = f"{check.verdict.value} ({rule}; {check.detail})"
        if check.reached is None:
            _fail(case, "unprobed", f"{f}: not probed: {check.detail}", "")
        elif not check.ok:
            _fail(case, "policy", f"{f}: {check.verdict.value} ({rule}; {check.detail})", "")
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    suite.set("skipped", "0")


def _suite(parent: ET.Element, name: str, result: VerifyResult) -> ET.Element:
    suite = ET.SubElement(parent, "testsuite", name=name, errors="0", time=f"{result.seconds:.3f}")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    suite.set("timestamp", stamp)
    return suite


def _case(suite: ET.Element, classname: str, name: str, probe: Probe) -> ET.Element:
    seconds = (probe.latency_ms or 0.0) / 1000.0
    return ET.SubElement(suite, "testcase", classname=classname, name=name, time=f"{seconds:.6f}")


def _fail(case: ET.Element, kind: str, message: str, text: str) -> None:
    failure = ET.SubElement(case, "failure", message=message, type=kind)
    failure.text = text or message


def _tunnel_lines(result: VerifyResult, src: str, dst: str) -> str:
    lines = [line for line in result.tunnels if line.startswith(f"{src} -> {dst}:")]
    if src in result.errors:
        lines.insert(0, f"{src}: {result.errors[src]}")
    return "\n".join(lines)


# --- Prometheus -----------------------------------------------------------------------------

_METRICS: tuple[tuple[str, str], ...] = (
    ("cloudcast_pair_reachable", "1 when src reached dst over the overlay in the last verify, else 0"),
    ("cloudcast_pair_rtt_seconds", "round-trip time of src's probe to dst (reachable pairs only)"),
    ("cloudcast_pair_mtu_ok", "1 when a don't-fragment probe at the planned MTU got through, else 0"),
    ("cloudcast_pair_relayed", "1 when src's traffic to dst goes through another node, 0 on a direct tunnel"),
    (
        "cloudcast_pair_handshake_age_seconds",
        "seconds since src's latest handshake with dst (direct WireGuard tunnels; IPsec: IKE SA age)",
    ),
)


def _label(value: str) -> str:
    """A label value escaped as the text format wants: backslash, double quote, newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str | None) -> str:
    inner = ",".join(f'{key}="{_label(value)}"' for key, value in labels.items() if value is not None)
    return "{" + inner + "}"


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def prometheus_text(result: VerifyResult, plan: NetworkPlan, live: StatusResult | None = None) -> str:
    """Prometheus text exposition (0.0.4) of `result`; handshake ages come from `live`."""
    ages: dict[tuple[str, str], int] = {}
    if live is not None:
        for node in live.nodes:
            for peer in node.peers:
                if peer.handshake_age is not None:
                    ages[(node.name, peer.name)] = peer.handshake_age
    samples: dict[str, list[str]] = {name: [] for name, _ in _METRICS}
    for src, dst, probe in _pairs(result):
        path = pair_path(plan, src, dst)
        labels = _labels(network=plan.name, src=src, dst=dst, path=path.kind, via=path.via)
        samples["cloudcast_pair_reachable"].append(f"cloudcast_pair_reachable{labels} {int(probe.ok)}")
        if probe.ok and probe.latency_ms is not None:
            rtt = _number(probe.latency_ms / 1000.0)
            samples["cloudcast_pair_rtt_seconds"].append(f"cloudcast_pair_rtt_seconds{labels} {rtt}")
        if probe.mtu_ok is not None:
            mtu_labels = _labels(network=plan.name, src=src, dst=dst, mtu=str(result.mtu))
            samples["cloudcast_pair_mtu_ok"].append(f"cloudcast_pair_mtu_ok{mtu_labels} {int(probe.mtu_ok)}")
        relayed = int(path.kind != "direct")
        samples["cloudcast_pair_relayed"].append(f"cloudcast_pair_relayed{labels} {relayed}")
        if path.kind == "direct" and (src, dst) in ages:
            age_labels = _labels(network=plan.name, src=src, dst=dst)
            samples["cloudcast_pair_handshake_age_seconds"].append(
                f"cloudcast_pair_handshake_age_seconds{age_labels} {ages[(src, dst)]}"
            )
    lines: list[str] = []
    for name, help_text in _METRICS:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", *samples[name]]
    net = _labels(network=plan.name)
    pairs = list(_pairs(result))
    totals: tuple[tuple[str, str, float], ...] = (
        ("cloudcast_verify_pairs", "ordered pairs probed", len(pairs)),
        ("cloudcast_verify_pairs_failed", "ordered pairs unreachable", len(result.failed_pairs)),
        ("cloudcast_verify_mtu_failed", "ordered pairs whose MTU probe failed", len(result.mtu_failed_pairs)),
        ("cloudcast_verify_ok", "1 when every pair and every MTU probe passed", int(result.ok)),
        ("cloudcast_verify_duration_seconds", "how long the verify run took", round(result.seconds, 3)),
        ("cloudcast_verify_timestamp_seconds", "when the verify run ended (Unix)", round(time.time(), 3)),
    )
    for name, help_text, value in totals:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name}{net} {_number(value)}"]
    return "\n".join(lines) + "\n"
