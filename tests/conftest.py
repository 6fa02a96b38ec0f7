"""Shared helpers: run the CLI in-process and capture what a user would see."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console

from cloudcast.cli.env import Environment
from cloudcast.cli.main import run

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def run_cli(*argv: str, environ: dict[str, str] | None = None) -> CliResult:
    out, err = io.StringIO(), io.StringIO()
    env = Environment(
        out=Console(file=out, width=200, soft_wrap=True),
        err=Console(file=err, width=200, soft_wrap=True),
        stdin=io.StringIO(),
        environ={"CI": "1", **(environ or {})},
    )
    code = run(list(argv), env)
    return CliResult(int(code), out.getvalue(), err.getvalue())


@pytest.fixture
def cli() -> Callable[..., CliResult]:
    return run_cli
