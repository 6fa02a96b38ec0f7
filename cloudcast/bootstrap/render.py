"""Jinja2 (StrictUndefined) rendering of host files, and the /etc/hosts block splice."""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2

from cloudcast.resources import templates_dir


@cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # config files, not HTML
    )


def render(template: str, **context: Any) -> str:
    """Render one template from `templates/`; a missing variable is an error, never blank."""
    return _env().get_template(template).render(**context)


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
