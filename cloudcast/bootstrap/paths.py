"""Where cloudcast's files live on a host; one place, so facts, actions and teardown agree."""

from __future__ import annotations

from dataclasses import dataclass

TABLE = "cloudcast"  # the nftables table (family inet) cloudcast owns; no other table is touched
USERSPACE_ENV = "WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go"


@dataclass(frozen=True, slots=True)
class Paths:
    interface: str

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
    def hosts(self) -> str:
        return "/etc/hosts"

    @property
    def managed(self) -> tuple[str, ...]:
        """Whole files cloudcast owns (the key and /etc/hosts are handled apart)."""
        return (self.wg_conf, self.firewall, self.sysctl, self.dropin, self.routes)
