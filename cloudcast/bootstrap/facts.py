"""What is on a host now, gathered in ONE round trip; only public keys ever come back."""

from __future__ import annotations

import base64
import json
import shlex
from dataclasses import dataclass, field

from cloudcast.bootstrap.paths import CHARON, LIBIPSEC_IF, TABLE, Paths
from cloudcast.ssh.wgdump import PEER, PeerFact, parse_peer, peer_lines

TOOLS = (
    "wg",
    "wg-quick",
    "wireguard-go",
    "nft",
    "iptables",
    "ip",
    "systemctl",
    "apt-get",
    "ping",
    "sysctl",
    "swanctl",
    "charon-systemd",
    "openssl",
)
#: strongSwan plugins IPsec needs: AES-GCM (gcm), ECP groups (openssl), userspace ESP
PLUGINS = ("gcm", "openssl", "kernel-libipsec")
PLUGIN_DIR = "/usr/lib/ipsec/plugins"


@dataclass(frozen=True, slots=True)
class HostRoute:
    """One IPv4 route of the host, as `ip -j route` gives it."""

    dst: str  # "default", a network, or a host address (without /32)
    gateway: str | None = None
    dev: str | None = None
    protocol: str | None = None  # a number or its name in rt_protos ("kernel", "boot", "241")


def parse_routes(text: str) -> tuple[HostRoute, ...]:
    """The routes in `ip -j -4 route show` output; anything but a list of objects is none."""
    try:
        data = json.loads(text) if text.strip() else []
    except ValueError:
        return ()
    if not isinstance(data, list):
        return ()
    return tuple(
        HostRoute(
            dst=str(r["dst"]),
            gateway=_opt(r.get("gateway")),
            dev=_opt(r.get("dev")),
            protocol=_opt(r.get("protocol")),
        )
        for r in data
        if isinstance(r, dict) and "dst" in r
    )


def _opt(value: object) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Facts:
    tools: frozenset[str] = frozenset()
    systemd: bool = False  # systemd is PID 1
    kernel_wg: bool = False
    public_key: str | None = None  # of /etc/wireguard/IF.key
    iface: bool = False  # the interface exists
    iface_public_key: str | None = None  # the key the running interface uses
    addresses: tuple[str, ...] = ()
    mtu: int | None = None
    listen_port: int | None = None
    peers: tuple[PeerFact, ...] = ()
    hashes: dict[str, str] = field(default_factory=dict)  # managed path -> sha256 (present only)
    hosts: str = ""  # /etc/hosts
    table: bool = False  # `inet cloudcast` is loaded
    enabled: bool = False  # wg-quick@IF is enabled
    ip_forward: bool = False
    route_localnet: bool = False  # on the interface
    routes: tuple[HostRoute, ...] = ()
    now: int = 0  # the host's clock
    routes_enabled: bool = False  # the routes unit runs at boot (systemd)
    # IPsec (gathered only for the ipsec transport)
    kernel_esp: bool = False  # the kernel can do ESP itself (else: kernel-libipsec)
    charon: bool = False  # charon answers on its VICI socket
    libipsec: bool = False  # kernel-libipsec's TUN device exists
    conns: tuple[str, ...] = ()  # IKE connections loaded in charon
    children_up: tuple[str, ...] = ()  # CHILD_SAs in state INSTALLED
    lo_addresses: tuple[str, ...] = ()  # IPv4 addresses on lo (the overlay address of IPsec nodes)
    ipsec_enabled: bool = False  # strongswan.service (charon-systemd) is enabled
    ipsec_public_key: str | None = None  # of the IPsec key (base64 DER), certificates auth
    failover: bool = False  # the failover agent runs
    failed_over: tuple[str, ...] = ()  # primaries the agent found down (traffic on their standby)

    def has(self, tool: str) -> bool:
        return tool in self.tools


def facts_script(paths: Paths, *, ipsec: bool = False) -> str:
    """The POSIX shell that prints facts, one `key=value` (or tab-separated) line each."""
    q = shlex.quote
    i = q(paths.interface)
    files = " ".join(q(p) for p in paths.managed)
    tools = " ".join(TOOLS)
    # peer lines: never the interface's private key nor a preshared key (see `peer_lines`)
    return f"""
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
have() {{ command -v "$1" >/dev/null 2>&1; }}
for t in {tools}; do have "$t" && echo "tool=$t"; done
[ "$(cat /proc/1/comm 2>/dev/null)" = systemd ] && echo systemd=1
if [ -d /sys/module/wireguard ]; then echo kernel_wg=1
elif have ip && ip link add ccprobe$$ type wireguard 2>/dev/null; then
  ip link del ccprobe$$; echo kernel_wg=1
fi
K={q(paths.key)}
if [ -s "$K" ] && have wg; then echo "pubkey=$(wg pubkey < "$K" 2>/dev/null)"; fi
if have ip && ip link show dev {i} >/dev/null 2>&1; then
  echo iface=1
  echo "mtu=$(cat /sys/class/net/{i}/mtu)"
  ip -4 -o addr show dev {i} | while read -r _ _ _ a _; do echo "addr=$a"; done
  echo "route_localnet=$(cat /proc/sys/net/ipv4/conf/{i}/route_localnet 2>/dev/null)"
  if have wg; then
    echo "iface_pubkey=$(wg show {i} public-key 2>/dev/null)"
    echo "listen_port=$(wg show {i} listen-port 2>/dev/null)"
    {peer_lines(paths.interface)}
  fi
fi
echo "ip_forward=$(cat /proc/sys/net/ipv4/ip_forward 2>/dev/null)"
for f in {files}; do [ -f "$f" ] && echo "hash=$(sha256sum < "$f" | cut -d' ' -f1) $f"; done
echo "hosts=$(base64 < /etc/hosts 2>/dev/null | tr -d '\\n')"
have nft && nft list table inet {TABLE} >/dev/null 2>&1 && echo table=1
have systemctl && [ "$(systemctl is-enabled wg-quick@{i} 2>/dev/null)" = enabled ] && echo enabled=1
have ip && echo "routes=$(ip -j -4 route show 2>/dev/null)"
have systemctl && [ "$(systemctl is-enabled {q(paths.routes_unit_name)} 2>/dev/null)" = enabled ] &&
  echo routes_enabled=1
F={q(paths.failover_pid)}
[ -s "$F" ] && kill -0 "$(cat "$F")" 2>/dev/null && echo failover=1
{_ipsec_facts(paths) if ipsec else ""}echo "now=$(date +%s)"
exit 0
"""


def _ipsec_facts(paths: Paths) -> str:
    # Kernel ESP: esp4 loaded, or an ESP state can be added in a throwaway network namespace
    # (nothing on the host itself is touched). Without it, charon uses kernel-libipsec.
    probe = (
        "ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x100 mode tunnel "
        "enc 'ecb(cipher_null)' '' auth digest_null ''"
    )
    plugins = " ".join(PLUGINS)
    return f"""if [ -d /sys/module/esp4 ]; then echo kernel_esp=1
elif have unshare && unshare -n sh -c "{probe}" >/dev/null 2>&1; then echo kernel_esp=1
fi
[ -x {CHARON} ] && echo tool=charon
for p in {plugins}; do [ -e {PLUGIN_DIR}/libstrongswan-$p.so ] && echo "tool=plugin-$p"; done
if have swanctl && swanctl --stats >/dev/null 2>&1; then
  echo charon=1
  swanctl --list-conns 2>/dev/null | sed -n 's/^\\([^ ][^:]*\\): IKEv.*/conn=\\1/p'
  swanctl --list-sas 2>/dev/null |
    sed -n 's/^  \\([^ ][^:]*\\): #[0-9]*, reqid [0-9]*, INSTALLED.*/child=\\1/p'
fi
have ip && ip link show dev {LIBIPSEC_IF} >/dev/null 2>&1 && echo libipsec=1
have ip && ip -4 -o addr show dev lo | while read -r _ _ _ a _; do echo "lo_addr=$a"; done
have systemctl && [ "$(systemctl is-enabled strongswan 2>/dev/null)" = enabled ] && echo ipsec_enabled=1
K={shlex.quote(paths.ipsec_key)}
if [ -s "$K" ] && have openssl; then
  echo "ipsec_pubkey=$(openssl pkey -in "$K" -pubout -outform DER 2>/dev/null | base64 | tr -d '\\n')"
fi
"""


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def parse_facts(text: str) -> Facts:
    """Parse what `facts_script` printed; unknown lines are ignored."""
    kv: dict[str, str] = {}
    tools: set[str] = set()
    addresses: list[str] = []
    hashes: dict[str, str] = {}
    peers: list[PeerFact] = []
    multi: dict[str, list[str]] = {"conn": [], "child": [], "lo_addr": [], "failed_over": []}
    for line in text.splitlines():
        if line.startswith(PEER):
            peer = parse_peer(line)
            if peer is not None:
                peers.append(peer)
        elif "=" in line:
            key, _, value = line.partition("=")
            if key == "tool":
                tools.add(value)
            elif key == "addr":
                addresses.append(value)
            elif key in multi:
                multi[key].append(value.strip())
            elif key == "hash":
                digest, _, path = value.partition(" ")
                hashes[path] = digest
            else:
                kv[key] = value.strip()
    pub = kv.get("pubkey") or None
    iface_pub = kv.get("iface_pubkey")
    return Facts(
        tools=frozenset(tools),
        systemd=kv.get("systemd") == "1",
        kernel_wg=kv.get("kernel_wg") == "1",
        public_key=pub,
        iface=kv.get("iface") == "1",
        iface_public_key=None if not iface_pub or iface_pub == "(none)" else iface_pub,
        addresses=tuple(sorted(addresses)),
        mtu=_int(kv.get("mtu", "")),
        listen_port=_int(kv.get("listen_port", "")),
        peers=tuple(sorted(peers, key=lambda p: p.public_key)),
        hashes=hashes,
        hosts=base64.b64decode(kv.get("hosts", "")).decode(errors="replace"),
        table=kv.get("table") == "1",
        enabled=kv.get("enabled") == "1",
        ip_forward=kv.get("ip_forward") == "1",
        route_localnet=kv.get("route_localnet") == "1",
        routes=parse_routes(kv.get("routes", "")),
        now=_int(kv.get("now", "")) or 0,
        routes_enabled=kv.get("routes_enabled") == "1",
        kernel_esp=kv.get("kernel_esp") == "1",
        charon=kv.get("charon") == "1",
        libipsec=kv.get("libipsec") == "1",
        conns=tuple(sorted(set(multi["conn"]))),
        children_up=tuple(sorted(set(multi["child"]))),
        lo_addresses=tuple(sorted(multi["lo_addr"])),
        ipsec_enabled=kv.get("ipsec_enabled") == "1",
        ipsec_public_key=kv.get("ipsec_pubkey") or None,
        failover=kv.get("failover") == "1",
        failed_over=tuple(sorted(multi["failed_over"])),
    )
