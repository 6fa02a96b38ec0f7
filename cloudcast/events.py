"""Progress events every stage emits; the CLI renders them for people or as JSON lines."""

from __future__ import annotations

from typing import Protocol


class Reporter(Protocol):
    """Receives progress: `host` is a node or resource name ('' for the stage as a whole)."""

    def event(self, host: str, stage: str, message: str) -> None: ...


class NullReporter:
    """Drops every event (library calls without a listener)."""

    def event(self, host: str, stage: str, message: str) -> None:
        return None
