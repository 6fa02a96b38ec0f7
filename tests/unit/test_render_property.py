"""Property: whatever strings a spec carries, every file cloudcast writes keeps its intended shape.

Specs start from a benign base (lab, static, AWS, Linode and Vultr sites; mesh, gateways, hub and
IPsec variants) and get generated text (newlines, `${`, quotes, `;`, unicode) in their string
fields. The first test keeps a value only where validation accepts it; the second puts values
into the parsed model past validation, so the sinks alone must hold. For every sink, either the
output parses back to exactly the sections, keys, lines and words its template means, or the
sink refuses the value (a CloudcastError); never anything in between. No script is ever run:
shell syntax is checked with `bash -n`.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import json
import re
import shlex
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import cloudcast.bootstrap.desired as desired_module
from cloudcast.bootstrap.actions import (
    apply_actions,
    prepare_actions,
    renew_script,
    settle_script,
    syncconf_script,
    teardown_actions,
)
from cloudcast.bootstrap.desired import Desired, IpsecCert, desired_state, host_entries
from cloudcast.bootstrap.execute import build_script
from cloudcast.bootstrap.facts import facts_script
from cloudcast.bootstrap.paths import Paths
from cloudcast.bootstrap.render import hosts_block, render, splice_hosts
from cloudcast.errors import CloudcastError, UnsafeValueError
from cloudcast.inventory.formats import render_inventory
from cloudcast.inventory.hosts import Inventory, build_inventory
from cloudcast.plan import build_plan
from cloudcast.plan.model import NetworkPlan
from cloudcast.spec import Spec, parse_spec
from cloudcast.spec.check import check
from cloudcast.terraform.compile import DEFAULT_SIZE, compile_root, module_name
from cloudcast.verify.probe import probe_addresses, probe_script
from cloudcast.verify.status import status_script
from tests.unit.bootstrap_cases import HOSTS_TEXT, TOOLED, converged

T = TypeVar("T")

S3 = {
    "backend": "s3",
    "bucket": "tf-state",
    "key": "team/net",
    "region": "us-east-1",
    "dynamodb_table": "locks",
    "endpoint": "http://127.0.0.1:5000",
}
MESH: dict[str, Any] = {
    "name": "prop",
    "description": "every provider in one mesh",
    "network": {"overlay": "10.15.0.0/24", "domain": "vpc.internal"},
    "ssh": {"user": "root", "private_key": "keys/id_ed25519"},
    "sites": [
        {"name": "lab", "provider": "lab", "nodes": [
            {"name": "n0"}, {"name": "n1", "behind_nat": True}, {"name": "n2", "behind_nat": "double"}]},
        {"name": "home", "provider": "static", "nodes": [
            {"name": "n3", "ssh": {"host": "203.0.113.7", "user": "admin", "private_key": "keys/home"}}]},
        {"name": "aws-a", "provider": "aws", "region": "us-east-1", "cidr": "10.1.0.0/24",
         "nodes": [{"name": "n4", "size": "t3.micro", "image": "ami-0abc"}]},
        {"name": "lin", "provider": "linode", "region": "us-east",
         "nodes": [{"name": "n5", "size": "g6-nanode-1", "image": "linode/ubuntu22.04"}]},
        {"name": "vul", "provider": "vultr", "region": "ams", "nodes": [{"name": "n6"}]},
    ],
    "services": [{"name": "echo", "node": "n0", "port": 8888}],
    "state": S3,
    "aws_endpoint": "http://127.0.0.1:5000",
}
GATEWAYS: dict[str, Any] = {
    "name": "prop",
    "network": {"overlay": "10.16.0.0/24", "topology": "gateways"},
    "sites": [
        {"name": "east", "provider": "static", "cidr": "10.20.0.0/24", "nodes": [
            {"name": "n0", "role": "gateway", "ssh": {"host": "203.0.113.1"}},
            {"name": "n1", "role": "gateway", "ssh": {"host": "203.0.113.2"}},
            {"name": "n2", "ssh": {"host": "203.0.113.3"}}]},
        {"name": "west", "provider": "lab", "nodes": [{"name": "n3", "role": "gateway"}, {"name": "n4"}]},
        {"name": "aws-a", "provider": "aws", "region": "us-east-1", "cidr": "10.1.0.0/24",
         "nodes": [{"name": "n5", "role": "gateway"}, {"name": "n6"}]},
    ],
    "services": [{"name": "web", "node": "n0", "port": 80}],
}
HUB: dict[str, Any] = {
    "name": "prop",
    "network": {"overlay": "10.17.0.0/24", "topology": "hub"},
    "sites": [
        {"name": "core", "provider": "static", "cidr": "10.30.0.0/24", "nodes": [
            {"name": "n0", "role": "hub", "ssh": {"host": "203.0.113.1"}},
            {"name": "n1", "role": "hub", "ssh": {"host": "203.0.113.2"}}]},
        {"name": "lab", "provider": "lab", "nodes": [{"name": "n2"}, {"name": "n3", "behind_nat": True}]},
        {"name": "lin", "provider": "linode", "region": "us-east", "nodes": [{"name": "n4"}]},
    ],
}


def _ipsec(auth: str) -> dict[str, Any]:
    return {
        "name": "prop",
        "network": {"overlay": "10.18.0.0/24", "topology": "gateways", "transport": "ipsec", "ipsec_auth": auth},
        "sites": [
            {"name": "east", "provider": "static", "cidr": "10.20.0.0/24", "nodes": [
                {"name": "n0", "role": "gateway", "ssh": {"host": "203.0.113.1"}},
                {"name": "n1", "ssh": {"host": "203.0.113.2"}}]},
            {"name": "west", "provider": "lab", "nodes": [{"name": "n2", "role": "gateway"}, {"name": "n3"}]},
            {"name": "aws-a", "provider": "aws", "region": "us-east-1", "cidr": "10.1.0.0/24",
             "nodes": [{"name": "n4", "role": "gateway"}]},
        ],
        "state": S3,
    }


BASES = {"mesh": MESH, "gateways": GATEWAYS, "hub": HUB, "ipsec-psk": _ipsec("psk"), "ipsec-certs": _ipsec("certificates")}
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnly test"
CERT = IpsecCert("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "-----BEGIN CERTIFICATE-----\n")

Path_ = tuple[str | int, ...]


def string_fields(doc: dict[str, Any]) -> list[Path_]:
    """Every string field of `doc` a spec author fills in (names, addresses, users, paths, state...)."""
    paths: list[Path_] = [("name",), ("network", "domain"), ("network", "interface"), ("ssh", "user"),
                          ("ssh", "private_key")]
    paths += [(k,) for k in ("description", "aws_endpoint") if k in doc]
    paths += [("state", k) for k in ("bucket", "key", "region", "dynamodb_table", "endpoint") if "state" in doc]
    for i, site in enumerate(doc["sites"]):
        paths += [("sites", i, "name")] + ([("sites", i, "region")] if "region" in site else [])
        for j in range(len(site["nodes"])):
            paths += [("sites", i, "nodes", j, k) for k in ("name", "size", "image")]
            if site["provider"] == "static":
                paths += [("sites", i, "nodes", j, "ssh", k) for k in ("host", "user", "private_key")]
    paths += [("services", k, "name") for k in range(len(doc.get("services", [])))]
    return paths


def set_in(doc: dict[str, Any], path: Path_, value: str) -> None:
    cur: Any = doc
    for part in path[:-1]:
        cur = cur.setdefault(part, {}) if isinstance(part, str) else cur[part]
    cur[path[-1]] = value


def put(model: Any, path: Path_, value: str) -> Any:
    """`model` with the field at `path` set to `value`, past validation (pydantic's model_copy)."""
    head, rest = path[0], path[1:]
    if isinstance(head, int):
        items = list(model)
        items[head] = put(items[head], rest, value)
        return items
    assert isinstance(model, BaseModel)
    if not rest:
        return model.model_copy(update={head: value})
    return model.model_copy(update={head: put(getattr(model, head), rest, value)})


def get(model: Any, path: Path_) -> Any:
    for part in path:
        model = model[part] if isinstance(part, int) else getattr(model, part)
    return model


NASTY = [
    "\n", "\r", "\x00", "\x0b", "\x85", "\u2028", "\u202e", "\t", " ", "a b", "'", '"', "`id`", "$(id)",
    "; reboot", "&& id", "|", "#", "}", "{", "*", "!", ",", "=", "\\", "%", "%i", "$HOME",
    "\nPostUp = touch /tmp/pwned", "\n[Peer]\nPublicKey = x", "${file(\"/etc/passwd\")}",
    "%{ if true }x%{ endif }", "$${x}", "{{ lookup('pipe', 'id') }}", "\" accept; tcp dport 22 accept comment \"",
    "x }\n\tinjected {", "k\u212a", "é", "~0", "-oProxyCommand=id",
]
TEXT = st.one_of(
    st.text(max_size=16),
    st.sampled_from(NASTY),
    st.builds(lambda a, b, c: a + b + c, st.sampled_from(["", "a1", "us-east-1", "10.0.0.1", "keys/k"]),
              st.sampled_from(NASTY), st.text(max_size=4)),
)


def _b64(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()).decode()


# --- rendering everything, the way the unit tests drive it (no hosts) ---------------------------


def outputs_for(spec: Spec, plan: NetworkPlan) -> dict[str, Any]:
    """Terraform's outputs for every non-static site, as `output -json` would give them."""
    outputs: dict[str, Any] = {}
    for si, site in enumerate(plan.sites):
        if site.provider == "static":
            continue
        nodes = {}
        for ni, name in enumerate(site.nodes):
            node = plan.node(name)
            public = node.lab.public_ip if node.lab else f"198.51.{100 + si}.{ni + 1}"
            private = node.private_ip or (f"100.64.{ni}.2" if node.behind_nat != "none" else public)
            nodes[name] = {"ssh_host": public, "public_ip": public, "private_ip": private, "ssh_port": 22,
                           "instance_id": f"i-{si}{ni}", "eni_id": f"eni-{si}{ni}"}
        outputs[module_name(site.name)] = {"nodes": nodes, "route_table_ids": [f"rtb-{si}"]}
    return outputs


#: what sinks refused in the current example (the benign bases must leave it empty)
REFUSED: list[str] = []


def note(what: str) -> None:
    if currently_in_test_context():
        event(what)  # shown by --hypothesis-show-statistics


def attempt(fn: Callable[[], T]) -> T | None:
    """`fn()`, or None when a sink refused (a CloudcastError): refusing is an allowed outcome."""
    try:
        return fn()
    except CloudcastError as exc:
        REFUSED.append(exc.message)
        note(f"refused: {type(exc).__name__}")
        return None


def blank(value: Any) -> Any:
    """`value` with every string replaced by a plain one of the same truth (structure kept)."""
    if isinstance(value, str):
        return "x" if value else ""
    if isinstance(value, tuple):
        return tuple(blank(v) for v in value)
    if isinstance(value, list):
        return [blank(v) for v in value]
    if isinstance(value, dict):
        return {k: blank(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return replace(value, **{f.name: blank(getattr(value, f.name)) for f in dataclasses.fields(value)})
    assert value is None or isinstance(value, bool | int | float), type(value)
    return value


#: scripts `bash -n` already passed (examples share most of their scripts word for word)
_PARSED: set[str] = set()


def bash_n(scripts: list[str]) -> None:
    """Every script is valid shell: ONE `bash -n` over all of them, each the body of its own function."""
    new = [s for s in dict.fromkeys(scripts) if s not in _PARSED]
    if not new:
        return
    body = "".join(f"__cc_check_{i}() {{\n{s}\n}}\n" for i, s in enumerate(new))
    res = subprocess.run(["bash", "-n"], input=body, text=True, capture_output=True, timeout=30)
    assert res.returncode == 0, res.stderr
    _PARSED.update(new)


# --- the shape checks, one per kind of file ---------------------------------------------------------

WG_KEYS = {
    "Interface": {"Address", "ListenPort", "MTU", "PostUp"},
    "Peer": {"PublicKey", "PresharedKey", "Endpoint", "AllowedIPs", "PersistentKeepalive"},
}


def check_wg_conf(text: str, d: Desired) -> None:
    sections: list[tuple[str, dict[str, list[str]]]] = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if m := re.fullmatch(r"\[(\w+)\]", line):
            sections.append((m.group(1), {}))
            continue
        key, sep, value = line.partition(" = ")
        assert sep and sections and key in WG_KEYS[sections[-1][0]], line
        sections[-1][1].setdefault(key, []).append(value)
    assert [name for name, _ in sections] == ["Interface"] + ["Peer"] * len(d.peers)
    iface = sections[0][1]
    assert iface["Address"] == [d.address] and len(iface["ListenPort"]) == len(iface["MTU"]) == 1
    posts = [shlex.split(v) for v in iface["PostUp"]]
    assert posts[0] == ["wg", "set", "%i", "private-key", "/etc/wireguard/%i.key"]
    assert posts[-1] == ["nft", "-f", d.paths.firewall]
    for (_, keys), peer in zip(sections[1:], d.peers, strict=True):
        assert (keys["PublicKey"], keys["PresharedKey"]) == ([peer.public_key], [peer.psk])
        assert keys["AllowedIPs"] == [", ".join(peer.allowed_ips)]
        assert keys.get("Endpoint", [None]) == [peer.endpoint]


def check_hosts(block: str, entries: list[tuple[str, str, str]], network: str) -> None:
    lines = block.splitlines()
    assert lines[0] == f"# BEGIN cloudcast {network}" and lines[-1] == f"# END cloudcast {network}"
    assert [tuple(line.split()) for line in lines[1:-1]] == entries
    # the block is found again in /etc/hosts exactly as written, the rest of the file untouched
    spliced = splice_hosts(HOSTS_TEXT, network, block)
    assert hosts_block(spliced, network) == block and spliced.startswith(HOSTS_TEXT)


def check_braces(text: str, keys: set[str]) -> list[tuple[int, str]]:
    """strongSwan-style `name {` / `}` / `key = value` lines; returns the (depth, name) of sections."""
    depth, sections = 0, []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line == "}":
            depth -= 1
        elif m := re.fullmatch(r"([\w.-]+) \{", line):
            sections.append((depth, m.group(1)))
            depth += 1
        else:
            key, sep, value = line.partition(" = ")
            assert sep and key in keys and not re.search(r'[{}#"]', value), line
            # the values that come from the plan and hosts are single words
            assert key not in WORDS or not re.search(r"\s", value), line
        assert depth >= 0, line
    assert depth == 0
    return sections


SWANCTL_KEYS = {"version", "remote_addrs", "proposals", "encap", "mobike", "dpd_delay", "rekey_time",
                "keyingtries", "send_cert", "auth", "certs", "id", "cacerts", "local_ts", "remote_ts",
                "esp_proposals", "start_action", "dpd_action", "close_action", "id-local", "id-remote", "secret"}
WORDS = {"remote_addrs", "id", "id-local", "id-remote", "certs", "cacerts", "local_ts", "remote_ts", "secret",
         "path"}
CHARON_KEYS = {"retransmit_timeout", "retransmit_base", "retransmit_tries", "install_routes", "load", "path",
               "default", "ike", "knl", "flush_line", "time_format"}


def check_swanctl(text: str, d: Desired) -> None:
    sections = check_braces(text, SWANCTL_KEYS)
    assert [name for depth, name in sections if depth == 1 and not name.startswith("ike-")] == [
        c.name for c in d.conns
    ]
    children = [name for depth, name in sections if depth == 3]
    assert children == [ch.name for c in d.conns for ch in c.children]
    remotes = re.findall(r"^\t\tremote_addrs = (.*)$", text, re.M)
    assert remotes == [c.remote_addr or "%any" for c in d.conns]


UNIT_KEYS = {"Description", "After", "Wants", "ExecStart", "Restart", "RestartSec", "WantedBy", "Type",
             "RemainAfterExit", "Environment"}


def check_charon(text: str) -> None:
    check_braces(text, CHARON_KEYS)


def check_unit(text: str) -> None:
    for line in text.splitlines():
        if line and not line.startswith("#") and not re.fullmatch(r"\[(Unit|Service|Install)\]", line):
            key, sep, _ = line.partition("=")
            assert sep and key in UNIT_KEYS, line


def check_nft(text: str, d: Desired) -> None:
    depth = 0
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        assert line.count('"') % 2 == 0, line
        depth += line.count("{") - line.count("}")
        assert depth >= 0, line
    assert depth == 0
    comments = re.findall(r'dnat ip to 127\.0\.0\.1:\d+ comment "([^"]*)"$', text, re.M)
    assert comments == [s.name for s in d.services] * 2


def check_routes_sh(text: str, d: Desired) -> None:
    words = [shlex.split(line) for line in text.splitlines() if line.startswith("ip route replace ")]
    assert words == [["ip", "route", "replace", c, "via", v, "proto", "241"] for c, v in d.routes]
    [want] = [line for line in text.splitlines() if line.startswith("want=")]
    assert shlex.split(want) == ["want=" + " ".join(c.removesuffix("/32") for c, _ in d.routes)]
    adds = [shlex.split(line.split(" || ")[1]) for line in text.splitlines() if " || ip address add " in line]
    assert adds == [["ip", "address", "add", a, "dev", "lo"] for a in d.lo_addresses]


def check_failover_sh(text: str, d: Desired) -> None:
    lines = [line.strip() for line in text.splitlines()]
    for line in lines:
        if line.startswith("wg set "):
            words = shlex.split(line)
            assert len(words) == 7 and words[:3] == ["wg", "set", d.paths.interface], line
            assert words[3] == "peer" and words[5] == "allowed-ips", line
        elif line.startswith("ip route replace "):
            words = shlex.split(line)
            assert len(words) == 8 and words[4] == "via" and words[6:] == ["proto", "241"], line


def check_rendered(calls: list[tuple[str, dict[str, Any], str]]) -> None:
    """Each file has as many lines as the same template with plain values: no value made a line."""
    for template, context, text in calls:
        plain = render(template, **blank(context))
        assert text.count("\n") == plain.count("\n"), template
        assert len(text.splitlines()) == len(plain.splitlines()), template


def check_node(plan: NetworkPlan, inv: Inventory, name: str, keys: dict[str, str], scripts: list[str]) -> None:
    """Render one node's files (recording each template's context) and check every one of them."""
    calls: list[tuple[str, dict[str, Any], str]] = []

    def recording(template: str, **context: Any) -> str:
        text = render(template, **context)
        calls.append((template, context, text))
        return text

    node = plan.node(name)
    psks = {pair: _b64(pair) for pair in plan.pairs()}
    certs = plan.ipsec_auth == "certificates"
    with mock.patch.object(desired_module, "render", recording):
        d = attempt(lambda: desired_state(plan, node, inv, keys, psks, systemd=True, userspace=True,
                                          cert=CERT if certs else None))
    if d is None:
        return
    note("rendered a node")
    check_rendered(calls)
    entries = [(e.address, e.fqdn, e.name) for e in host_entries(plan, inv)]
    check_hosts(d.hosts_block, entries, plan.name)
    p = d.paths
    checks: dict[str, Callable[[str], None]] = {
        p.wg_conf: lambda t: check_wg_conf(t, d),
        p.swanctl_conf: lambda t: check_swanctl(t, d),
        p.strongswan_conf: check_charon,
        p.firewall: lambda t: check_nft(t, d),
        p.routes: lambda t: check_routes_sh(t, d),
        p.failover: lambda t: check_failover_sh(t, d),
        p.routes_unit: check_unit,
        p.failover_unit: check_unit,
        p.dropin: check_unit,
    }
    for f in d.files:
        text = f.content.decode()
        if f.path in checks:
            checks[f.path](text)
        if f.path in (p.routes, p.failover):
            scripts.append(text)
    # every command an apply or a teardown of this node would run
    facts = replace(TOOLED, public_key=keys.get(name), systemd=True, kernel_wg=True, hosts=HOSTS_TEXT)
    done = replace(converged(d, systemd=True), charon=d.ipsec, conns=tuple(c.name for c in d.conns),
                   lo_addresses=d.lo_addresses, routes_enabled=True, ipsec_public_key="k" if certs else None)
    bare = replace(facts, tools=frozenset({"apt-get"}), public_key=None)
    actions = [*prepare_actions(bare, p, vpn=d.vpn, transport=plan.transport, certs=certs),
               *apply_actions(d, facts), *teardown_actions(d, done)]
    # file contents travel as base64 (checked above): left out, bash -n checks the commands around them
    light = [replace(a, file=replace(a.file, content=b"")) if a.file else a for a in actions]
    scripts += [build_script(light), syncconf_script(p, len(d.peers)), settle_script(d.initiated_children)]
    scripts += [renew_script(c) for c in d.conns if c.children]
    for a in teardown_actions(d, done):
        if a.command and a.command.startswith("ip route del "):
            assert shlex.split(a.command)[3:] in [[c, "via", v] for c, v in d.routes], a.command
    [want] = [line for line in settle_script(d.initiated_children).splitlines() if line.startswith("want=")]
    assert shlex.split(want) == ["want=" + " ".join(f"{c}:{ch}" for c, ch in d.initiated_children)]


def check_inventory_formats(plan: NetworkPlan, inv: Inventory) -> None:
    hosts = {h.name: h for h in inv.hosts}
    if (text := attempt(lambda: render_inventory(plan, inv, "hosts"))) is not None:
        assert [line.split() for line in text.splitlines()] == [[n.overlay_ip, n.fqdn, n.name] for n in plan.nodes]
    if (text := attempt(lambda: render_inventory(plan, inv, "ssh-config"))) is not None:
        blocks = re.split(r"^(?=Host )", text, flags=re.M)[1:]
        assert len(blocks) == len(plan.nodes)
        for block, node in zip(blocks, plan.nodes, strict=True):
            h = hosts[node.name]
            got = [ssh_config_line(line) for line in block.splitlines()]
            want = [("Host", [node.name, node.fqdn]), ("HostName", [h.ssh_host]), ("Port", [str(h.ssh_port)]),
                    ("User", [h.ssh_user])] + ([("IdentityFile", [h.ssh_key])] if h.ssh_key else [])
            assert got == want
    if (text := attempt(lambda: render_inventory(plan, inv, "ansible"))) is not None:
        groups = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))["all"]["children"]
        found = {name: v for g in groups.values() for name, v in g["hosts"].items()}
        assert set(found) == {n.name for n in plan.nodes}
        for node in plan.nodes:
            h, v = hosts[node.name], found[node.name]
            assert (v["ansible_host"], v["ansible_user"], v["fqdn"]) == (h.ssh_host, h.ssh_user, node.fqdn)
            assert v.get("ansible_ssh_private_key_file") == h.ssh_key
    assert len(json.loads(render_inventory(plan, inv, "json"))) == len(plan.nodes)


_SSH_WORDS = re.compile(r'(?:\s*(?:"[^"]*"|[^\s"]+))*\s*')


def ssh_config_line(line: str) -> tuple[str, list[str]]:
    """An ssh_config(5) line as OpenSSH splits it: keyword, then words (double quotes group)."""
    key, _, rest = line.strip().partition(" ")
    assert _SSH_WORDS.fullmatch(rest), line
    return key, [q or w for q, w in re.findall(r'"([^"]*)"|([^\s"]+)', rest)]


def tf_template_text(s: str) -> str:
    """What Terraform makes of a template string; fails on any interpolation or directive in it."""
    out, i = [], 0
    while i < len(s):
        if s.startswith(("$${", "%%{"), i):
            out.append(s[i + 1 : i + 3])
            i += 3
        else:
            assert not s.startswith(("${", "%{"), i), f"template expression in {s!r}"
            out.append(s[i])
            i += 1
    return "".join(out)


def tf_evaluated(value: Any) -> Any:
    """Terraform's view of evaluated JSON (keys too): every string must be a plain template."""
    if isinstance(value, str):
        return tf_template_text(value)
    if isinstance(value, dict):
        return {tf_template_text(k): tf_evaluated(v) for k, v in value.items()}
    if isinstance(value, list):
        return [tf_evaluated(v) for v in value]
    return value


def check_terraform(spec: Spec, plan: NetworkPlan, public_key: str, retired_region: str) -> None:
    # the modules copied beside main.tf.json are cloudcast's own: not copied here, for speed
    with tempfile.TemporaryDirectory() as tmp, mock.patch("cloudcast.terraform.compile._copy_module"):
        path = attempt(lambda: compile_root(spec, plan, Path(tmp), ssh_public_key=public_key, lab_prefix="cclab",
                                            environ={}, retired_aws={"gone": retired_region}))
        if path is None:
            return
        root = json.loads(path.read_text())
    note("compiled")
    for block in root.get("provider", {}).get("aws", []):
        seen = tf_evaluated({k: v for k, v in block.items() if k != "alias"})  # the alias is literal
        assert seen["default_tags"]["tags"]["cloudcast:network"] == spec.name
    for name, out in root.get("output", {}).items():
        for attr, ref in out["value"].items():
            assert ref == f"${{module.{name}.{attr}}}"  # cloudcast's own reference, nothing else
    for site in spec.sites:
        if site.provider.value == "static":
            continue
        module = root["module"][module_name(site.name)]
        assert module["source"] == f"./modules/{site.provider.value}"
        args = tf_evaluated({k: v for k, v in module.items() if k not in ("source", "providers")})
        assert (args["site"], args["name_prefix"], args["ssh_user"]) == (site.name, spec.name, spec.ssh.user)
        assert args["ssh_public_key"] == public_key
        assert sorted(args["nodes"]) == sorted(n.name for n in site.nodes)
        if site.provider.value != "lab":
            assert args["region"] == (site.region or "")
            for n in site.nodes:
                got = args["nodes"][n.name]
                assert (got["size"], got["image"]) == (n.size or DEFAULT_SIZE[site.provider.value], n.image or "")
    if spec.state.backend.value == "s3":  # read literally by Terraform: written as given
        backend = root["terraform"]["backend"]["s3"]
        assert (backend["bucket"], backend["region"]) == (spec.state.bucket, spec.state.region)


def check_spec(spec: Spec, public_key: str, retired_region: str) -> None:
    """Plan `spec` and check every sink; a refusal at any of them is fine, a broken shape is not."""
    built = attempt(lambda: build_plan(spec))
    if built is None:
        return
    plan = built[0]
    check_terraform(spec, plan, public_key, retired_region)
    inv = attempt(lambda: build_inventory(spec, plan, outputs_for(spec, plan)))
    if inv is None:
        return
    check_inventory_formats(plan, inv)
    keys = {n.name: _b64(n.name) for n in plan.nodes if n.vpn}
    paths = attempt(lambda: Paths(plan.interface))  # the interface is in every path and command
    if paths is None:
        return
    scripts = [status_script(plan.interface), facts_script(paths, ipsec=plan.transport == "ipsec")]
    for node in plan.nodes:
        check_node(plan, inv, node.name, keys, scripts)
        targets = [a for n, a in probe_addresses(plan, inv).items() if n != node.name]
        probe = probe_script(targets, mtu=plan.mtu, retry_seconds=1)
        # shell lines end at "\n" only (a quoted "\r" is part of its word)
        [loop] = [line for line in probe.split("\n") if line.startswith("for t in ")]
        assert shlex.split(loop.removesuffix('; do probe "$t" & done')) == ["for", "t", "in", *targets]
        scripts.append(probe)
    bash_n(scripts)


@st.composite
def mutations(draw: st.DrawFn) -> tuple[dict[str, Any], list[tuple[Path_, str]]]:
    """A base spec (a copy) and up to 8 (string field, generated text) changes to it."""
    doc = copy.deepcopy(BASES[draw(st.sampled_from(sorted(BASES)))])
    return doc, draw(st.lists(st.tuples(st.sampled_from(string_fields(doc)), TEXT), max_size=8))


SETTINGS = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(mutations(), TEXT, TEXT)
def test_specs_validation_accepts_render_to_the_intended_shape(
    case: tuple[dict[str, Any], list[tuple[Path_, str]]], key: str, region: str
) -> None:
    """Generated text goes into every string field validation accepts it in (it is put back elsewhere)."""
    doc, changes = case
    for path, value in changes:
        candidate = copy.deepcopy(doc)
        set_in(candidate, path, value)
        try:
            spec = parse_spec(candidate)
        except CloudcastError:
            continue
        if not check(spec):
            doc = candidate
            note(f"validation accepted {path[-1]}")
    spec = parse_spec(doc)
    assert not check(spec)
    check_spec(spec, key or KEY, region or "us-west-2")


@SETTINGS
@given(mutations(), TEXT, TEXT)
def test_sinks_hold_without_validation(
    case: tuple[dict[str, Any], list[tuple[Path_, str]]], key: str, region: str
) -> None:
    """The same, with the values put into the parsed spec past validation: the sinks alone hold."""
    doc, changes = case
    spec = parse_spec(doc)
    for path, value in changes:
        if path[-1] != "name":
            spec = put(spec, path, value)
            continue
        # a name keeps its old one as a prefix, so names stay unique; services follow their node
        old = get(spec, path)
        spec = put(spec, path, old + value)
        for k, svc in enumerate(spec.services if path[0] == "sites" and len(path) == 5 else []):
            if svc.node == old:
                spec = put(spec, ("services", k, "node"), old + value)
    check_spec(spec, key, region)


@pytest.mark.parametrize("name", sorted(BASES))
def test_benign_bases_pass_every_sink(name: str) -> None:
    """The bases themselves are refused nowhere: the properties above are not vacuous."""
    REFUSED.clear()
    check_spec(parse_spec(BASES[name]), KEY, "us-west-2")
    assert REFUSED == []


def _sinks(spec: Spec) -> dict[str, Callable[[], object]]:
    plan, _ = build_plan(spec)

    def inventory() -> Inventory:
        return build_inventory(spec, plan, outputs_for(spec, plan))

    def hosts() -> None:
        keys = {n.name: _b64(n.name) for n in plan.nodes}
        psks = {pair: _b64(pair) for pair in plan.pairs()}
        for node in plan.nodes:
            desired_state(plan, node, inventory(), keys, psks)

    def terraform() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            compile_root(spec, plan, Path(tmp), ssh_public_key=KEY, environ={})

    formats = {f: (lambda f=f: render_inventory(plan, inventory(), f)) for f in ("hosts", "ssh-config", "ansible")}
    return {"host files": hosts, "terraform": terraform, **formats}


@pytest.mark.parametrize(
    ("path", "value", "sink"),
    [
        (("sites", 0, "nodes", 1, "name"), "n1\nPostUp = touch /tmp/pwned", "host files"),
        (("sites", 0, "nodes", 1, "name"), "n1\nPostUp = touch /tmp/pwned", "hosts"),
        (("sites", 0, "nodes", 1, "name"), "*", "ssh-config"),
        (("network", "domain"), "vpc.internal\n[Peer]", "host files"),
        (("network", "interface"), "cc0;reboot", "host files"),
        (("sites", 1, "nodes", 0, "ssh", "host"), "203.0.113.7\nPostUp = id", "host files"),
        (("sites", 1, "nodes", 0, "ssh", "host"), "203.0.113.7 evil.example", "host files"),
        (("sites", 1, "nodes", 0, "ssh", "host"), '203.0.113.7\n  ProxyCommand id', "ssh-config"),
        (("sites", 1, "nodes", 0, "ssh", "private_key"), 'k" ProxyCommand "id', "ssh-config"),
        (("sites", 0, "name"), 'lab}${file("/etc/passwd")}', "terraform"),
        (("ssh", "user"), "{{ lookup('pipe', 'id') }}", "ansible"),
        (("ssh", "user"), "-oProxyCommand=id", "ansible"),
    ],
)
def test_known_injections_are_refused_at_their_sink(path: Path_, value: str, sink: str) -> None:
    """Values the validation of the time let through, each refused where it would have landed."""
    with pytest.raises(UnsafeValueError):
        _sinks(put(parse_spec(MESH), path, value))[sink]()


def test_spec_strings_reach_terraform_as_literals(tmp_path: Path) -> None:
    spec = put(put(parse_spec(MESH), ("sites", 2, "nodes", 0, "size"), '${file("/etc/passwd")}'),
               ("sites", 2, "region"), "%{ for x in [1] }x%{ endfor }")
    plan, _ = build_plan(spec)
    root = json.loads(compile_root(spec, plan, tmp_path, ssh_public_key=KEY, environ={}).read_text())
    module = root["module"]["site_aws_a"]
    assert module["nodes"]["n4"]["size"] == '$${file("/etc/passwd")}'
    assert module["region"] == "%%{ for x in [1] }x%%{ endfor }"
    assert root["provider"]["aws"][0]["region"] == "%%{ for x in [1] }x%%{ endfor }"
    assert root["output"]["site_aws_a"]["value"]["nodes"] == "${module.site_aws_a.nodes}"
