"""Facts + desired state -> the list of actions for one host, AS DATA (pyinfra's habit).

Nothing here touches a host: the same inputs always give the same actions, so golden tests
pin them, `plan` can show them, and a host already in shape gets an empty list.
"""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass

from cloudcast.bootstrap.desired import ConnSpec, Desired, ManagedFile, route_dst
from cloudcast.bootstrap.facts import Facts
from cloudcast.bootstrap.paths import CHARON, ROUTE_PROTO, TABLE, USERSPACE_ENV, Paths
from cloudcast.bootstrap.render import hosts_block, splice_hosts
from cloudcast.errors import BootstrapError

#: tool -> the Debian package that ships it
PACKAGES = {
    "wg": "wireguard-tools",
    "wg-quick": "wireguard-tools",
    "nft": "nftables",
    "ip": "iproute2",
    "ping": "iputils-ping",
    "wireguard-go": "wireguard-go",
    "swanctl": "strongswan-swanctl",
    "charon": "strongswan-charon",
    "charon-systemd": "charon-systemd",
    "plugin-gcm": "libstrongswan-standard-plugins",
    "plugin-openssl": "libstrongswan-standard-plugins",
    "plugin-kernel-libipsec": "libcharon-extra-plugins",
    "openssl": "openssl",
}
CHARON_PID = "/run/charon.pid"


@dataclass(frozen=True, slots=True)
class Action:
    """One change: a file to write (atomically, with its mode) or a shell command to run."""

    kind: str
    description: str
    command: str | None = None
    file: ManagedFile | None = None

    def golden(self) -> tuple[str, str, str | None, str | None]:
        """What golden tests pin (file contents are pinned by the render tests)."""
        return (self.kind, self.description, self.command, self.file.path if self.file else None)


def required_tools(
    facts: Facts, *, vpn: bool, transport: str = "wireguard", certs: bool = False
) -> tuple[str, ...]:
    if not vpn:
        return ("ip",)
    if transport == "ipsec":
        tools = ["swanctl", "nft", "ip", "ping", "plugin-gcm", "plugin-openssl"]
        tools += ["openssl"] if certs else []
        tools.append("charon-systemd" if facts.systemd else "charon")
        if not facts.kernel_esp:
            tools.append("plugin-kernel-libipsec")
        return tuple(tools)
    tools = ["wg", "wg-quick", "nft", "ip", "ping"]
    if not facts.kernel_wg:
        tools.append("wireguard-go")
    return tuple(tools)


def prepare_actions(
    facts: Facts, paths: Paths, *, vpn: bool, transport: str = "wireguard", certs: bool = False
) -> list[Action]:
    """Phase 1: missing packages, then the node's key pair (made on the host, only if missing).

    The key is WireGuard's, or with IPsec `certs` the gateway's own IPsec key (EC P-256).
    """
    actions: list[Action] = []
    needed = required_tools(facts, vpn=vpn, transport=transport, certs=certs)
    missing = [t for t in needed if not facts.has(t)]
    packages = sorted({PACKAGES[t] for t in missing})
    if packages:
        if not facts.has("apt-get"):
            raise BootstrapError(
                f"missing {', '.join(missing)} and no apt-get to install {' '.join(packages)}",
                hint=f"install {' '.join(packages)} on the host",
            )
        names = " ".join(packages)
        actions.append(
            Action(
                "package",
                f"install {names}",
                "export DEBIAN_FRONTEND=noninteractive; "
                "apt-get -q -o DPkg::Lock::Timeout=300 update >/dev/null && "
                f"apt-get -q -y -o DPkg::Lock::Timeout=300 install --no-install-recommends {names}",
            )
        )
    if vpn and transport == "wireguard" and facts.public_key is None:
        key = shlex.quote(paths.key)
        actions.append(
            Action(
                "keygen",
                f"generate the WireGuard key pair in {paths.key}",
                f"umask 077; mkdir -p /etc/wireguard; [ -s {key} ] || "
                f"{{ wg genkey > {key}.new && mv -f {key}.new {key}; }}",
            )
        )
    if vpn and transport == "ipsec" and certs and facts.ipsec_public_key is None:
        key = shlex.quote(paths.ipsec_key)
        actions.append(
            Action(
                "keygen",
                f"generate the IPsec key pair in {paths.ipsec_key}",
                f"umask 077; mkdir -p {shlex.quote(posixpath.dirname(paths.ipsec_key))}; [ -s {key} ] || "
                f"{{ openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out {key}.new "
                f"&& mv -f {key}.new {key}; }}",
            )
        )
    return actions


def syncconf_script(paths: Paths, peers: int) -> str:
    """`wg syncconf` from `wg-quick strip`, guarded so a failed strip never wipes the peers.

    `wg-quick strip` drops the PrivateKey (the config has none: PostUp loads it), and syncconf
    without one clears the interface's key, so the key file is put back into the input.
    """
    i = shlex.quote(paths.interface)
    key = shlex.quote(paths.key)
    tmp = shlex.quote(f"/etc/wireguard/.{paths.interface}.sync.XXXXXX")
    keep = "peers left as they were"
    return f"""umask 077
s=$(mktemp {tmp})
trap 'rm -f "$s" "$s.full"' EXIT
wg-quick strip {i} > "$s" || {{ echo 'wg-quick strip failed; {keep}' >&2; exit 3; }}
grep -qx '\\[Interface\\]' "$s" && [ "$(grep -cx '\\[Peer\\]' "$s")" -eq {peers} ] ||
  {{ echo 'the stripped config is not the one written; {keep}' >&2; exit 3; }}
{{ printf '[Interface]\\nPrivateKey = %s\\n' "$(cat {key})"
  grep -vx '\\[Interface\\]' "$s"; }} > "$s.full"
wg syncconf {i} "$s.full"
"""


def _peer_rows(desired: Desired) -> set[tuple[str, tuple[str, ...], int | None]]:
    return {(p.public_key, tuple(sorted(p.allowed_ips)), p.keepalive) for p in desired.peers}


def _peers_note(desired: Desired, facts: Facts) -> str:
    now = {p.public_key for p in facts.peers}
    want = {p.public_key: p.name for p in desired.peers}
    added = sorted(name for key, name in want.items() if key not in now)
    removed = len(now - set(want))
    parts = [f"+{n}" for n in added] + ([f"-{removed} old"] if removed else [])
    return f" ({', '.join(parts)})" if parts else ""


def _file_actions(desired: Desired, facts: Facts) -> tuple[list[Action], set[str]]:
    actions: list[Action] = []
    changed: set[str] = set()
    wanted = {f.path for f in desired.files}
    for f in desired.files:
        if facts.hashes.get(f.path) != f.sha256:
            actions.append(Action("write", f"write {f.path}", file=f))
            changed.add(f.path)
    for path in desired.paths.managed:
        if path not in wanted and path in facts.hashes:
            actions.append(Action("remove", f"remove {path}", f"rm -f {shlex.quote(path)}"))
            changed.add(path)
    if hosts_block(facts.hosts, desired.network) != desired.hosts_block:
        text = splice_hosts(facts.hosts, desired.network, desired.hosts_block)
        hosts = ManagedFile(desired.paths.hosts, text.encode(), 0o644)
        actions.append(
            Action("write", f"update the cloudcast {desired.network} block in /etc/hosts", file=hosts)
        )
    return actions, changed


def apply_actions(desired: Desired, facts: Facts) -> list[Action]:
    """Phase 2: files first, then the runtime steps their change (or drift) calls for."""
    actions, changed = _file_actions(desired, facts)
    p = desired.paths
    i, unit = shlex.quote(p.interface), shlex.quote(f"wg-quick@{p.interface}")
    if desired.ipsec:
        actions.extend(_ipsec_actions(desired, facts, changed))
    elif desired.vpn:
        actions.extend(_firewall_sysctl_actions(desired, facts, changed))
        if not facts.iface:
            env = "" if facts.kernel_wg else f"{USERSPACE_ENV} "
            how = "" if facts.kernel_wg else " (wireguard-go)"
            actions.append(Action("up", f"bring up {p.interface}{how}", f"{env}wg-quick up {i}"))
        else:
            actions.extend(_runtime_actions(desired, facts, changed))
        if facts.systemd:
            if p.dropin in changed and facts.enabled:
                actions.append(Action("systemd", "reload systemd units", "systemctl daemon-reload"))
            if not facts.enabled:
                actions.append(
                    Action(
                        "enable",
                        f"enable wg-quick@{p.interface} at boot",
                        f"systemctl daemon-reload && systemctl enable -q {unit}",
                    )
                )
    if not desired.ipsec:
        actions.extend(_route_actions(desired, facts, changed))
        actions.extend(_failover_actions(desired, facts, changed))
    return actions


def _stop_failover(p: Paths, facts: Facts) -> str:
    pid, state = shlex.quote(p.failover_pid), shlex.quote(p.failover_state)
    name = shlex.quote(p.failover_unit_name)
    unit = f"systemctl disable -q --now {name} 2>/dev/null; " if facts.systemd else ""
    return f'{unit}[ -s {pid} ] && kill "$(cat {pid})" 2>/dev/null; rm -f {pid} {state}; true'


def _failover_actions(desired: Desired, facts: Facts, changed: set[str]) -> list[Action]:
    """The failover agent runs the script written (restarted when it changed); none when unplanned."""
    p = desired.paths
    if desired.file(p.failover) is None:
        stop = Action("failover", "stop the failover agent", _stop_failover(p, facts))
        return [stop] if facts.failover else []
    if facts.failover and p.failover not in changed:
        return []
    verb = "restart" if facts.failover else "start"
    if facts.systemd:
        unit = shlex.quote(p.failover_unit_name)
        command = f"systemctl daemon-reload && systemctl enable -q {unit} && systemctl restart {unit}"
    else:
        # no systemd (containers, the lab): the agent runs detached, like charon
        script = shlex.quote(p.failover)
        log = shlex.quote(p.failover_log)
        command = f"{_stop_failover(p, facts)}; setsid sh {script} </dev/null >/dev/null 2>>{log} &"
    return [Action("failover", f"{verb} the failover agent", command)]


def _owned_routes(facts: Facts) -> list[str]:
    """Destinations of the routes cloudcast added (marked with its protocol number)."""
    return [r.split()[0] for r in facts.routes if f" proto {ROUTE_PROTO}" in f" {r} "]


def _route_actions(desired: Desired, facts: Facts, changed: set[str]) -> list[Action]:
    """A member's routes via its gateway: present, none stale, run again at boot (systemd)."""
    p = desired.paths
    actions: list[Action] = []
    if desired.routes:
        present = all(
            any(r.startswith(f"{route_dst(c)} via {v} ") for r in facts.routes) for c, v in desired.routes
        )
        wanted = {route_dst(c) for c, _ in desired.routes}
        stale = [d for d in _owned_routes(facts) if d not in wanted]
        if p.routes in changed or not present or stale:
            via = desired.routes[0][1]
            direct = len(desired.routes) - sum(1 for _, v in desired.routes if v == via)
            note = f", {direct} on the LAN" if direct else ""
            note += f", drop {len(stale)} old" if stale else ""
            n = len(desired.routes) - direct
            command = f"sh {shlex.quote(p.routes)}"
            actions.append(Action("routes", f"route {n} CIDRs via {via}{note}", command))
        actions.extend(_routes_unit_actions(desired, facts, changed))
    elif _owned_routes(facts):
        actions.append(_drop_routes_action(facts))
    return actions


def _drop_routes_action(facts: Facts) -> Action:
    owned = _owned_routes(facts)
    return Action(
        "route",
        f"remove {len(owned)} routes cloudcast added",
        f"ip -4 route show proto {ROUTE_PROTO} | while read -r dst _; do "
        f'ip route del "$dst" proto {ROUTE_PROTO}; done',
    )


def _routes_unit_actions(desired: Desired, facts: Facts, changed: set[str]) -> list[Action]:
    p = desired.paths
    if not facts.systemd or p.routes_unit not in {f.path for f in desired.files}:
        return []
    if facts.routes_enabled and p.routes_unit not in changed:
        return []
    unit = shlex.quote(p.routes_unit_name)
    return [
        Action(
            "enable",
            f"run {p.routes} at boot ({p.routes_unit_name})",
            f"systemctl daemon-reload && systemctl enable -q {unit}",
        )
    ]


def _start_charon(desired: Desired, facts: Facts, *, restart: bool) -> str:
    """Shell that (re)starts charon and waits until its VICI socket answers."""
    if facts.systemd:
        start = "systemctl enable -q strongswan && systemctl restart strongswan"
    else:
        # no systemd (containers, the lab): charon runs detached, one per host
        stop = (
            f'if [ -s {CHARON_PID} ]; then pid=$(cat {CHARON_PID}); kill "$pid" 2>/dev/null || true\n'
            '  for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done\nfi\n'
            if restart
            else ""
        )
        start = f"{stop}setsid {CHARON} </dev/null >/dev/null 2>&1 &"
    return f"""{start}
i=0
until swanctl --stats >/dev/null 2>&1; do
  i=$((i + 1)); [ "$i" -ge 150 ] && {{ echo 'charon does not answer on its VICI socket' >&2; exit 1; }}
  sleep 0.1
done
swanctl --load-all --noprompt >/dev/null"""


def settle_script(children: tuple[tuple[str, str], ...], wait: float = 3.0) -> str:
    """Wait until the child SAs this node starts are INSTALLED; initiate the ones still missing."""
    want = shlex.quote(" ".join(f"{conn}:{child}" for conn, child in children))
    rounds = max(1, int(wait / 0.2))
    installed = r"s/^  \([^ ][^:]*\): #[0-9]*, reqid [0-9]*, INSTALLED.*/\1/p"
    return f"""want={want}
i=0
while :; do
  up=$(swanctl --list-sas 2>/dev/null | sed -n '{installed}')
  missing=""
  for w in $want; do echo "$up" | grep -qx "${{w#*:}}" || missing="$missing $w"; done
  [ -z "$missing" ] && exit 0
  i=$((i + 1)); [ "$i" -ge {rounds} ] && break
  sleep 0.2
done
for w in $missing; do
  swanctl --initiate --ike "${{w%%:*}}" --child "${{w#*:}}" --timeout 10 >/dev/null 2>&1 &
done
wait
exit 0"""


def renew_script(conn: ConnSpec) -> str:
    """Drop the IKE SA with a peer and start it again with every child (first one alone)."""
    c = shlex.quote(conn.name)
    first, *rest = [shlex.quote(ch.name) for ch in conn.children]
    others = "".join(
        f"swanctl --initiate --ike {c} --child {ch} --timeout 10 >/dev/null 2>&1 &\n" for ch in rest
    )
    return f"""swanctl --terminate --ike {c} --force --timeout 3 >/dev/null 2>&1 || true
swanctl --initiate --ike {c} --child {first} --timeout 15 >/dev/null 2>&1 || true
{others}wait
exit 0"""


def _firewall_sysctl_actions(desired: Desired, facts: Facts, changed: set[str]) -> list[Action]:
    """Load the firewall and the forwarding sysctls when they changed or are not in effect."""
    p = desired.paths
    actions: list[Action] = []
    if p.firewall in changed or not facts.table:
        command = f"nft -f {shlex.quote(p.firewall)}"
        actions.append(Action("firewall", f"load nftables table inet {TABLE}", command))
    if desired.forwards and (p.sysctl in changed or not facts.ip_forward):
        actions.append(Action("sysctl", "enable IPv4 forwarding", f"sysctl -q -p {shlex.quote(p.sysctl)}"))
    return actions


def _ipsec_actions(desired: Desired, facts: Facts, changed: set[str]) -> list[Action]:
    """strongSwan: firewall, forwarding, the overlay address, charon, connections, SAs."""
    p = desired.paths
    actions = _firewall_sysctl_actions(desired, facts, changed)
    if p.routes in changed or any(a not in facts.lo_addresses for a in desired.lo_addresses):
        what = f"overlay address {', '.join(desired.lo_addresses)} on lo"
        actions.append(Action("address", what, f"sh {shlex.quote(p.routes)}"))
    actions.extend(_routes_unit_actions(desired, facts, changed))
    how = "kernel-libipsec" if desired.libipsec else "kernel ESP"
    if not facts.charon or p.strongswan_conf in changed:
        verb = "restart" if facts.charon else "start"
        script = _start_charon(desired, facts, restart=facts.charon)
        actions.append(Action("charon", f"{verb} charon ({how}) and load the connections", script))
    elif changed & {p.swanctl_conf, p.ipsec_cert, p.ipsec_ca} or set(facts.conns) != {
        c.name for c in desired.conns
    }:
        n = len(desired.conns)
        reload = "swanctl --load-all --noprompt >/dev/null"
        actions.append(Action("reload", f"reload {n} IPsec connections", reload))
    wanted = desired.initiated_children
    if wanted and (actions or any(child not in facts.children_up for _, child in wanted)):
        actions.append(Action("sas", f"bring up {len(wanted)} child SAs", settle_script(wanted)))
    return actions


def _runtime_actions(desired: Desired, facts: Facts, changed: set[str]) -> list[Action]:
    """The interface is up: reconcile it with the config without dropping tunnels."""
    p = desired.paths
    i = shlex.quote(p.interface)
    actions: list[Action] = []
    running = {(f.public_key, f.allowed_ips, f.keepalive) for f in facts.peers}
    drift = (
        running != _peer_rows(desired)
        or facts.listen_port != desired.port
        or facts.iface_public_key != facts.public_key
    )
    if p.wg_conf in changed or drift:
        note = _peers_note(desired, facts)
        actions.append(
            Action(
                "syncconf",
                f"sync {p.interface} peers{note}",
                syncconf_script(p, len(desired.peers)),
            )
        )
    if desired.address and desired.address not in facts.addresses:
        actions.append(
            Action(
                "address",
                f"set {p.interface} address {desired.address}",
                f"ip -4 address flush dev {i} && ip address add {shlex.quote(desired.address)} dev {i}",
            )
        )
    if facts.mtu != desired.mtu:
        actions.append(
            Action(
                "mtu",
                f"set {p.interface} MTU {desired.mtu}",
                f"ip link set dev {i} mtu {desired.mtu}",
            )
        )
    if desired.services and not facts.route_localnet:
        actions.append(
            Action(
                "sysctl",
                f"allow DNAT to 127.0.0.1 from {p.interface} (route_localnet)",
                f"sysctl -q -w {shlex.quote(f'net.ipv4.conf.{p.interface}.route_localnet=1')}",
            )
        )
    return actions


def teardown_actions(desired: Desired, facts: Facts) -> list[Action]:
    """Remove everything cloudcast put on the host (for `destroy`)."""
    p = desired.paths
    i = shlex.quote(p.interface)
    actions: list[Action] = []
    if facts.failover:
        actions.append(Action("failover", "stop the failover agent", _stop_failover(p, facts)))
    if desired.transport == "ipsec":
        actions.extend(_ipsec_teardown(desired, facts))
    if facts.iface:
        env = "" if facts.kernel_wg else f"{USERSPACE_ENV} "
        actions.append(
            Action("down", f"take down {p.interface}", f"{env}wg-quick down {i} || ip link del dev {i}")
        )
    if facts.enabled:
        actions.append(
            Action(
                "disable",
                f"disable wg-quick@{p.interface}",
                f"systemctl disable -q {shlex.quote(f'wg-quick@{p.interface}')}",
            )
        )
    for cidr, via in desired.routes:
        if any(r.startswith(f"{route_dst(cidr)} via {via} ") for r in facts.routes):
            command = f"ip route del {shlex.quote(cidr)} via {shlex.quote(via)}"
            actions.append(Action("route", f"remove route {cidr}", command))
    if any(d not in {route_dst(c) for c, _ in desired.routes} for d in _owned_routes(facts)):
        actions.append(_drop_routes_action(facts))
    if facts.routes_enabled:
        unit = shlex.quote(p.routes_unit_name)
        actions.append(Action("disable", f"disable {p.routes_unit_name}", f"systemctl disable -q {unit}"))
    if facts.table:
        actions.append(
            Action("firewall", f"delete nftables table inet {TABLE}", f"nft delete table inet {TABLE}")
        )
    for path in p.managed:
        if path in facts.hashes:
            actions.append(Action("remove", f"remove {path}", f"rm -f {shlex.quote(path)}"))
    if facts.public_key is not None:
        actions.append(Action("remove", f"remove {p.key}", f"rm -f {shlex.quote(p.key)}"))
    if facts.ipsec_public_key is not None:
        actions.append(Action("remove", f"remove {p.ipsec_key}", f"rm -f {shlex.quote(p.ipsec_key)}"))
    if facts.systemd and any(u in facts.hashes for u in (p.dropin, p.routes_unit, p.failover_unit)):
        actions.append(Action("systemd", "reload systemd units", "systemctl daemon-reload"))
    if hosts_block(facts.hosts, desired.network) is not None:
        text = splice_hosts(facts.hosts, desired.network, None)
        hosts = ManagedFile(p.hosts, text.encode(), 0o644)
        actions.append(
            Action("write", f"remove the cloudcast {desired.network} block from /etc/hosts", file=hosts)
        )
    return actions


def _ipsec_teardown(desired: Desired, facts: Facts) -> list[Action]:
    """Unload cloudcast's connections and SAs; stop charon only when nothing else is loaded."""
    p = desired.paths
    actions: list[Action] = []
    if facts.charon:
        ours = [c for c in facts.conns if c.startswith("cc-")]
        stop = (
            "systemctl disable -q --now strongswan"
            if facts.systemd
            else f'[ -s {CHARON_PID} ] && kill "$(cat {CHARON_PID})"'
        )
        terminate = "; ".join(
            f"swanctl --terminate --ike {shlex.quote(c)} --force >/dev/null 2>&1" for c in ours
        )
        actions.append(
            Action(
                "charon",
                f"unload {len(ours)} IPsec connections",
                f"rm -f {shlex.quote(p.swanctl_conf)}; swanctl --load-all --noprompt >/dev/null 2>&1; "
                f"{terminate + '; ' if terminate else ''}"
                f"[ -n \"$(swanctl --list-conns 2>/dev/null)\" ] || {{ {stop}; }} || true",
            )
        )
    for address in desired.lo_addresses:
        if address in facts.lo_addresses:
            command = f"ip address del {shlex.quote(address)} dev lo"
            actions.append(Action("address", f"remove {address} from lo", command))
    return actions
