"""Servers for preflight tests: replay servers for Linode and Vultr (moto is tests/conftest.py's).

The replay servers answer `METHOD /prefix/some/path` with the JSON body in
`tests/fixtures/<api>/METHOD_some_path.json`, check the bearer token first (401 with the
API's own error body when it is wrong), and 404 (again in the API's shape) for anything else.
"""

from __future__ import annotations

import threading
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


@pytest.fixture
def aws_env(moto_server: str) -> dict[str, str]:
    """Credentials for the session's moto server (tests/conftest.py)."""
    return {
        "AWS_ACCESS_KEY_ID": "AKIAPREFLIGHTTEST000",
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "AWS_ENDPOINT_URL": moto_server,
    }
