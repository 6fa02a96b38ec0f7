"""Golden tests of the files rendered for a host (no SSH)."""

from __future__ import annotations

import re

import jinja2
import pytest

from cloudcast.bootstrap.desired import desired_state
from cloudcast.bootstrap.render import hosts_block, render, splice_hosts
from cloudcast.errors import BootstrapError
from cloudcast.inventory.hosts import Host, Inventory
from tests.unit.bootstrap_cases import (
    desired_for,
    gateways_plan,
    key_of,
    keys,
    lab_inventory,
    lab_plan,
    psk_of,
    psks,
    static_inventory,
)

ALPHA_WG = f"""\
# Managed by cloudcast (network demo, node alpha); changes here are overwritten.
# The private key stays on this host in /etc/wireguard/cc0.key; PostUp loads it.
[Interface]
Address = 10.15.0.1/24
ListenPort = 51871
MTU = 1420
PostUp = wg set %i private-key /etc/wireguard/%i.key
PostUp = sysctl -q -w net.ipv4.conf.%i.route_localnet=1
PostUp = nft -f /etc/cloudcast/cc0.nft

[Peer]
# bravo
PublicKey = {key_of("bravo")}
PresharedKey = {psk_of("alpha--bravo")}
Endpoint = 198.18.1.11:51871
AllowedIPs = 10.15.0.2/32

[Peer]
# charlie
PublicKey = {key_of("charlie")}
PresharedKey = {psk_of("alpha--charlie")}
AllowedIPs = 10.15.0.3/32

[Peer]
# delta
PublicKey = {key_of("delta")}
PresharedKey = {psk_of("alpha--delta")}
AllowedIPs = 10.15.0.4/32
"""

CHARLIE_PEERS = f"""\
[Peer]
# alpha
PublicKey = {key_of("alpha")}
PresharedKey = {psk_of("alpha--charlie")}
Endpoint = 198.18.1.10:51871
AllowedIPs = 10.15.0.1/32, 10.15.0.4/32
PersistentKeepalive = 25

[Peer]
# bravo
PublicKey = {key_of("bravo")}
PresharedKey = {psk_of("bravo--charlie")}
Endpoint = 198.18.1.11:51871
AllowedIPs = 10.15.0.2/32
PersistentKeepalive = 25
"""

ALPHA_FIREWALL = """\
#!/usr/sbin/nft -f
# Managed by cloudcast (network demo, node alpha). Only table inet cloudcast is
# touched: it is created if missing, deleted and rebuilt in one transaction.
table inet cloudcast
delete table inet cloudcast

table inet cloudcast {
	chain input {
		type filter hook input priority filter; policy drop;
		iif "lo" accept
		ct state established,related accept
		ct state invalid drop
		iifname "cc0" accept
		udp dport 51871 accept comment "WireGuard"
		tcp dport { 22, 2222 } accept comment "SSH"
		# IPv6 cannot work without neighbour discovery
		icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } accept
	}

	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		iifname "cc0" accept
		oifname "cc0" accept
	}

	# Services: reachable at this node's overlay address from the overlay only, also when
	# they listen on 127.0.0.1 (route_localnet is set on cc0).
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		iifname "cc0" ip daddr 10.15.0.1 tcp dport 8888 dnat ip to 127.0.0.1:8888 comment "echo"
	}

	chain output {
		type nat hook output priority -100; policy accept;
		ip daddr 10.15.0.1 tcp dport 8888 dnat ip to 127.0.0.1:8888 comment "echo"
	}
}
"""

HOSTS_BLOCK = """\
# BEGIN cloudcast demo
10.15.0.1 alpha.lab.internal alpha
10.15.0.2 bravo.lab.internal bravo
10.15.0.3 charlie.lab.internal charlie
10.15.0.4 delta.lab.internal delta
# END cloudcast demo
"""


def test_wireguard_config_of_a_public_node_with_a_service() -> None:
    plan = lab_plan()
    d = desired_for(plan, lab_inventory(plan), "alpha")
    wg = d.file("/etc/wireguard/cc0.conf")
    assert wg is not None and wg.mode == 0o600
    assert wg.content.decode() == ALPHA_WG


def test_nat_node_dials_out_with_keepalive_and_relays_through_a_public_node() -> None:
    plan = lab_plan()
    d = desired_for(plan, lab_inventory(plan), "charlie")
    wg = d.file("/etc/wireguard/cc0.conf")
    assert wg is not None
    text = wg.content.decode()
    assert text.endswith(CHARLIE_PEERS)
    assert "route_localnet" not in text  # no service on charlie
    assert "Address = 10.15.0.3/24" in text


def test_nothing_rendered_holds_a_private_key() -> None:
    plan = lab_plan()
    inv = lab_inventory(plan)
    for node in plan.nodes:
        d = desired_for(plan, inv, node.name, systemd=True, userspace=True)
        for f in d.files:
            assert not re.search(rb"^\s*PrivateKey\s*=", f.content, re.M), f.path
        assert "PrivateKey" not in d.hosts_block


def test_firewall_of_a_forwarding_node_with_a_service() -> None:
    plan = lab_plan()
    d = desired_for(plan, lab_inventory(plan, ssh_port=2222), "alpha")
    fw = d.file("/etc/cloudcast/cc0.nft")
    assert fw is not None
    assert fw.content.decode() == ALPHA_FIREWALL


def test_plain_node_firewall_has_no_forward_or_nat_chains() -> None:
    plan = lab_plan()
    d = desired_for(plan, lab_inventory(plan), "charlie")
    fw = d.file("/etc/cloudcast/cc0.nft")
    assert fw is not None
    text = fw.content.decode()
    assert "tcp dport { 22 } accept" in text
    assert "chain forward" not in text and "dnat" not in text
    assert d.file("/etc/sysctl.d/90-cloudcast-cc0.conf") is None  # charlie (behind NAT) does not forward


def test_forwarding_node_gets_the_sysctl_file() -> None:
    plan = lab_plan()
    d = desired_for(plan, lab_inventory(plan), "alpha")
    sysctl = d.file("/etc/sysctl.d/90-cloudcast-cc0.conf")
    assert sysctl is not None and sysctl.mode == 0o644
    assert sysctl.content.decode().splitlines()[-1] == "net.ipv4.ip_forward = 1"


def test_hosts_block_names_every_node() -> None:
    plan = lab_plan()
    assert desired_for(plan, lab_inventory(plan), "delta").hosts_block == HOSTS_BLOCK


def test_systemd_dropin_only_for_userspace_wireguard_under_systemd() -> None:
    plan = lab_plan()
    inv = lab_inventory(plan)
    path = "/etc/systemd/system/wg-quick@cc0.service.d/cloudcast.conf"
    dropin = desired_for(plan, inv, "bravo", systemd=True, userspace=True).file(path)
    assert dropin is not None
    assert "Environment=WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go" in dropin.content.decode()
    assert desired_for(plan, inv, "bravo", systemd=True, userspace=False).file(path) is None
    assert desired_for(plan, inv, "bravo", systemd=False, userspace=True).file(path) is None


def test_peer_without_a_public_key_is_left_out_not_half_written() -> None:
    plan = lab_plan()
    known = {k: v for k, v in keys(plan).items() if k != "delta"}
    d = desired_state(plan, plan.node("alpha"), lab_inventory(plan), known, psks(plan))
    assert d.left_out == ("delta",)
    assert [p.name for p in d.peers] == ["bravo", "charlie"]
    wg = d.file("/etc/wireguard/cc0.conf")
    assert wg is not None and b"# delta" not in wg.content


def test_missing_preshared_key_is_an_error() -> None:
    plan = lab_plan()
    some = {k: v for k, v in psks(plan).items() if k != "alpha--bravo"}
    with pytest.raises(BootstrapError, match="alpha--bravo"):
        desired_state(plan, plan.node("alpha"), lab_inventory(plan), keys(plan), some)


def test_psk_is_masked_in_reprs() -> None:
    plan = lab_plan()
    d = desired_for(plan, lab_inventory(plan), "alpha")
    assert psk_of("alpha--bravo") not in repr(d)


def test_ipv6_endpoint_is_bracketed() -> None:
    plan = lab_plan()
    inv = lab_inventory(plan)
    bravo = inv.host("bravo")
    hosts = tuple(
        Host(h.name, h.site, h.provider, h.ssh_host, 22, "root", None, "2001:db8::b", "2001:db8::b")
        if h.name == "bravo"
        else h
        for h in inv.hosts
    )
    assert bravo.public_ip != "2001:db8::b"
    d = desired_state(plan, plan.node("alpha"), Inventory(hosts, {}), keys(plan), psks(plan))
    assert d.peers[0].endpoint == "[2001:db8::b]:51871"


def test_gateway_member_gets_routes_via_its_gateway_and_no_tunnel() -> None:
    plan = gateways_plan()
    inv = static_inventory(plan)
    d = desired_for(plan, inv, "app1")
    assert not d.vpn and d.address is None and d.peers == ()
    assert d.routes == (("10.16.0.0/24", "10.20.0.5"), ("10.30.0.0/24", "10.20.0.5"))
    routes = d.file("/etc/cloudcast/cc0-routes.sh")
    assert routes is not None and routes.mode == 0o700
    assert routes.content.decode().splitlines()[-2:] == [
        "ip route replace 10.16.0.0/24 via 10.20.0.5 proto 241",
        "ip route replace 10.30.0.0/24 via 10.20.0.5 proto 241",
    ]
    # members are named by their private address: the overlay address is not theirs
    assert "10.20.0.6 app1.vpc.internal app1" in d.hosts_block


def test_gateway_carries_the_remote_site_and_lets_its_members_in() -> None:
    plan = gateways_plan()
    d = desired_for(plan, static_inventory(plan), "gw1")
    wg = d.file("/etc/wireguard/cc0.conf")
    fw = d.file("/etc/cloudcast/cc0.nft")
    assert wg is not None and fw is not None
    assert "AllowedIPs = 10.16.0.3/32, 10.30.0.0/24" in wg.content.decode()
    assert "Endpoint = 203.0.113.3:51871" in wg.content.decode()
    assert (
        'ip saddr 10.20.0.0/24 ip daddr 10.16.0.1 accept comment "members of this site"'
        in fw.content.decode()
    )
    assert "chain forward" in fw.content.decode()


def test_strict_undefined_refuses_a_missing_variable() -> None:
    with pytest.raises(jinja2.UndefinedError):
        render("hosts.j2", network="x")


HOSTS = "127.0.0.1 localhost\n# keep me\n10.0.0.1 other\n"


def test_splice_appends_then_replaces_then_removes_leaving_other_lines() -> None:
    block = "# BEGIN cloudcast demo\n10.15.0.1 a.x a\n# END cloudcast demo\n"
    added = splice_hosts(HOSTS, "demo", block)
    assert added == HOSTS + "\n" + block
    assert hosts_block(added, "demo") == block
    newer = block.replace("10.15.0.1", "10.15.0.9")
    replaced = splice_hosts(added + "10.0.0.2 after\n", "demo", newer)
    assert replaced == HOSTS + "\n" + newer + "10.0.0.2 after\n"
    assert splice_hosts(added, "demo", None) == HOSTS
    assert splice_hosts(added, "demo", block) == added  # idempotent


def test_blocks_of_two_networks_stay_apart() -> None:
    a = "# BEGIN cloudcast a\n1.1.1.1 x\n# END cloudcast a\n"
    b = "# BEGIN cloudcast b\n2.2.2.2 y\n# END cloudcast b\n"
    both = splice_hosts(splice_hosts(HOSTS, "a", a), "b", b)
    assert hosts_block(both, "a") == a and hosts_block(both, "b") == b
    assert splice_hosts(both, "a", None).count("cloudcast a") == 0
    assert hosts_block(splice_hosts(both, "a", None), "b") == b
