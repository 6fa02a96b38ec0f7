"""`wg show IF dump` as hosts send it back: the shell that prints it safely, and its parser.

The facts script (bootstrap) and the status script (verify) both embed `peer_lines`; whatever
reads their output parses the lines with `parse_peer`.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

#: how a peer line starts
PEER = "peer\t"


@dataclass(frozen=True, slots=True)
class PeerFact:
    """One line of `wg show IF dump` with the preshared key column removed on the host."""

    public_key: str
    endpoint: str | None
    allowed_ips: tuple[str, ...]
    latest_handshake: int  # unix time; 0 = never
    rx: int
    tx: int
    keepalive: int | None


def peer_lines(interface: str) -> str:
    """Shell that prints one `peer<TAB>...` line per peer of `interface`.

    The dump starts with the interface line, which holds the PRIVATE key: `tail -n +2` drops
    it and `cut -f1,3-` drops each peer's preshared key, on the host.
    """
    return f"wg show {shlex.quote(interface)} dump 2>/dev/null | tail -n +2 | cut -f1,3- | sed 's/^/{PEER}/'"


def parse_peer(line: str) -> PeerFact | None:
    """A `peer<TAB>...` line (public-key, endpoint, allowed-ips, latest-handshake, rx, tx,
    keepalive); None when it is not a well-formed one."""
    if not line.startswith(PEER):
        return None
    fields = line[len(PEER) :].split("\t")
    if len(fields) != 7:
        return None
    key, endpoint, allowed, handshake, rx, tx, keepalive = fields
    return PeerFact(
        public_key=key,
        endpoint=None if endpoint == "(none)" else endpoint,
        allowed_ips=tuple(sorted(a for a in allowed.split(",") if a and a != "(none)")),
        latest_handshake=_int(handshake) or 0,
        rx=_int(rx) or 0,
        tx=_int(tx) or 0,
        keepalive=_int(keepalive),
    )


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None
