"""The process environment a command runs in, injected so CLI tests run in-process."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TextIO

from rich.console import Console


@dataclass
class Environment:
    """Streams, TTY-ness and environment variables of one cloudcast invocation."""

    out: Console
    err: Console
    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    @classmethod
    def from_process(cls) -> Environment:
        return cls(out=Console(soft_wrap=True), err=Console(stderr=True, soft_wrap=True))

    @property
    def interactive(self) -> bool:
        """True only when a person can answer a prompt (a TTY, and not in CI)."""
        if self.environ.get("CI") or self.environ.get("CLOUDCAST_NON_INTERACTIVE"):
            return False
        try:
            return self.stdin.isatty()
        except (AttributeError, ValueError):
            return False
