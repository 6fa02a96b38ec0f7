"""JSON-path strings for spec locations, like `sites[1].nodes[0].name`."""

from __future__ import annotations

from collections.abc import Sequence


def join(loc: Sequence[int | str]) -> str:
    """Turn a location tuple into a path: ('sites', 1, 'cidr') -> 'sites[1].cidr'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(spec)"
