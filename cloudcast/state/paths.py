"""Paths that travel: what a saved plan (or any record cloudcast keeps) says about a file of the
checkout, so a plan made in one CI job applies from a fresh clone somewhere else."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def portable(path: Path, base: Path, roots: Iterable[Path]) -> str:
    """`path` relative to `base` when it lies under one of `roots` (the spec's dir, the work
    dir: the checkout's own files), else absolute (a path the operator chose on purpose, such
    as `--workdir /var/lib/cc`, means the same on every machine)."""
    target = path.resolve()
    if any(target.is_relative_to(root.resolve()) for root in roots):
        return Path(os.path.relpath(target, base.resolve())).as_posix()
    return str(target)


def resolved(text: str, base: Path) -> Path:
    """The inverse of `portable`: a relative record means relative to `base`."""
    path = Path(text)
    return path if path.is_absolute() else (base / path).resolve()
