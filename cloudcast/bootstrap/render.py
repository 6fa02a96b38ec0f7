"""Jinja2 (StrictUndefined) rendering of host files, and the /etc/hosts block splice."""

from __future__ import annotations

import shlex
from functools import cache
from typing import Any

import jinja2

from cloudcast.errors import UnsafeValueError
from cloudcast.resources import templates_dir
from cloudcast.sinks import one_line


def _finalize(value: Any) -> Any:
    """Every `{{ }}` value: refused when it could end its line (and so start one of its own)."""
    return one_line(str(value), "a rendered value")


def sh(value: Any) -> str:
    """The `sh` filter: one shell word (shlex.quote leaves safe words such as 10.1.0.0/16 bare)."""
    return shlex.quote(str(value))


def dq(value: Any) -> str:
    """The `dq` filter: a double-quoted config string (nft); a value with a quote or backslash is refused."""
    text = str(value)
    if '"' in text or "\\" in text:
        raise UnsafeValueError(f"a rendered value: refusing {text[:60]!r}: it holds a quote or backslash")
    return f'"{text}"'


@cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # config files, not HTML
        finalize=_finalize,
    )
    env.filters.update(sh=sh, dq=dq)
    return env


def render(template: str, **context: Any) -> str:
    """Render one template from `templates/`; a missing variable is an error, never blank.

    A value that would break its line is refused (UnsafeValueError naming the template).
    """
    try:
        return _env().get_template(template).render(**context)
    except UnsafeValueError as exc:
        raise UnsafeValueError(f"{template}: {exc.message}") from None


def markers(network: str) -> tuple[str, str]:
    return f"# BEGIN cloudcast {network}", f"# END cloudcast {network}"


def hosts_block(text: str, network: str) -> str | None:
    """The managed block of `network` in an /etc/hosts text (markers included), or None."""
    begin, end = markers(network)
    lines = text.splitlines()
    if begin not in lines:
        return None
    start = lines.index(begin)
    try:
        stop = lines.index(end, start)
    except ValueError:
        return None
    return "\n".join(lines[start : stop + 1]) + "\n"


def splice_hosts(text: str, network: str, block: str | None) -> str:
    """`text` with `network`'s block replaced by `block` (appended if absent, removed if None).

    Every other line is kept as it was.
    """
    begin, end = markers(network)
    lines = text.splitlines()
    new = block.splitlines() if block else []
    if begin in lines:
        start = lines.index(begin)
        stop = lines.index(end, start) if end in lines[start:] else start
        lines[start : stop + 1] = new
    elif new:
        if lines and lines[-1].strip():
            lines.append("")
        lines.extend(new)
    if not block:
        # no trailing blank line left behind by our own removal
        while lines and not lines[-1].strip():
            lines.pop()
    return "\n".join(lines) + "\n" if lines else ""
