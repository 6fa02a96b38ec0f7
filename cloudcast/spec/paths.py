"""JSON-path strings for spec locations, like `sites[1].nodes[0].name`, and value echoes."""

from __future__ import annotations

from collections.abc import Sequence

#: longest part of an offending value (or key) echoed back in a message
ECHO_LIMIT = 80


def shorten(value: object, limit: int = ECHO_LIMIT) -> str:
    """`repr(value)` for a message, at most about `limit` characters: a long string is cut
    before repr (`'aaaa'…`), anything else after it."""
    if isinstance(value, str | bytes) and len(value) > limit:
        return f"{value[:limit]!r}…"
    try:
        text = repr(value)
    except ValueError:  # an int past Python's int_max_str_digits cannot even be printed
        return f"<a {type(value).__name__} too large to show>"
    return text if len(text) <= limit else text[:limit] + "…"


def join(loc: Sequence[int | str]) -> str:
    """Turn a location tuple into a path: ('sites', 1, 'cidr') -> 'sites[1].cidr'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            key = str(part)
            if len(key) > ECHO_LIMIT:  # keys come from the spec: name a 100 KB one by its start
                key = key[:ECHO_LIMIT] + "…"
            out += f".{key}" if out else key
    return out or "(spec)"
