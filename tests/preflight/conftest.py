"""Servers for preflight tests: a real moto server over HTTP, and replay servers for Linode and Vultr.

The replay servers answer `METHOD /prefix/some/path` with the JSON body in
`tests/fixtures/<api>/METHOD_some_path.json`, check the bearer token first (401 with the
API's own error body when it is wrong), and 404 (again in the API's shape) for anything else.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.preflight.helpers import AWS_SECRET, LINODE_TOKEN, VULTR_KEY

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures"
MOTO_AMIS = HERE / "moto_amis.json"



@dataclass
class Seen:
    method: str
    path: str
    query: str
    authorized: bool


@dataclass
class ReplayServer:
    """A local HTTP server replaying recorded-shape API responses from a fixtures directory."""

    root: Path
    prefix: str
    token: str
    seen: list[Seen] = field(default_factory=list)
    url: str = ""
    _server: ThreadingHTTPServer | None = None

    def body(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def start(self) -> None:
        replay = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:  # preflight must never write; answered so a test can see it
                self._answer("POST")

            def _answer(self, method: str) -> None:
                parts = urlsplit(self.path)
                authorized = self.headers.get("Authorization") == f"Bearer {replay.token}"
                replay.seen.append(Seen(method, parts.path, parts.query, authorized))
                if not authorized:
                    self._send(401, replay.body("_401.json"))
                    return
                path = parts.path
                name = None
                if path.startswith(replay.prefix + "/"):
                    name = method + path[len(replay.prefix) :].replace("/", "_") + ".json"
                if method != "GET" or name is None or not (replay.root / name).is_file():
                    self._send(404, replay.body("_404.json"))
                    return
                self._send(200, replay.body(name))

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{port}{self.prefix}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]


@pytest.fixture(scope="session")
def linode_api() -> Iterator[ReplayServer]:
    server = ReplayServer(FIXTURES / "linode_api", "/v4", LINODE_TOKEN)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def vultr_api() -> Iterator[ReplayServer]:
    server = ReplayServer(FIXTURES / "vultr_api", "/v2", VULTR_KEY)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def linode_env(linode_api: ReplayServer) -> dict[str, str]:
    linode_api.seen.clear()
    return {"LINODE_TOKEN": LINODE_TOKEN, "LINODE_API_URL": linode_api.url}


@pytest.fixture
def vultr_env(vultr_api: ReplayServer) -> dict[str, str]:
    vultr_api.seen.clear()
    return {"VULTR_API_KEY": VULTR_KEY, "VULTR_API_URL": vultr_api.url}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _moto_command(port: int) -> list[str]:
    binary = shutil.which("moto_server")
    if binary:
        return [binary, "-H", "127.0.0.1", "-p", str(port)]
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


@pytest.fixture(scope="session")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real moto server on a free local port, with a jammy AMI catalogue; killed at the end."""
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    env = {**os.environ, "MOTO_AMIS_PATH": str(MOTO_AMIS)}
    with log.open("wb") as out:
        proc = subprocess.Popen(_moto_command(port), stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                pytest.fail(f"moto_server exited ({proc.returncode}): {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                    break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"moto_server did not start: {log.read_text()[-2000:]}")
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture
def aws_env(moto_url: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "AKIAPREFLIGHTTEST000",
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "AWS_ENDPOINT_URL": moto_url,
    }
