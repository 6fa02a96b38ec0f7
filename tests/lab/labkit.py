"""Shared pieces of the pipeline-level lab tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.lab.conftest import fresh_lab


def lab_prefix_fixture() -> Iterator[str]:
    """A fresh lab prefix (machine-wide lock held); the lab is torn down at the end, also on failure."""
    with fresh_lab() as prefix:
        yield prefix


def write_spec(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc, indent=1))
    return path
