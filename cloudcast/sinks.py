"""Last checks where values leave cloudcast: config lines, shell words, hosts and ssh_config lines.

The spec is validated first; these hold on their own, for whatever validation lets through and
for what hosts and Terraform report.
"""

from __future__ import annotations

import re
import unicodedata
from ipaddress import ip_address

from cloudcast.errors import UnsafeValueError

#: control characters, line and paragraph separators, lone surrogates, and format characters
#: (bidi overrides and zero-width marks make a line read differently than it parses)
_BREAKING = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")


def _show(value: str) -> str:
    return repr(value[:60] + ("…" if len(value) > 60 else ""))


def breaking_char(text: str) -> str | None:
    """The first character of `text` that could end (or hide the end of) a line, or None."""
    return next((c for c in text if unicodedata.category(c) in _BREAKING), None)


def one_line(value: str, what: str) -> str:
    """`value` unchanged, or UnsafeValueError if it holds a control or line-breaking character."""
    bad = breaking_char(value)
    if bad is not None:
        name = unicodedata.name(bad, f"U+{ord(bad):04X}")
        raise UnsafeValueError(f"{what}: refusing {_show(value)}: it holds {name}")
    return value


def one_word(value: str, what: str) -> str:
    """`value` unchanged, or UnsafeValueError if it is empty or holds whitespace or control characters."""
    one_line(value, what)
    if not value or any(c.isspace() for c in value):
        raise UnsafeValueError(f"{what}: refusing {_show(value)}: it must be one word")
    return value


def is_hostname(text: str) -> bool:
    """An RFC 1123 host name (ASCII labels of letters, digits and inner '-'; a final '.' allowed)."""
    return _HOSTNAME.fullmatch(text) is not None


def ip_or_none(text: str | None) -> str | None:
    """`text` as a normalised IP address, or None when it is not one (nor a scoped IPv6 one:
    its zone, after '%', may be any text)."""
    if not text or "%" in text:
        return None
    try:
        return str(ip_address(text))
    except ValueError:
        return None
