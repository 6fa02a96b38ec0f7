"""Golden tests: facts + desired state -> actions (pyinfra's operation tests; no SSH)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cloudcast.bootstrap.actions import (
    Action,
    apply_actions,
    prepare_actions,
    syncconf_script,
    teardown_actions,
)
from cloudcast.bootstrap.facts import HostRoute
from cloudcast.bootstrap.paths import Paths
from cloudcast.errors import BootstrapError
from cloudcast.ssh.wgdump import PeerFact
from tests.unit.bootstrap_cases import (
    FRESH,
    TOOLED,
    converged,
    desired_for,
    gateways_plan,
    key_of,
    lab_inventory,
    lab_plan,
    static_inventory,
)

P = Paths("cc0")
USERSPACE = "WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go"


def golden(actions: list[Action]) -> list[tuple[str, str, str | None, str | None]]:
    return [a.golden() for a in actions]


def test_fresh_host_installs_packages_then_makes_its_key() -> None:
    actions = prepare_actions(FRESH, P, vpn=True)
    assert golden(actions) == [
        (
            "package",
            "install iputils-ping nftables wireguard-go wireguard-tools",
            "export DEBIAN_FRONTEND=noninteractive; "
            "apt-get -q -o DPkg::Lock::Timeout=300 update >/dev/null && "
            "apt-get -q -y -o DPkg::Lock::Timeout=300 install --no-install-recommends "
            "iputils-ping nftables wireguard-go wireguard-tools",
            None,
        ),
        (
            "keygen",
            "generate the WireGuard key pair in /etc/wireguard/cc0.key",
            "umask 077; mkdir -p /etc/wireguard; [ -s /etc/wireguard/cc0.key ] || "
            "{ wg genkey > /etc/wireguard/cc0.key.new && mv -f /etc/wireguard/cc0.key.new "
            "/etc/wireguard/cc0.key; }",
            None,
        ),
    ]


def test_kernel_module_means_no_wireguard_go() -> None:
    facts = replace(FRESH, kernel_wg=True)
    assert prepare_actions(facts, P, vpn=True)[0].description == (
        "install iputils-ping nftables wireguard-tools"
    )


def test_prepared_host_needs_nothing_in_phase_one() -> None:
    assert prepare_actions(replace(TOOLED, public_key=key_of("x")), P, vpn=True) == []


def test_member_needs_only_iproute2_and_no_key() -> None:
    assert prepare_actions(TOOLED, P, vpn=False) == []
    assert golden(prepare_actions(replace(FRESH, tools=frozenset({"apt-get"})), P, vpn=False))[0][:2] == (
        "package",
        "install iproute2",
    )


def test_missing_tools_without_apt_is_a_clear_error() -> None:
    with pytest.raises(BootstrapError, match="no apt-get"):
        prepare_actions(replace(FRESH, tools=frozenset({"ip"})), P, vpn=True)


def test_first_apply_writes_everything_then_brings_the_interface_up() -> None:
    plan = lab_plan()
    d = desired_for(plan, lab_inventory(plan), "alpha", userspace=True)
    facts = replace(TOOLED, public_key=key_of("alpha"))
    assert golden(apply_actions(d, facts)) == [
        ("write", "write /etc/cloudcast/cc0.nft", None, "/etc/cloudcast/cc0.nft"),
        ("write", "write /etc/wireguard/cc0.conf", None, "/etc/wireguard/cc0.conf"),
        ("write", "write /etc/sysctl.d/90-cloudcast-cc0.conf", None, "/etc/sysctl.d/90-cloudcast-cc0.conf"),
        ("write", "update the cloudcast demo block in /etc/hosts", None, "/etc/hosts"),
        ("firewall", "load nftables table inet cloudcast", "nft -f /etc/cloudcast/cc0.nft", None),
        ("sysctl", "enable IPv4 forwarding", "sysctl -q -p /etc/sysctl.d/90-cloudcast-cc0.conf", None),
        ("up", "bring up cc0 (wireguard-go)", f"{USERSPACE} wg-quick up cc0", None),
    ]


def test_first_apply_with_kernel_wireguard_and_systemd_enables_the_unit() -> None:
    plan = lab_plan()
    d = desired_for(plan, lab_inventory(plan), "bravo", systemd=True, userspace=False)
    facts = replace(TOOLED, public_key=key_of("bravo"), kernel_wg=True, systemd=True)
    assert golden(apply_actions(d, facts))[-2:] == [
        ("up", "bring up cc0", "wg-quick up cc0", None),
        (
            "enable",
            "enable wg-quick@cc0 at boot",
            "systemctl daemon-reload && systemctl enable -q wg-quick@cc0",
            None,
        ),
    ]


@pytest.mark.parametrize("name", ["alpha", "bravo", "charlie", "delta"])
@pytest.mark.parametrize("systemd", [False, True])
def test_converged_host_gets_no_actions(name: str, systemd: bool) -> None:
    plan = lab_plan()
    d = desired_for(plan, lab_inventory(plan), name, systemd=systemd, userspace=True)
    assert apply_actions(d, converged(d, systemd=systemd)) == []


def test_converged_member_gets_no_actions() -> None:
    plan = gateways_plan()
    inv = static_inventory(plan)
    for name in ("gw1", "app1", "gw2"):
        d = desired_for(plan, inv, name)
        assert apply_actions(d, converged(d)) == [], name


def test_added_peer_is_synced_without_restarting_the_interface() -> None:
    plan = lab_plan()
    inv = lab_inventory(plan)
    d = desired_for(plan, inv, "bravo")
    facts = converged(d)
    wg = d.file(P.wg_conf)
    assert wg is not None
    # the host still has the config without delta, and runs it
    old = replace(
        facts,
        hashes={**facts.hashes, P.wg_conf: "0" * 64},
        peers=tuple(p for p in facts.peers if p.public_key != key_of("delta")),
    )
    assert golden(apply_actions(d, old)) == [
        ("write", "write /etc/wireguard/cc0.conf", None, "/etc/wireguard/cc0.conf"),
        ("syncconf", "sync cc0 peers (+delta)", syncconf_script(P, 3), None),
    ]


def test_runtime_drift_is_synced_even_when_files_match() -> None:
    plan = lab_plan()
    d = desired_for(plan, lab_inventory(plan), "bravo")
    facts = converged(d)
    stranger = PeerFact(key_of("mallory"), None, ("10.15.0.66/32",), 0, 0, 0, None)
    drifted = replace(facts, peers=(*facts.peers, stranger))
    assert golden(apply_actions(d, drifted)) == [
        ("syncconf", "sync cc0 peers (-1 old)", syncconf_script(P, 3), None),
    ]
    # an interface that lost its private key (a bare syncconf) is repaired the same way
    keyless = replace(facts, iface_public_key=None)
    assert [a.kind for a in apply_actions(d, keyless)] == ["syncconf"]


def test_interface_mtu_address_and_route_localnet_are_reconciled() -> None:
    plan = lab_plan()
    d = desired_for(plan, lab_inventory(plan), "alpha")
    facts = replace(converged(d), mtu=1500, addresses=("10.15.0.9/24",), route_localnet=False)
    assert golden(apply_actions(d, facts)) == [
        (
            "address",
            "set cc0 address 10.15.0.1/24",
            "ip -4 address flush dev cc0 && ip address add 10.15.0.1/24 dev cc0",
            None,
        ),
        ("mtu", "set cc0 MTU 1420", "ip link set dev cc0 mtu 1420", None),
        (
            "sysctl",
            "allow DNAT to 127.0.0.1 from cc0 (route_localnet)",
            "sysctl -q -w net.ipv4.conf.cc0.route_localnet=1",
            None,
        ),
    ]


def test_firewall_reloaded_only_when_changed_or_missing() -> None:
    plan = lab_plan()
    d = desired_for(plan, lab_inventory(plan), "bravo")
    facts = converged(d)
    assert [a.kind for a in apply_actions(d, replace(facts, table=False))] == ["firewall"]
    changed = replace(facts, hashes={**facts.hashes, P.firewall: "f" * 64})
    assert [a.kind for a in apply_actions(d, changed)] == ["write", "firewall"]


def test_stale_managed_file_is_removed() -> None:
    plan = lab_plan()
    d = desired_for(plan, lab_inventory(plan), "charlie")  # charlie (behind NAT) does not forward
    facts = converged(d)
    stale = replace(facts, hashes={**facts.hashes, P.sysctl: "a" * 64})
    assert golden(apply_actions(d, stale)) == [
        ("remove", f"remove {P.sysctl}", f"rm -f {P.sysctl}", None),
    ]


def test_member_routes_are_restored_when_missing() -> None:
    plan = gateways_plan()
    d = desired_for(plan, static_inventory(plan), "app1")
    facts = replace(converged(d), routes=(HostRoute("default", "10.20.0.1", "eth0"),))
    assert golden(apply_actions(d, facts)) == [
        ("routes", "route 2 CIDRs via 10.20.0.5", "sh /etc/cloudcast/cc0-routes.sh", None),
    ]


def test_hosts_block_change_keeps_the_rest_of_etc_hosts() -> None:
    plan = lab_plan()
    d = desired_for(plan, lab_inventory(plan), "bravo")
    facts = converged(d)
    edited = replace(facts, hosts="10.9.9.9 mine\n" + facts.hosts.replace("10.15.0.4", "10.15.0.44"))
    (action,) = apply_actions(d, edited)
    assert action.file is not None and action.file.mode == 0o644
    text = action.file.content.decode()
    assert text.startswith("10.9.9.9 mine\n127.0.0.1 localhost\n")
    assert "10.15.0.4 delta.lab.internal delta" in text and "10.15.0.44" not in text


def test_syncconf_is_guarded_and_keeps_the_private_key() -> None:
    script = syncconf_script(P, 3)
    assert 'wg-quick strip cc0 > "$s" || {' in script  # a failed strip aborts
    assert "-eq 3 ]" in script  # so does a stripped file with the wrong number of peers
    assert "PrivateKey = %s" in script and "$(cat /etc/wireguard/cc0.key)" in script
    assert script.rstrip().endswith('wg syncconf cc0 "$s.full"')
    assert "<(" not in script  # POSIX sh: no process substitution


def test_teardown_removes_everything_cloudcast_made() -> None:
    plan = lab_plan()
    d = desired_for(plan, lab_inventory(plan), "alpha", systemd=True, userspace=True)
    facts = converged(d, systemd=True)
    assert golden(teardown_actions(d, facts)) == [
        ("down", "take down cc0", f"{USERSPACE} wg-quick down cc0 || ip link del dev cc0", None),
        ("disable", "disable wg-quick@cc0", "systemctl disable -q wg-quick@cc0", None),
        ("firewall", "delete nftables table inet cloudcast", "nft delete table inet cloudcast", None),
        ("remove", "remove /etc/wireguard/cc0.conf", "rm -f /etc/wireguard/cc0.conf", None),
        ("remove", "remove /etc/cloudcast/cc0.nft", "rm -f /etc/cloudcast/cc0.nft", None),
        (
            "remove",
            "remove /etc/sysctl.d/90-cloudcast-cc0.conf",
            "rm -f /etc/sysctl.d/90-cloudcast-cc0.conf",
            None,
        ),
        (
            "remove",
            "remove /etc/systemd/system/wg-quick@cc0.service.d/cloudcast.conf",
            "rm -f /etc/systemd/system/wg-quick@cc0.service.d/cloudcast.conf",
            None,
        ),
        ("remove", "remove /etc/wireguard/cc0.key", "rm -f /etc/wireguard/cc0.key", None),
        ("systemd", "reload systemd units", "systemctl daemon-reload", None),
        ("write", "remove the cloudcast demo block from /etc/hosts", None, "/etc/hosts"),
    ]
    hosts = teardown_actions(d, facts)[-1].file
    assert (
        hosts is not None and hosts.content.decode() == "127.0.0.1 localhost\n::1 localhost ip6-localhost\n"
    )


def test_teardown_of_a_clean_host_does_nothing() -> None:
    plan = lab_plan()
    d = desired_for(plan, lab_inventory(plan), "alpha")
    assert teardown_actions(d, TOOLED) == []


def test_teardown_of_a_member_removes_its_routes() -> None:
    plan = gateways_plan()
    d = desired_for(plan, static_inventory(plan), "app1")
    kinds = [a.golden()[:3] for a in teardown_actions(d, converged(d))]
    assert kinds[:2] == [
        ("route", "remove route 10.16.0.0/24", "ip route del 10.16.0.0/24 via 10.20.0.5"),
        ("route", "remove route 10.30.0.0/24", "ip route del 10.30.0.0/24 via 10.20.0.5"),
    ]


def test_action_repr_never_shows_file_contents() -> None:
    plan = lab_plan()
    d = desired_for(plan, lab_inventory(plan), "alpha")
    actions = apply_actions(d, replace(TOOLED, public_key=key_of("alpha")))
    assert "PresharedKey" not in repr(actions)
