"""Hostile specs: values an attacker would put in a pull request, each refused with one pinned line.

Every case runs through `cloudcast validate` in-process: exit 1, the pinned `path: reason` line,
no traceback, within 5 s and 300 MB. `plan` of a hostile spec writes nothing.
"""

from __future__ import annotations

import copy
import json
import os
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.unit.test_spec_catalogue import BASE, CASES, _set

Mutation = Callable[[dict[str, Any]], None]
PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAvS3yiaVT3L68Ud/K3yVmaI9JOZChY2Af7rEb3HhpK6 test\n"

HOST = "sites.1.nodes.0.ssh.host"
HOST_AT = "sites[1].nodes[0].ssh.host"
NOT_HOST = "is not an IPv4 address or an RFC 1123 host name"
TOKEN = "is not a provider identifier (letters, digits and . _ : / -; no spaces, quotes, '${' or '%{')"
LOGIN = "is not a POSIX login name"
PATH_BAD = "is not a usable path"
IFACE_SYS = "is (or looks like) a device of the host itself; name the tunnel something of its own, like cc0"
LABEL = "is not a valid hostname label (letters, digits, '-')"
SUFFIX = "is a public suffix: names under it belong to others (use a domain of your own, like vpc.internal)"
NOT_URL = "is not an http(s) URL"
NOT_KEY = "is not an OpenSSH public key (one line: TYPE BASE64 [COMMENT])"


def _s3(**state: Any) -> Mutation:
    return _set("state", {"backend": "s3", "bucket": "team-state", "region": "us-east-1", **state})


HOSTILE: list[tuple[str, Mutation, str]] = [
    # ssh.host: becomes the node's address in routes.sh, wg.conf Endpoint, /etc/hosts, swanctl.conf
    ("host shell", _set(HOST, "192.168.10.1; touch /tmp/x"), f"{HOST_AT}: '192.168.10.1; touch /tmp/x' {NOT_HOST}"),
    ("host newline PreUp", _set(HOST, "203.0.113.7\nPreUp = touch /tmp/x"), f"{HOST_AT}: '203.0.113.7\\nPreUp = touch /tmp/x' {NOT_HOST}"),
    ("host hosts line", _set(HOST, "203.0.113.66 bank.example.com"), f"{HOST_AT}: '203.0.113.66 bank.example.com' {NOT_HOST}"),
    ("host command subst", _set(HOST, "$(id)"), f"{HOST_AT}: '$(id)' {NOT_HOST}"),
    ("host backticks", _set(HOST, "`id`"), f"{HOST_AT}: '`id`' {NOT_HOST}"),
    ("host ssh option", _set(HOST, "-oProxyCommand=x"), f"{HOST_AT}: '-oProxyCommand=x' {NOT_HOST}"),
    ("host underscore", _set(HOST, "my_host"), f"{HOST_AT}: 'my_host' {NOT_HOST}"),
    ("host numeric label", _set(HOST, "1.2.3"), f"{HOST_AT}: '1.2.3' {NOT_HOST}"),
    ("host bad octet", _set(HOST, "999.1.1.1"), f"{HOST_AT}: '999.1.1.1' {NOT_HOST}"),
    ("host ipv6", _set(HOST, "::1"), f"{HOST_AT}: '::1' {NOT_HOST}"),
    ("host space", _set(HOST, "exa mple.com"), f"{HOST_AT}: 'exa mple.com' {NOT_HOST}"),
    ("host unicode", _set(HOST, "\u017f.example"), f"{HOST_AT}: '\u017f.example' {NOT_HOST}"),
    ("host trailing newline", _set(HOST, "203.0.113.7\n"), f"{HOST_AT}: '203.0.113.7\\n' {NOT_HOST}"),
    ("host empty", _set(HOST, ""), f"{HOST_AT}: string should have at least 1 character"),
    ("host too long", _set(HOST, "a" * 254), f"{HOST_AT}: string should have at most 253 characters"),
    ("host number", _set(HOST, 3232235777), f"{HOST_AT}: input should be a valid string"),
    # sizes, images, regions: copied into main.tf.json, where Terraform evaluates ${...} and %{...}
    ("size tf interpolation", _set("sites.0.nodes.0.size", '${file("/etc/shadow")}'), f"sites[0].nodes[0].size: '${{file(\"/etc/shadow\")}}' {TOKEN}"),
    ("size tf directive", _set("sites.0.nodes.0.size", "%{ for x in y }"), f"sites[0].nodes[0].size: '%{{ for x in y }}' {TOKEN}"),
    ("size quote", _set("sites.0.nodes.0.size", "t3.micro'"), f"sites[0].nodes[0].size: \"t3.micro'\" {TOKEN}"),
    ("size number", _set("sites.0.nodes.0.size", 5), "sites[0].nodes[0].size: input should be a valid string (5)"),
    ("image tf interpolation", _set("sites.0.nodes.0.image", "${path.module}"), "sites[0].nodes[0].image: '${path.module}' is not an image id or AMI name pattern"),
    ("image double quote", _set("sites.0.nodes.0.image", 'ami-123"'), "sites[0].nodes[0].image: 'ami-123\"' is not an image id or AMI name pattern"),
    ("image space", _set("sites.0.nodes.0.image", "ubuntu 22.04"), "sites[0].nodes[0].image: 'ubuntu 22.04' is not an image id or AMI name pattern"),
    ("region newline", _set("sites.0.region", "us-east-1\n"), f"sites[0].region: 'us-east-1\\n' {TOKEN}"),
    ("region space", _set("sites.0.region", "us east"), f"sites[0].region: 'us east' {TOKEN}"),
    ("region tf", _set("sites.0.region", "${var.x}"), f"sites[0].region: '${{var.x}}' {TOKEN}"),
    ("region leading dash", _set("sites.0.region", "-us"), f"sites[0].region: '-us' {TOKEN}"),
    # ssh.user: into main.tf.json, ssh-config, Ansible inventory
    ("user ProxyCommand", _set("ssh.user", "root\n  ProxyCommand touch /tmp/x"), f"ssh.user: 'root\\n  ProxyCommand touch /tmp/x' {LOGIN}"),
    ("user upper", _set("ssh.user", "Root"), f"ssh.user: 'Root' {LOGIN}"),
    ("user option", _set("ssh.user", "-oProxyCommand"), f"ssh.user: '-oProxyCommand' {LOGIN}"),
    ("user space", _set("ssh.user", "user name"), f"ssh.user: 'user name' {LOGIN}"),
    ("user too long", _set("ssh.user", "a" * 40), f"ssh.user: '{'a' * 40}' {LOGIN}"),
    ("user tf", _set("ssh.user", "${file(\"/etc/shadow\")}"), f"ssh.user: '${{file(\"/etc/shadow\")}}' {LOGIN}"),
    ("node user semicolon", _set("sites.1.nodes.0.ssh.user", "admin;id"), f"sites[1].nodes[0].ssh.user: 'admin;id' {LOGIN}"),
    ("user empty", _set("ssh.user", ""), f"ssh.user: '' {LOGIN}"),
    # key paths: into ssh-config IdentityFile and onto the SSH connection
    ("key newline", _set("ssh.private_key", "~/.ssh/id\n  ProxyCommand x"), f"ssh.private_key: '~/.ssh/id\\n  ProxyCommand x' {PATH_BAD}"),
    ("key option", _set("ssh.private_key", "-oProxyCommand=x"), f"ssh.private_key: '-oProxyCommand=x' {PATH_BAD}"),
    ("key percent token", _set("ssh.private_key", "key%d"), f"ssh.private_key: 'key%d' {PATH_BAD}"),
    ("key inner tilde", _set("ssh.private_key", "~/a~b"), f"ssh.private_key: '~/a~b' {PATH_BAD}"),
    ("key other home", _set("ssh.private_key", "~0"), f"ssh.private_key: '~0' {PATH_BAD}"),
    ("key user home", _set("ssh.private_key", "~root/.ssh/id"), f"ssh.private_key: '~root/.ssh/id' {PATH_BAD}"),
    ("key dollar", _set("sites.1.nodes.0.ssh.private_key", "$(id)"), f"sites[1].nodes[0].ssh.private_key: '$(id)' {PATH_BAD}"),
    ("key quote", _set("ssh.private_key", 'id"x'), f"ssh.private_key: 'id\"x' {PATH_BAD}"),
    ("key device", _set("ssh.private_key", "/dev/zero"), "ssh.private_key: /dev/zero is not a regular file ('/dev/zero')"),
    ("key directory", _set("ssh.private_key", "/tmp"), "ssh.private_key: /tmp is not a regular file ('/tmp')"),
    ("known_hosts device", _set("ssh.known_hosts", "/dev/zero"), "ssh.known_hosts: /dev/zero is not a regular file ('/dev/zero')"),
    ("known_hosts fifo", _set("ssh.known_hosts", "{tmp}/fifo"), "ssh.known_hosts: {tmp}/fifo is not a regular file"),
    # the public key: its content goes to main.tf.json and authorized_keys; it is checked, never echoed
    ("public key passwd", _set("ssh.public_key", "/etc/passwd"), f"ssh.public_key: /etc/passwd {NOT_KEY}"),
    ("public key device", _set("ssh.public_key", "/dev/zero"), "ssh.public_key: /dev/zero is not a regular file"),
    ("public key fifo", _set("ssh.public_key", "{tmp}/fifo"), "ssh.public_key: {tmp}/fifo is not a regular file"),
    ("public key two keys", _set("ssh.public_key", "{tmp}/two.pub"), f"ssh.public_key: {{tmp}}/two.pub {NOT_KEY}"),
    ("public key garbage", _set("ssh.public_key", "{tmp}/garbage.pub"), f"ssh.public_key: {{tmp}}/garbage.pub {NOT_KEY}"),
    ("public key huge", _set("ssh.public_key", "{tmp}/huge.pub"), "ssh.public_key: {tmp}/huge.pub is 20000 bytes, too large for an SSH public key"),
    ("public key beside private", _set("ssh.private_key", "{tmp}/bad"), f"ssh.public_key: {{tmp}}/bad.pub {NOT_KEY}"),
    ("public key directory", _set("ssh.public_key", "/etc"), "ssh.public_key: /etc is not a regular file"),
    # the tunnel interface: an uplink name would open the firewall and be deleted by destroy
    ("interface eth0", _set("network.interface", "eth0"), f"network.interface: 'eth0' {IFACE_SYS}"),
    ("interface lo", _set("network.interface", "lo"), f"network.interface: 'lo' {IFACE_SYS}"),
    ("interface ens3", _set("network.interface", "ens3"), f"network.interface: 'ens3' {IFACE_SYS}"),
    ("interface all", _set("network.interface", "all"), f"network.interface: 'all' {IFACE_SYS}"),
    ("interface wlp2s0", _set("network.interface", "wlp2s0"), f"network.interface: 'wlp2s0' {IFACE_SYS}"),
    ("interface docker0", _set("network.interface", "docker0"), f"network.interface: 'docker0' {IFACE_SYS}"),
    ("interface br0", _set("network.interface", "br0"), f"network.interface: 'br0' {IFACE_SYS}"),
    ("interface lab lan", _set("network.interface", "lan0"), f"network.interface: 'lan0' {IFACE_SYS}"),
    ("interface dash", _set("network.interface", "-cc0"), "network.interface: string should match pattern"),
    ("interface newline", _set("network.interface", "cc0\n"), "network.interface: string should match pattern"),
    ("interface percent", _set("network.interface", "%i"), "network.interface: string should match pattern"),
    # names: ASCII labels anchored at the very end; system names refused
    ("name trailing newline", _set("sites.0.nodes.0.name", "web\n"), f"sites[0].nodes[0].name: 'web\\n' {LABEL}"),
    ("name long s", _set("sites.0.nodes.0.name", "\u017f"), f"sites[0].nodes[0].name: '\u017f' {LABEL}"),
    ("name kelvin", _set("sites.0.nodes.0.name", "\u212a"), f"sites[0].nodes[0].name: '\u212a' {LABEL}"),
    ("name localhost", _set("sites.0.nodes.0.name", "localhost"), "sites[0].nodes[0].name: 'localhost' is a name the system already uses in /etc/hosts; pick another"),
    ("name ip6-localhost", _set("sites.0.nodes.0.name", "ip6-localhost"), "sites[0].nodes[0].name: 'ip6-localhost' is a name the system already uses in /etc/hosts"),
    ("site name semicolon", _set("sites.0.name", "a;b"), f"sites[0].name: 'a;b' {LABEL}"),
    ("network name subst", _set("name", "$(id)"), f"name: '$(id)' {LABEL}"),
    ("service name space", _set("services.0.name", "x y"), f"services[0].name: 'x y' {LABEL}"),
    ("service node newline", _set("services.0.node", "a1\n"), f"services[0].node: 'a1\\n' {LABEL}"),
    ("name 100 KB", _set("sites.0.nodes.0.name", "a" * 100_000), "sites[0].nodes[0].name: string should have at most 63 characters"),
    ("name tf", _set("sites.0.name", "${x}"), f"sites[0].name: '${{x}}' {LABEL}"),
    # the domain: nodes become NAME.DOMAIN in every /etc/hosts
    ("domain com", _set("network.domain", "com"), f"network.domain: 'com' {SUFFIX}"),
    ("domain co.uk", _set("network.domain", "co.uk"), f"network.domain: 'co.uk' {SUFFIX}"),
    ("domain github.io", _set("network.domain", "github.io"), f"network.domain: 'github.io' {SUFFIX}"),
    ("domain newline", _set("network.domain", "vpc.internal\nevil"), "network.domain: 'vpc.internal\\nevil' is not a valid domain name"),
    ("domain dash", _set("network.domain", "-x.internal"), "network.domain: '-x.internal' is not a valid domain name"),
    ("domain localhost", _set("network.domain", "localhost"), "network.domain: 'localhost' is a name the system already uses"),
    ("domain numeric", _set("network.domain", "a.b.123"), "network.domain: 'a.b.123' is not a valid domain name (its last label is a number)"),
    ("domain too long", _set("network.domain", "x" * 300), "network.domain: string should have at most 200 characters"),
    ("domain unicode", _set("network.domain", "vpc.\u212aa"), "network.domain: 'vpc.\u212aa' is not a valid domain name"),
    # numbers and booleans are strict
    ("port string", _set("network.port", "51871"), "network.port: input should be a valid integer ('51871')"),
    ("port bool", _set("network.port", True), "network.port: input should be a valid integer (True)"),
    ("port float", _set("network.port", 51871.0), "network.port: input should be a valid integer (51871.0)"),
    ("keepalive bool", _set("network.keepalive", True), "network.keepalive: input should be a valid integer (True)"),
    ("mtu fraction", _set("network.mtu", 1420.5), "network.mtu: input should be a valid integer (1420.5)"),
    ("ssh port string", _set("ssh.port", "22"), "ssh.port: input should be a valid integer ('22')"),
    ("service port string", _set("services.0.port", "80"), "services[0].port: input should be a valid integer ('80')"),
    ("site_prefix bool", _set("network.site_prefix", True), "network.site_prefix: input should be a valid integer (True)"),
    ("behind_nat yes", _set("sites.1.nodes.0.behind_nat", "yes"), "sites[1].nodes[0].behind_nat: 'yes' must be true, false or \"double\""),
    ("behind_nat one", _set("sites.1.nodes.0.behind_nat", 1), "sites[1].nodes[0].behind_nat: 1 must be true, false or \"double\""),
    ("use_lockfile string", _s3(use_lockfile="true"), "state.use_lockfile: input should be a valid boolean ('true')"),
    # CIDRs are strings
    ("overlay integer", _set("network.overlay", 167772160), "network.overlay: 167772160 is not a CIDR string like 10.0.0.0/16"),
    ("source integer", _set("ssh.sources", [0]), "ssh.sources[0]: 0 is not a CIDR string like 10.0.0.0/16"),
    ("cidr newline", _set("sites.0.cidr", "10.1.0.0/16\n"), "sites[0].cidr: input is not a valid IPv4 network"),
    # state: where Terraform's state and the secrets go
    ("state dir escapes", _set("state", {"dir": "../../etc"}), "state.dir: '../../etc' leaves the place it names ('..'); give the directory itself"),
    ("state dir inner dots", _set("state", {"dir": "/tmp/x/../../etc"}), "state.dir: '/tmp/x/../../etc' leaves the place it names"),
    ("state dir newline", _set("state", {"dir": "x\ny"}), f"state.dir: 'x\\ny' {PATH_BAD}"),
    ("state key dots", _s3(key="../other"), "state.key: '../other' is not an S3 key prefix that stays where it says"),
    ("state key absolute", _s3(key="/abs"), "state.key: '/abs' is not an S3 key prefix that stays where it says"),
    ("state key empty segment", _s3(key="a//b"), "state.key: 'a//b' is not an S3 key prefix that stays where it says"),
    ("state key tf", _s3(key="${x}"), "state.key: '${x}' is not an S3 key prefix that stays where it says"),
    ("bucket upper", _s3(bucket="My_Bucket"), "state.bucket: 'My_Bucket' is not an S3 bucket name (3-63 of a-z, 0-9, '.', '-')"),
    ("state region", _s3(region="us-east-1; x"), "state.region: 'us-east-1; x' is not an AWS region like us-east-1"),
    ("endpoint file", _s3(endpoint="file:///etc/passwd"), f"state.endpoint: 'file:///etc/passwd' {NOT_URL}"),
    ("endpoint credentials", _s3(endpoint="http://user:pw@127.0.0.1:5000"), f"state.endpoint: 'http://user:pw@127.0.0.1:5000' {NOT_URL} like http://127.0.0.1:5000 (no credentials)"),
    ("endpoint tf", _s3(endpoint="http://127.0.0.1:5000/${x}"), f"state.endpoint: 'http://127.0.0.1:5000/${{x}}' {NOT_URL} (no spaces, quotes or braces)"),
    ("dynamodb table", _s3(dynamodb_table="t;x"), "state.dynamodb_table: 't;x' is not a DynamoDB table name"),
    ("aws endpoint gopher", _set("aws_endpoint", "gopher://127.0.0.1"), f"aws_endpoint: 'gopher://127.0.0.1' {NOT_URL}"),
    ("aws endpoint port", _set("aws_endpoint", "http://127.0.0.1:99999"), f"aws_endpoint: 'http://127.0.0.1:99999' {NOT_URL}"),
    ("aws endpoint newline", _set("aws_endpoint", "http://127.0.0.1\n"), f"aws_endpoint: 'http://127.0.0.1\\n' {NOT_URL}"),
    # free text and structure
    ("description escape", _set("description", "\x1b[31mred"), "description: '\\x1b[31mred' has control characters"),
    ("schema javascript", _set("$schema", "javascript:alert(1)"), "$schema: 'javascript:alert(1)' is not a JSON Schema URL or path"),
    ("service protocol", _set("services.0.protocol", "icmp"), "services[0].protocol: unknown value 'icmp'; expected 'tcp' or 'udp'"),
    ("node password", _set("sites.1.nodes.0.ssh", {"host": "203.0.113.7", "password": "x"}), "sites[1].nodes[0].ssh.password: unknown key"),
    ("sites object", _set("sites", {"a": 1}), "sites: input should be a valid list"),
    ("proto key", _set("__proto__", {}), "__proto__: unknown key"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Files a hostile spec points at: a FIFO, keys that are not one key, a huge key."""
    tmp = tmp_path_factory.mktemp("hostile")
    os.mkfifo(tmp / "fifo")
    (tmp / "two.pub").write_text(PUB + PUB)
    (tmp / "garbage.pub").write_text("ssh-ed25519 not-base64 x\n")
    (tmp / "huge.pub").write_text("x" * 20000)
    (tmp / "bad").write_text("private")
    (tmp / "bad.pub").write_text("root:x:0:0:root:/root:/bin/bash\n")
    return tmp


def _fill(value: Any, tmp: Path) -> Any:
    if isinstance(value, str):
        return value.replace("{tmp}", str(tmp))
    if isinstance(value, dict):
        return {k: _fill(v, tmp) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, tmp) for v in value]
    return value


@pytest.mark.parametrize(("mutate", "expected"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_hostile_spec_is_refused_with_one_line(mutate: Mutation, expected: str, files: Path, tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    mutate(doc)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(_fill(doc, files)))
    tracemalloc.start()
    start = time.monotonic()
    try:
        result = run_cli("validate", str(path), environ={"HOME": str(tmp_path)})
        elapsed = time.monotonic() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    lines = result.err.splitlines()
    assert result.code == 1, result
    assert any(line.startswith(expected.replace("{tmp}", str(files))) for line in lines), lines
    assert lines[-1].startswith("cloudcast: error: the spec has "), lines
    assert "Traceback" not in result.err and "internal error" not in result.err
    assert result.out == ""
    assert elapsed < 5 and peak < 300 * 2**20, (elapsed, peak)


def test_hostile_spec_plans_nothing_and_writes_nothing(tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    doc["sites"][1]["nodes"][0]["ssh"]["host"] = "192.168.10.1; touch /tmp/x"
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(doc))
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_cli("plan", str(path), "--skip-preflight", environ={"HOME": str(tmp_path)})
    assert result.code == 1
    assert f"{HOST_AT}: '192.168.10.1; touch /tmp/x' {NOT_HOST}" in result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no .cloudcast work dir


def test_catalogues_together_hold_at_least_120_hostile_and_broken_specs() -> None:
    from tests.unit import test_spec_load_bounds

    load_cases = sum(1 for name in dir(test_spec_load_bounds) if name.startswith("test_"))
    assert len(HOSTILE) + len(CASES) + load_cases >= 120
    assert len(HOSTILE) >= 100


def test_a_valid_key_and_benign_values_still_pass(tmp_path: Path) -> None:
    (tmp_path / "id").write_text("private")
    (tmp_path / "id.pub").write_text(PUB)
    doc = copy.deepcopy(BASE)
    doc["ssh"]["private_key"] = str(tmp_path / "id")
    doc["sites"][0]["nodes"][0]["image"] = "ubuntu/images/hvm-ssd/ubuntu-noble-24.04-amd64-server-*"
    doc["sites"][1]["nodes"][0]["ssh"]["host"] = "home.example.net"
    doc["network"]["domain"] = "corp.example.com"
    doc["network"]["interface"] = "wg7"
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(doc))
    result = run_cli("validate", str(path), environ={"HOME": str(tmp_path)})
    assert result.code == 0, result
