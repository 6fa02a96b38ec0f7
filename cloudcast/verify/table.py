"""Plain-text rendering of rich tables: the same text on a terminal, in a log and in a test."""

from __future__ import annotations

from io import StringIO

from rich.console import Console
from rich.table import Table


def grid() -> Table:
    """A borderless table whose columns are one space apart (no header style, no edge)."""
    return Table(box=None, pad_edge=False, padding=(0, 1, 0, 0), show_edge=False, show_header=False)


def to_text(table: Table, *, indent: int = 0) -> str:
    """`table` as lines without colour or trailing blanks, each indented by `indent` spaces."""
    buf = StringIO()
    Console(file=buf, width=10_000, color_system=None, highlight=False, emoji=False).print(table)
    pad = " " * indent
    return "\n".join(pad + line.rstrip() for line in buf.getvalue().splitlines())
