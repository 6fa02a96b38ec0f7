"""Where cloudcast's files live on a host; one place, so facts, actions and teardown agree."""

from __future__ import annotations

import re
from dataclasses import dataclass

from cloudcast.errors import UnsafeValueError

TABLE = "cloudcast"  # the nftables table (family inet) cloudcast owns; no other table is touched
USERSPACE_ENV = "WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go"
#: routing protocol number that marks the routes cloudcast adds (`ip route ... proto 241`), so
#: stale ones can be found and removed without touching anybody else's
ROUTE_PROTO = 241
#: the TUN device strongSwan's kernel-libipsec creates (userspace ESP)
LIBIPSEC_IF = "ipsec0"
#: kernel-libipsec fixes ipsec0's MTU at 1400 (a larger MTU set from outside truncates packets)
LIBIPSEC_MTU = 1400
CHARON = "/usr/lib/ipsec/charon"
#: an interface name the kernel takes (IFNAMSIZ), not option-like: it is in every path and command
_INTERFACE = re.compile(r"[A-Za-z0-9_=+.][A-Za-z0-9_=+.-]{0,14}")


@dataclass(frozen=True, slots=True)
class Paths:
    interface: str

    def __post_init__(self) -> None:
        if not _INTERFACE.fullmatch(self.interface):
            what = "not an interface name (1-15 of A-Z a-z 0-9 _ = + . -, not starting with '-')"
            raise UnsafeValueError(f"interface {self.interface[:60]!r}: {what}")

    @property
    def wg_conf(self) -> str:
        return f"/etc/wireguard/{self.interface}.conf"

    @property
    def key(self) -> str:
        return f"/etc/wireguard/{self.interface}.key"

    @property
    def firewall(self) -> str:
        return f"/etc/cloudcast/{self.interface}.nft"

    @property
    def sysctl(self) -> str:
        return f"/etc/sysctl.d/90-cloudcast-{self.interface}.conf"

    @property
    def dropin(self) -> str:
        return f"/etc/systemd/system/wg-quick@{self.interface}.service.d/cloudcast.conf"

    @property
    def routes(self) -> str:
        return f"/etc/cloudcast/{self.interface}-routes.sh"

    @property
    def routes_unit(self) -> str:
        """Runs the routes script at boot where systemd runs."""
        return f"/etc/systemd/system/cloudcast-{self.interface}-routes.service"

    @property
    def routes_unit_name(self) -> str:
        return f"cloudcast-{self.interface}-routes.service"

    @property
    def failover(self) -> str:
        """The failover agent: hands a dead primary's CIDRs to its standby (see templates)."""
        return f"/etc/cloudcast/{self.interface}-failover.sh"

    @property
    def failover_unit_name(self) -> str:
        return f"cloudcast-{self.interface}-failover.service"

    @property
    def failover_unit(self) -> str:
        return f"/etc/systemd/system/{self.failover_unit_name}"

    @property
    def failover_log(self) -> str:
        """Where the agent says what it did (the journal where systemd runs)."""
        return f"/var/log/cloudcast-{self.interface}-failover.log"

    @property
    def failover_state(self) -> str:
        """The primaries the agent found down (one per line; empty when none)."""
        return f"/run/cloudcast-{self.interface}-failover.state"

    @property
    def failover_pid(self) -> str:
        return f"/run/cloudcast-{self.interface}-failover.pid"

    @property
    def swanctl_conf(self) -> str:
        return f"/etc/swanctl/conf.d/cloudcast-{self.interface}.conf"

    @property
    def strongswan_conf(self) -> str:
        """charon settings: kernel-libipsec where kernel ESP is missing, retransmits, log."""
        return f"/etc/strongswan.d/cloudcast-{self.interface}.conf"

    @property
    def ipsec_key(self) -> str:
        """The gateway's own IPsec private key (made on the host; certificates auth only)."""
        return f"/etc/swanctl/private/cloudcast-{self.interface}.pem"

    @property
    def ipsec_cert(self) -> str:
        return f"/etc/swanctl/x509/cloudcast-{self.interface}.pem"

    @property
    def ipsec_ca(self) -> str:
        return f"/etc/swanctl/x509ca/cloudcast-{self.interface}-ca.pem"

    @property
    def charon_log(self) -> str:
        return f"/var/log/cloudcast-{self.interface}-charon.log"

    @property
    def hosts(self) -> str:
        return "/etc/hosts"

    @property
    def managed(self) -> tuple[str, ...]:
        """Whole files cloudcast owns (the key and /etc/hosts are handled apart)."""
        return (
            self.wg_conf,
            self.firewall,
            self.sysctl,
            self.dropin,
            self.routes,
            self.routes_unit,
            self.swanctl_conf,
            self.strongswan_conf,
            self.ipsec_cert,
            self.ipsec_ca,
            self.failover,
            self.failover_unit,
        )
