"""Shared helpers: run the CLI in-process and capture what a user would see; one moto server.

- `run_cli` / `cli`: the CLI in-process with an injected environment (CI=1 is always set).
  Every `-json` record any invocation writes is validated against the event schema
  (`cloudcast schema --events`) as it is written, and kept in `EMITTED` (see
  tests/unit/test_json_contract.py): the suite's commands cannot drift from the contract.
- `moto_server`: one moto server on 127.0.0.1 for the whole session (preflight and terraform
  tests share it). `MOTO_AMIS_PATH` replaces moto's stock AMI list with
  tests/fixtures/moto_amis.json: two Canonical Ubuntu 22.04 images (`MOTO_JAMMY_IDS`), so
  the default image lookup (newest `ubuntu-jammy-22.04-amd64-server-*` owned by Canonical)
  finds one of them. (The file has no `creation_date`: moto 5.2 parses it once per region in
  place and fails in the second region; moto stamps each image with its load time instead.)
  Tests sharing the server must filter what they look at by their own tags or ids.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from rich.console import Console

from cloudcast.cli.env import Environment
from cloudcast.cli.eventschema import event_schema
from cloudcast.cli.main import run

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
FIXTURES = ROOT / "tests" / "fixtures"
MOTO_AMIS = FIXTURES / "moto_amis.json"
MOTO_JAMMY_IDS = ("ami-0a1b2c3d4e5f60718", "ami-0f1e2d3c4b5a69788")


@dataclass
class CliResult:
    code: int
    out: str
    err: str


#: every `-json` record the suite's CLI invocations wrote: (argv, record)
EMITTED: list[tuple[tuple[str, ...], dict[str, Any]]] = []
_EVENTS = jsonschema.Draft202012Validator(event_schema())


def json_mode(argv: tuple[str, ...]) -> bool:
    """Whether this command line asks for JSON lines (`-json`, or `output` in its json format)."""
    if any(a in ("--json", "-json") for a in argv):
        return True
    if argv[:1] == ("output",) and "--help" not in argv:
        fmt = argv[argv.index("--format") + 1] if "--format" in argv[:-1] else "json"
        return fmt == "json"
    return False


def check_records(argv: tuple[str, ...], out: str, code: int) -> list[dict[str, Any]]:
    """Validate what a `-json` run wrote: every line one record of the schema; an `error`
    record (with this exit status) exactly when the command failed, and as the last line.
    Exit 2 is no failure: `-detailed-exitcode`'s "changes" (plan) or "stale" (status)."""
    records = []
    for line in out.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"cloudcast {' '.join(argv)}: not a JSON line on stdout: {line[:200]!r}") from None
        errors = sorted(_EVENTS.iter_errors(record), key=lambda e: list(e.absolute_path))
        if errors:
            best = jsonschema.exceptions.best_match(errors)
            raise AssertionError(f"cloudcast {' '.join(argv)}: record {line[:300]} breaks the event schema: {best}")
        records.append(record)
        EMITTED.append((argv, record))
    if code not in (0, 2):  # 2: `-detailed-exitcode`'s "changes" / "stale", not an error
        assert records and records[-1]["type"] == "error", f"cloudcast {' '.join(argv)}: failed without an error record"
        assert records[-1]["exit_status"] == code, records[-1]
    else:
        assert all(r["type"] != "error" for r in records), f"cloudcast {' '.join(argv)}: error record on success"
    return records


def run_cli(*argv: str, environ: dict[str, str] | None = None) -> CliResult:
    out, err = io.StringIO(), io.StringIO()
    env = Environment(
        out=Console(file=out, width=200, soft_wrap=True),
        err=Console(file=err, width=200, soft_wrap=True),
        stdin=io.StringIO(),
        environ={"CI": "1", **(environ or {})},
    )
    code = run(list(argv), env)
    result = CliResult(int(code), out.getvalue(), err.getvalue())
    if json_mode(tuple(argv)):
        check_records(tuple(argv), result.out, result.code)
    return result


@pytest.fixture
def cli() -> Callable[..., CliResult]:
    return run_cli


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url}/moto-api/", timeout=1) as response:
            return bool(response.status < 500)
    except (urllib.error.URLError, OSError):
        return False


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGTERM the process group we started, then SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One moto server for the session (its own process group, killed at the end); its URL."""
    workdir = tmp_path_factory.mktemp("moto")
    port = free_port()
    binary = shutil.which("moto_server")
    command = [binary] if binary else [sys.executable, "-m", "moto.server"]
    command += ["-H", "127.0.0.1", "-p", str(port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["MOTO_AMIS_PATH"] = str(MOTO_AMIS)
    log_path = workdir / "moto.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not _answers(url):
            if proc.poll() is not None:
                pytest.fail(f"moto_server exited ({proc.returncode}): {log_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"moto_server did not answer on {url} within 30 s")
            time.sleep(0.1)
        yield url
    finally:
        stop_process(proc)
