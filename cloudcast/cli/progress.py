"""Reporters for the terminal (rich) and for machines (`--json` event lines)."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from cloudcast.cli.jsonout import emit

_STYLE = {"terraform": "magenta", "bootstrap": "cyan", "verify": "green", "routes": "yellow"}


class ConsoleReporter:
    """One line per event, prefixed by stage and host, on stderr so stdout stays clean."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def event(self, host: str, stage: str, message: str) -> None:
        line = Text()
        line.append(f"{stage:>9} ", style=_STYLE.get(stage, "blue"))
        if host:
            line.append(f"{host}: ", style="bold")
        line.append(message)
        self.console.print(line, soft_wrap=True, highlight=False)


class JsonReporter:
    """`--json`: one `progress` record per event on stdout, for CI pipelines."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def event(self, host: str, stage: str, message: str) -> None:
        emit(self.console, "progress", {"stage": stage, "host": host, "message": message})
