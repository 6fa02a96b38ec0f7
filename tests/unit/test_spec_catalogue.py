"""A catalogue of bad specs: every message is pinned, as the user sees it."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cloudcast.errors import SpecError
from cloudcast.spec import load_spec, parse_spec
from cloudcast.spec.check import check

BASE: dict[str, Any] = {
    "name": "net",
    "network": {"overlay": "10.15.0.0/16"},
    "ssh": {"private_key": "~/.ssh/id_ed25519"},
    "sites": [
        {"name": "aws-a", "provider": "aws", "region": "us-east-1", "cidr": "10.1.0.0/16",
         "nodes": [{"name": "a1"}, {"name": "a2"}]},
        {"name": "home", "provider": "static",
         "nodes": [{"name": "h1", "ssh": {"host": "203.0.113.7"}}]},
    ],
    "services": [{"name": "echo", "node": "a1", "port": 8888}],
}

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        parts: list[str | int] = [int(p) if p.isdigit() else p for p in path.split(".")]
        cur: Any = doc
        for p in parts[:-1]:
            cur = cur[p]
        cur[parts[-1]] = value
    return mutate


def _del(path: str) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        parts: list[str | int] = [int(p) if p.isdigit() else p for p in path.split(".")]
        cur: Any = doc
        for p in parts[:-1]:
            cur = cur[p]
        del cur[parts[-1]]
    return mutate


def _add_site(site: dict[str, Any]) -> Mutation:
    return lambda doc: doc["sites"].append(site)


def _gateways(doc: dict[str, Any]) -> None:
    doc["network"]["topology"] = "gateways"
    doc["sites"][0]["nodes"][0]["role"] = "gateway"


CASES: list[tuple[str, Mutation, str]] = [
    ("unknown top key", _set("sitez", []), "sitez: unknown key; did you mean 'sites'?"),
    ("unknown node key", _set("sites.0.nodes.0.sise", "x"), "sites[0].nodes[0].sise: unknown key; did you mean 'size'?"),
    ("unknown network key", _set("network.overlayy", "10.0.0.0/8"), "network.overlayy: unknown key; did you mean 'overlay'?"),
    ("unknown key no match", _set("network.zzz", 1), "network.zzz: unknown key; known keys:"),
    ("unknown provider", _set("sites.0.provider", "gcp"), "sites[0].provider: unknown provider 'gcp'; expected 'aws', 'linode', 'vultr', 'static' or 'lab'"),
    ("bad transport", _set("network.transport", "openvpn"), "network.transport: unknown value 'openvpn'; expected 'wireguard' or 'ipsec'"),
    ("bad topology", _set("network.topology", "star"), "network.topology: unknown value 'star'; expected 'mesh', 'gateways' or 'hub'"),
    ("bad role", _set("sites.0.nodes.0.role", "router"), "sites[0].nodes[0].role: unknown value 'router'; expected 'member', 'gateway' or 'hub'"),
    ("port type", _set("network.port", "abc"), "network.port: input should be a valid integer ('abc')"),
    ("port high", _set("network.port", 70000), "network.port: input should be less than or equal to 65535 (70000)"),
    ("port zero", _set("network.port", 0), "network.port: input should be greater than or equal to 1 (0)"),
    ("ssh port high", _set("ssh.port", 65536), "ssh.port: input should be less than or equal to 65535 (65536)"),
    ("service port", _set("services.0.port", 99999), "services[0].port: input should be less than or equal to 65535 (99999)"),
    ("mtu low", _set("network.mtu", 500), "network.mtu: input should be greater than or equal to 1280 (500)"),
    ("mtu high", _set("network.mtu", 9001), "network.mtu: input should be less than or equal to 9000 (9001)"),
    ("keepalive", _set("network.keepalive", -1), "network.keepalive: input should be greater than or equal to 0 (-1)"),
    ("overlay invalid", _set("network.overlay", "10.0.0.0/33"), "network.overlay: input is not a valid IPv4 network ('10.0.0.0/33')"),
    ("cidr host bits", _set("sites.0.cidr", "10.1.0.1/16"), "sites[0].cidr: input is not a valid IPv4 network ('10.1.0.1/16')"),
    ("missing name", _del("name"), "name: required"),
    ("missing sites", _del("sites"), "sites: required"),
    ("missing provider", _del("sites.0.provider"), "sites[0].provider: required"),
    ("no nodes", _set("sites.0.nodes", []), "sites[0].nodes: list should have at least 1 item after validation, not 0"),
    ("nodes wrong type", _set("sites.0.nodes", "a1"), "sites[0].nodes: input should be a valid list ('a1')"),
    ("behind_nat type", _set("sites.1.nodes.0.behind_nat", "triple"), "sites[1].nodes[0].behind_nat"),
    ("bad node name", _set("sites.0.nodes.0.name", "web_1"), "sites[0].nodes[0].name: 'web_1' is not a valid hostname label (letters, digits, '-')"),
    ("node name dash", _set("sites.0.nodes.0.name", "-web"), "sites[0].nodes[0].name: '-web' is not a valid hostname label (letters, digits, '-')"),
    ("bad site name", _set("sites.0.name", "aws a"), "sites[0].name: 'aws a' is not a valid hostname label (letters, digits, '-')"),
    ("bad network name", _set("name", "my.net"), "name: 'my.net' is not a valid hostname label (letters, digits, '-')"),
    ("bad domain", _set("network.domain", "vpc..internal"), "network.domain: 'vpc..internal' is not a valid domain name"),
    ("dup node", _set("sites.0.nodes.1.name", "A1"), "sites[0].nodes[1].name: duplicate node name 'A1' (also sites[0].nodes[0].name)"),
    ("dup node across sites", _set("sites.1.nodes.0.name", "a2"), "sites[1].nodes[0].name: duplicate node name 'a2' (also sites[0].nodes[1].name)"),
    ("dup site", _set("sites.1.name", "AWS-A"), "sites[1].name: duplicate site name 'AWS-A' (also sites[0].name)"),
    ("overlap sites", _add_site({"name": "aws-b", "provider": "aws", "region": "us-west-2", "cidr": "10.0.0.0/8", "nodes": [{"name": "b1"}]}),
     "sites[2].cidr: 10.0.0.0/8 overlaps sites[0].cidr (10.1.0.0/16)"),
    ("overlap overlay", _set("sites.0.cidr", "10.15.0.0/24"), "sites[0].cidr: 10.15.0.0/24 overlaps network.overlay (10.15.0.0/16)"),
    ("overlay too small", _set("network.overlay", "10.15.0.0/30"), "network.overlay: 10.15.0.0/30 has room for 2 nodes, the spec has 3"),
    ("overlay public", _set("network.overlay", "8.8.0.0/16"), "network.overlay: 8.8.0.0/16 is not a private range (10/8, 172.16/12, 192.168/16, 100.64/10)"),
    ("site cidr public", _set("sites.0.cidr", "1.2.0.0/16"), "sites[0].cidr: 1.2.0.0/16 is not a private range"),
    ("site cidr too small", _set("sites.0.cidr", "10.1.0.0/30"), "sites[0].cidr: 10.1.0.0/30 has room for 0 nodes, the site has 2"),
    ("aws vpc too large", _set("sites.0.cidr", "10.0.0.0/12"), "sites[0].cidr: AWS VPCs take /16 to /28 (10.0.0.0/12)"),
    ("linode private range", _add_site({"name": "ln", "provider": "linode", "region": "us-east", "cidr": "192.168.200.0/24", "nodes": [{"name": "l1"}]}),
     "sites[2].cidr: 192.168.200.0/24 overlaps 192.168.128.0/17, Linode's private network range (Linode VPC subnets cannot use it)"),
    ("gateways no gateway", _set("network.topology", "gateways"), "sites[0].nodes: site 'aws-a' has no gateway (topology gateways needs one per site)"),
    ("gateways second site", _gateways, "sites[1].nodes: site 'home' has no gateway (topology gateways needs one per site)"),
    ("hub without hub", _set("network.topology", "hub"), "network.topology: topology 'hub' needs a node with role 'hub'"),
    ("hub role in mesh", _set("sites.0.nodes.0.role", "hub"), "sites[0].nodes[0].role: role 'hub' needs topology 'hub' (topology is mesh)"),
    ("gateway role in mesh", _set("sites.0.nodes.0.role", "gateway"), "sites[0].nodes[0].role: role 'gateway' needs topology 'gateways' or 'hub' (mesh)"),
    ("ipsec mesh", _set("network.transport", "ipsec"), "network.transport: ipsec runs between gateways; use topology 'gateways' or 'hub' (mesh)"),
    ("certificates with wireguard", _set("network.ipsec_auth", "certificates"), "network.ipsec_auth: certificates are for transport ipsec; WireGuard peers authenticate by their keys (wireguard)"),
    ("bad ipsec_auth", _set("network.ipsec_auth", "x509"), "network.ipsec_auth: unknown value 'x509'; expected 'psk' or 'certificates'"),
    ("static without host", _del("sites.1.nodes.0.ssh"), "sites[1].nodes[0].ssh.host: required for static nodes (node 'h1')"),
    ("cloud with host", _set("sites.0.nodes.0.ssh", {"host": "1.2.3.4"}), "sites[0].nodes[0].ssh.host: the address of aws nodes comes from Terraform; remove it ('1.2.3.4')"),
    ("cloud behind nat", _set("sites.0.nodes.0.behind_nat", True), "sites[0].nodes[0].behind_nat: aws instances have public addresses; behind_nat is for static and lab nodes"),
    ("aws no region", _del("sites.0.region"), "sites[0].region: required for provider aws"),
    ("service unknown node", _set("services.0.node", "a3"), "services[0].node: unknown node 'a3'; did you mean 'a2'?"),
    ("service unknown node no hint", _set("services.0.node", "zzzz"), "services[0].node: unknown node 'zzzz'"),
    ("service dup name", lambda d: d["services"].append({"name": "ECHO", "node": "a2", "port": 1}), "services[1].name: duplicate service name 'ECHO' (also services[0].name)"),
    ("service dup port", lambda d: d["services"].append({"name": "echo2", "node": "A1", "port": 8888}), "services[1].port: tcp/8888 on 'A1' is already taken by services[0]"),
    ("service on wg port", lambda d: d["services"].append({"name": "u", "node": "a1", "port": 51871, "protocol": "udp"}), "services[1].port: 51871/udp is the transport's own port"),
    ("s3 without bucket", _set("state", {"backend": "s3"}), "state.bucket: required for backend s3"),
    ("local with bucket", _set("state", {"bucket": "bkt"}), "state.bucket: only used with backend 's3' (backend is local)"),
    ("all behind nat", lambda d: d.update(sites=[{"name": "home", "provider": "static", "nodes": [
        {"name": "x", "behind_nat": True, "ssh": {"host": "h"}}, {"name": "y", "behind_nat": True, "ssh": {"host": "g"}}]}], services=[]),
     "sites: every node is behind NAT; at least one must be reachable to relay for the others"),
    ("three gateways", lambda d: (d["network"].update(topology="gateways"), d["sites"][0]["nodes"].extend([{"name": "a3", "role": "gateway"}, {"name": "a4", "role": "gateway"}]), [n.update(role="gateway") for n in d["sites"][0]["nodes"]], d["sites"][1]["nodes"][0].update(role="gateway")),
     "sites[0].nodes: site 'aws-a' has 4 gateways; at most 2"),
    ("hub behind nat", lambda d: (d["network"].update(topology="hub"), d["sites"][1]["nodes"][0].update(role="hub", behind_nat=True)),
     "sites[1].nodes[0].behind_nat: a hub must be reachable, not behind NAT"),
    ("site prefix vs pool", _set("network.site_pool", "10.200.0.0/26"), "network.site_prefix: /24 sites do not fit in network.site_pool (10.200.0.0/26)"),
    ("interface name", _set("network.interface", "a-very-long-interface"), "network.interface: string should match pattern"),
    ("sources invalid", _set("ssh.sources", ["everywhere"]), "ssh.sources[0]: input is not a valid IPv4 network ('everywhere')"),
]


@pytest.mark.parametrize(("mutate", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_spec_message(mutate: Mutation, expected: str) -> None:
    doc = copy.deepcopy(BASE)
    mutate(doc)
    with pytest.raises(SpecError) as info:
        spec = parse_spec(doc)
        problems = check(spec)
        if problems:
            raise SpecError(problems)
    assert any(line.startswith(expected) for line in info.value.problems), info.value.problems


def test_catalogue_is_large_enough() -> None:
    assert len(CASES) >= 40


def test_base_is_valid() -> None:
    assert check(parse_spec(copy.deepcopy(BASE))) == []


def test_every_problem_is_reported_at_once() -> None:
    doc = copy.deepcopy(BASE)
    doc["network"]["port"] = 0
    doc["sites"][0]["provider"] = "gcp"
    doc["bogus"] = 1
    with pytest.raises(SpecError) as info:
        parse_spec(doc)
    assert len(info.value.problems) == 3


def test_malformed_json_has_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "name": "x",\n  "sites": [\n    {"name": "a" "provider": "lab"}\n  ]\n}\n')
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.problems == [f"{path}:4:18: invalid JSON: Expecting ',' delimiter"]


def test_duplicate_json_key(tmp_path: Path) -> None:
    path = tmp_path / "dup.json"
    path.write_text('{"name": "x", "name": "y", "sites": []}')
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.problems == [f"{path}: duplicate key 'name' in one object"]


def test_malformed_yaml_has_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nsites:\n  - name: a\n   provider: lab\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.problems[0].startswith(f"{path}:4:")
    assert "invalid YAML" in info.value.problems[0]


def test_yaml_spec_loads(tmp_path: Path) -> None:
    path = tmp_path / "ok.yml"
    path.write_text("name: x\nsites:\n  - name: a\n    provider: lab\n    nodes: [{name: n1}, {name: n2}]\n")
    spec = load_spec(path)
    assert [n.name for _, n in spec.all_nodes()] == ["n1", "n2"]


def test_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.problems == ["(spec): must be a JSON object, not list"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "nope.json")
    assert info.value.problems == [f"{tmp_path / 'nope.json'}: no such file"]


def test_cli_validate_prints_one_line_per_problem(tmp_path: Path, cli: Any) -> None:
    doc = copy.deepcopy(BASE)
    doc["sites"].append({"name": "aws-b", "provider": "aws", "region": "us-west-2", "cidr": "10.0.0.0/8", "nodes": [{"name": "b1"}]})
    doc["services"][0]["node"] = "nope"
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(doc))
    res = cli("validate", str(path))
    assert res.code == 1
    lines = res.err.strip().splitlines()
    assert "sites[2].cidr: 10.0.0.0/8 overlaps sites[0].cidr (10.1.0.0/16)" in lines
    assert "services[0].node: unknown node 'nope'" in lines
    assert lines[-1] == "cloudcast: error: the spec has 4 problems"
    assert "Traceback" not in res.err


def test_cli_validate_ok(tmp_path: Path, cli: Any) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(BASE))
    res = cli("validate", str(path))
    assert res.code == 0, res.err
    assert "valid (2 sites, 3 nodes)" in res.out


def test_no_traceback_without_debug_and_one_with(tmp_path: Path, cli: Any) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(BASE))
    plain = cli("compile", str(path), "-o", str(tmp_path / "out"), environ={"HOME": str(tmp_path)})
    assert plain.code == 1
    assert "Traceback" not in plain.err
    assert "cloudcast: error: ssh.public_key: cannot read" in plain.err
    debug = cli("--debug", "compile", str(path), "-o", str(tmp_path / "out"), environ={"HOME": str(tmp_path)})
    assert "Traceback" in debug.err
