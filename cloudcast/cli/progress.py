"""Reporters for the terminal (rich) and for machines (`--json` event lines)."""

from __future__ import annotations

import json
import time

from rich.console import Console
from rich.text import Text

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
    """`--json`: one JSON object per line on stdout, for CI pipelines."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def event(self, host: str, stage: str, message: str) -> None:
        record = {
            "ts": round(time.time(), 3),
            "type": "event",
            "stage": stage,
            "host": host,
            "message": message,
        }
        self.console.print(json.dumps(record), markup=False, highlight=False, soft_wrap=True)
