"""The ssh layer without SSH: connectors, the pool behind `Fleet.pooled`, one-line errors."""

from __future__ import annotations

from dataclasses import dataclass, field

from cloudcast.errors import BootstrapError
from cloudcast.inventory.hosts import Host
from cloudcast.ssh import ConnectError, Fleet, PerHost, Result, describe
from cloudcast.ssh.wgdump import parse_peer, peer_lines


@dataclass
class Counted:
    """A transport that counts closes."""

    name: str
    closed: int = 0

    def run(self, cmd: str, *, stdin: bytes | None = None, timeout: float = 120.0) -> Result:
        return Result(0, self.name, "")

    def put(self, path: str, data: bytes, mode: int = 0o600) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.closed += 1


@dataclass
class Opener:
    label: str
    opened: list[Counted] = field(default_factory=list)

    def connect(self, host: Host) -> Counted:
        self.opened.append(Counted(f"{self.label}:{host.name}"))
        return self.opened[-1]


def host(name: str) -> Host:
    return Host(name, "site", "lab", "198.18.1.10", 22, "root", None, None, None)


def test_pooled_fleet_opens_one_connection_per_host_and_closes_them_at_the_end() -> None:
    new, known = Opener("new"), Opener("known")
    fleet = Fleet(PerHost(lambda h: new if h.name == "fresh" else known))
    with fleet.pooled() as pooled:
        for _ in range(3):
            for name in ("fresh", "old"):
                t = pooled.connect(host(name))
                assert t.run("true").stdout == ("new:fresh" if name == "fresh" else "known:old")
                t.close()  # a borrowed connection stays open for the next stage
        assert [t.closed for t in new.opened + known.opened] == [0, 0]
    assert [t.closed for t in new.opened + known.opened] == [1, 1]


def test_describe_keeps_our_messages_and_names_foreign_errors() -> None:
    assert describe(ConnectError("node a (h:22): timed out")) == "node a (h:22): timed out"
    assert describe(BootstrapError("cannot gather facts")) == "cannot gather facts"
    assert describe(ValueError("bad")) == "ValueError: bad"


def test_peer_lines_drop_private_material_and_parse_back() -> None:
    script = peer_lines("cc0")
    assert "tail -n +2 | cut -f1,3-" in script and script.startswith("wg show cc0 dump")
    peer = parse_peer("peer\tAAA=\t198.18.1.10:51871\t10.15.0.1/32\t1700000000\t100\t200\toff")
    assert peer is not None and peer.endpoint == "198.18.1.10:51871" and peer.keepalive is None
    assert parse_peer("peer\tshort\tline") is None and parse_peer("now=1") is None
