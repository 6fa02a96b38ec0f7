"""The access policy on real lab hosts (issue 14, point 5).

examples/lab-policy.json: web1, web2 (site front, tag web), app1 (app), db1 (db) and admin in a
WireGuard mesh, with web -> app:8080, app -> db:5432 and SSH from admin to front and back.
`verify` proves each allowed flow and a sample of denied ones (web -> db among them); a
policy change while a continuous ping and a TCP stream run on an allowed pair loses nothing
and restarts no tunnel. Then the same policy over site gateways: members are guarded by their
gateway's forward chain.

Only one lab can exist at a time: each class builds its own network (class-scoped lab).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import EXAMPLES
from tests.lab.conftest import fresh_lab
from tests.lab.labkit import LabNet, write_spec

pytestmark = pytest.mark.lab

TIERS: dict[str, Any] = json.loads((EXAMPLES / "lab-policy.json").read_text())


def verify_doc(net: LabNet) -> tuple[int, dict[str, Any]]:
    res = net.cli("verify", str(net.spec), "--workdir", str(net.workdir), "--json")
    docs = [json.loads(line) for line in res.out.splitlines() if line.startswith("{")]
    doc = next(d for d in docs if d.get("type") == "verify")
    return res.code, doc


def flow(doc: dict[str, Any], src: str, dst: str, port: int | None) -> dict[str, Any]:
    return next(c for c in doc["flows"]["checks"] if (c["src"], c["dst"], c["port"]) == (src, dst, port))


def tcp(net: LabNet, src: str, dst: str, port: int) -> bool:
    """`src` completes a TCP connect to `dst`:`port` over the overlay (a listener is started there)."""
    pid = net.sh(dst, f"setsid timeout 20 socat TCP4-LISTEN:{port},reuseaddr,fork SYSTEM:'echo hi' "
                 "</dev/null >/dev/null 2>&1 & echo $!").stdout.strip()
    time.sleep(0.5)
    try:
        target = f"TCP4:{dst}.{net_domain(net)}:{port},connect-timeout=3"
        return net.sh(src, f"timeout 5 socat -u OPEN:/dev/null {target}").returncode == 0
    finally:
        net.sh(dst, f"kill {int(pid)}")


def net_domain(net: LabNet) -> str:
    return str(json.loads(net.spec.read_text())["network"]["domain"])


class TestTiers:
    @pytest.fixture(scope="class")
    def net(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabNet]:
        with fresh_lab() as prefix:
            yield LabNet(prefix, tmp_path_factory.mktemp("policy"), "lab-policy.json")

    def test_a_apply_and_verify_prove_every_allowed_flow_and_that_web_never_reaches_db(self, net: LabNet) -> None:
        res = net.apply()
        assert res.code == 0, res.err[-3000:]
        assert "20/20 pairs reachable over the overlay" in res.out, res.out  # echo stays open
        assert "0 violations" in res.out, res.out
        code, doc = verify_doc(net)
        assert code == 0 and doc["ok"], json.dumps(doc.get("flows"), indent=1)[:4000]
        flows = doc["flows"]
        assert flows["violations"] == []
        allowed = {(c["src"], c["dst"], c["port"]) for c in flows["checks"] if c["allowed"]}
        assert {("web1", "app1", 8080), ("web2", "app1", 8080), ("app1", "db1", 5432)} <= allowed
        assert {("admin", n, 22) for n in ("web1", "web2", "app1", "db1")} <= allowed
        assert all(c["verdict"] == "allowed-reachable" for c in flows["checks"] if c["allowed"])
        for src in ("web1", "web2"):
            assert flow(doc, src, "db1", 5432)["verdict"] == "denied-blocked"
        # and by hand, beside verify: the firewall drops it, app1 gets through
        assert not tcp(net, "web1", "db1", 5432)
        assert tcp(net, "app1", "db1", 5432)
        # SSH over the overlay only from admin; the underlay's SSH (cloudcast's own) stays open
        assert flow(doc, "web1", "admin", 22)["verdict"] == "denied-blocked"
        nft = net.sh("db1", "nft list chain inet cloudcast policy_in").stdout
        assert "tcp dport 5432 accept" in nft and "drop" in nft, nft

    def test_b_the_service_honours_the_policy(self, net: LabNet) -> None:
        # api (app1:8080) listens on loopback; the overlay reaches it only from web
        pid = net.sh("app1", "setsid timeout 30 socat TCP4-LISTEN:8080,bind=127.0.0.1,reuseaddr,fork "
                     "SYSTEM:'echo api' </dev/null >/dev/null 2>&1 & echo $!").stdout.strip()
        time.sleep(0.5)
        domain = net_domain(net)
        try:
            ok = net.sh("web1", f"timeout 5 socat -T 3 - TCP4:app1.{domain}:8080,connect-timeout=3 </dev/null")
            assert "api" in ok.stdout, ok.stdout + ok.stderr
            denied = net.sh("db1", f"timeout 5 socat -T 3 - TCP4:app1.{domain}:8080,connect-timeout=3 </dev/null")
            assert "api" not in denied.stdout
        finally:
            net.sh("app1", f"kill {int(pid)}")

    def test_c_reapply_touches_nothing(self, net: LabNet) -> None:
        res = net.apply()
        assert res.code == 0, res.err[-3000:]
        assert "already up to date; nothing changed" in res.err

    def test_d_a_policy_change_under_traffic_loses_nothing_and_restarts_no_tunnel(self, net: LabNet) -> None:
        domain = net_domain(net)
        app = f"app1.{domain}"
        ifindex = {h: net.sh(h, "cat /sys/class/net/cc0/ifindex").stdout for h in ("web1", "app1", "db1")}
        # a TCP stream web1 -> app1:8080 (numbered lines, 20 s) and a ping every 0.1 s alongside
        net.sh("app1", "rm -f /tmp/stream.out; setsid timeout 60 socat -u TCP4-LISTEN:8080,reuseaddr "
               "OPEN:/tmp/stream.out,creat,append </dev/null >/dev/null 2>&1 &")
        time.sleep(0.5)
        net.sh("web1", "rm -f /tmp/stream.rc /tmp/ping.log; setsid sh -c '"
               "i=0; while [ $i -lt 400 ]; do echo line-$i; i=$((i+1)); sleep 0.05; done "
               f"| socat -u - TCP4:{app}:8080; echo $? > /tmp/stream.rc' </dev/null >/dev/null 2>&1 &")
        net.sh("web1", f"setsid ping -n -i 0.1 -c 200 -W 1 {app} </dev/null >/tmp/ping.log 2>&1 &")
        time.sleep(3)
        # change the policy: db also open to admin, and web -> app widened to a range
        doc = copy.deepcopy(TIERS)
        doc["policy"][0]["ports"] = [{"first": 8080, "last": 8090}]
        doc["policy"].append({"from": ["admin"], "to": ["db"], "ports": [5432]})
        write_spec(net.spec, doc)
        plan = net.cli("plan", str(net.spec), "--workdir", str(net.workdir), "-detailed-exitcode")
        assert plan.code == 2, plan.err[-2000:]
        assert "policy +tcp/5432 from admin to db1 (policy[3])" in plan.out, plan.out
        assert "policy +tcp/8080-8090 from web1, web2 to app1 (policy[0])" in plan.out, plan.out
        res = net.apply()
        assert res.code == 0, res.err[-3000:]
        assert "load nftables table inet cloudcast" in res.err, res.err[-3000:]
        assert "sync cc0 peers" not in res.err and "bring up cc0" not in res.err, res.err[-3000:]
        deadline = time.monotonic() + 40
        while net.sh("web1", "cat /tmp/stream.rc 2>/dev/null").stdout.strip() == "":
            assert time.monotonic() < deadline, "the stream did not finish"
            time.sleep(1)
        assert net.sh("web1", "cat /tmp/stream.rc").stdout.strip() == "0"
        lines = net.sh("app1", "cat /tmp/stream.out").stdout.split()
        assert lines == [f"line-{i}" for i in range(400)], lines[-5:]
        deadline = time.monotonic() + 30
        while "packets transmitted" not in (ping := net.sh("web1", "cat /tmp/ping.log").stdout):
            assert time.monotonic() < deadline, ping[-500:]
            time.sleep(1)
        assert "200 received, 0% packet loss" in ping, ping[-500:]
        assert {h: net.sh(h, "cat /sys/class/net/cc0/ifindex").stdout for h in ifindex} == ifindex
        # the new rules hold, the old denials still do
        code, vdoc = verify_doc(net)
        assert code == 0 and vdoc["ok"], json.dumps(vdoc["flows"]["violations"])[:3000]
        assert flow(vdoc, "admin", "db1", 5432)["verdict"] == "allowed-reachable"
        assert flow(vdoc, "web1", "app1", 8090)["verdict"] == "allowed-reachable"
        assert flow(vdoc, "web1", "db1", 5432)["verdict"] == "denied-blocked"

    def test_e_verify_fails_when_the_firewall_lets_a_denied_flow_through(self, net: LabNet) -> None:
        # a hand-made hole in db1's table: verify must notice web -> db getting through
        net.sh("db1", "nft insert rule inet cloudcast policy_in tcp dport 5432 accept")
        code, doc = verify_doc(net)
        assert code == 1 and not doc["ok"]
        bad = {(v["src"], v["dst"], v["port"], v["verdict"]) for v in doc["flows"]["violations"]}
        assert ("web1", "db1", 5432, "violation: denied but reached") in bad, bad
        # `apply` reloads the table when its file changes (facts hash the file, not the live
        # table): the file, loaded whole again, closes the hole
        assert net.sh("db1", "nft -f /etc/cloudcast/cc0.nft").returncode == 0
        code, doc = verify_doc(net)
        assert code == 0 and doc["ok"]


def gateways_policy() -> dict[str, Any]:
    """lab-gateways.json with the three tiers on its LAN members."""
    doc = json.loads((EXAMPLES / "lab-gateways.json").read_text())
    doc["sites"][0]["nodes"][2]["tags"] = ["web"]  # east1
    doc["sites"][1]["nodes"][1]["tags"] = ["app"]  # west1
    doc["sites"][2]["nodes"][1]["tags"] = ["db"]  # home1
    doc["policy"] = [
        {"from": ["web"], "to": ["app"], "ports": [8080]},
        {"from": ["app"], "to": ["db"], "ports": [5432]},
    ]
    return doc


class TestThroughGateways:
    @pytest.fixture(scope="class")
    def net(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabNet]:
        with fresh_lab() as prefix:
            yield LabNet(prefix, tmp_path_factory.mktemp("policy-gw"), gateways_policy())

    def test_a_members_are_guarded_by_their_gateways(self, net: LabNet) -> None:
        res = net.apply()
        assert res.code == 0, res.err[-3000:]
        assert "0 violations" in res.out, res.out
        code, doc = verify_doc(net)
        assert code == 0 and doc["ok"], json.dumps(doc["flows"]["violations"])[:3000]
        assert flow(doc, "east1", "west1", 8080)["verdict"] == "allowed-reachable"
        assert flow(doc, "west1", "home1", 5432)["verdict"] == "allowed-reachable"
        assert flow(doc, "east1", "home1", 5432)["verdict"] == "denied-blocked"
        # the rules live on the members' gateways, in the forward chain
        fwd = net.sh("gw-home", "nft list chain inet cloudcast policy_fwd").stdout
        assert "ip daddr 10.3.0.11" in fwd and "tcp dport 5432 accept" in fwd, fwd
        assert "cloudcast" not in net.sh("home1", "nft list tables").stdout  # members run no firewall

    def test_b_by_hand_member_to_member(self, net: LabNet) -> None:
        pid = net.sh("home1", "setsid timeout 20 socat TCP4-LISTEN:5432,reuseaddr,fork SYSTEM:'echo db' "
                     "</dev/null >/dev/null 2>&1 & echo $!").stdout.strip()
        time.sleep(0.5)
        try:
            app = net.sh("west1", "timeout 5 socat -T 3 - TCP4:10.3.0.11:5432,connect-timeout=3 </dev/null")
            assert "db" in app.stdout, app.stdout + app.stderr
            web = net.sh("east1", "timeout 5 socat -T 3 - TCP4:10.3.0.11:5432,connect-timeout=3 </dev/null")
            assert "db" not in web.stdout
        finally:
            net.sh("home1", f"kill {int(pid)}")
        # echo still crosses both gateways (network.ping), as verify's matrix needs
        assert net.reaches("east1", "10.3.0.11")

    def test_c_the_standby_gateway_enforces_the_same_rules(self, net: LabNet) -> None:
        primary = net.sh("gw-east", "nft list chain inet cloudcast policy_fwd").stdout
        standby = net.sh("gw-east2", "nft list chain inet cloudcast policy_fwd").stdout
        def rules(text: str) -> list[str]:
            return [line.split("#")[0].strip() for line in text.splitlines() if "accept" in line]

        assert rules(primary) and rules(primary) == rules(standby)
