"""Bounded parallel fan-out with a result per host (fabric's GroupResult habit)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from cloudcast.errors import CloudcastError

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Outcome(Generic[R]):
    """What one host's call gave: a value, or the exception it raised."""

    value: R | None = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def fan_out(
    items: Iterable[T],
    fn: Callable[[T], R],
    *,
    key: Callable[[T], str],
    parallel: int = 32,
) -> dict[str, Outcome[R]]:
    """Call `fn` on every item, at most `parallel` at once; one failure never hides the others.

    Results keep the items' order. KeyboardInterrupt and SystemExit still propagate.
    """
    work = list(items)
    if not work:
        return {}

    def call(item: T) -> Outcome[R]:
        try:
            return Outcome(value=fn(item))
        except Exception as exc:  # a per-host failure is a normal result
            return Outcome(error=exc)

    with ThreadPoolExecutor(
        max_workers=max(1, min(parallel, len(work))), thread_name_prefix="cloudcast"
    ) as pool:
        results = list(pool.map(call, work))
    return {key(item): result for item, result in zip(work, results, strict=True)}


def describe(error: BaseException) -> str:
    """A host's failure as one line: our own errors say it already, others get their type."""
    if isinstance(error, CloudcastError):
        return error.message
    return f"{type(error).__name__}: {error}"
