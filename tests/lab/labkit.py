"""Shared pieces of the lab tests: prerequisites (fail in CI, skip locally), a private lab prefix."""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TOOLS = (
    "ip",
    "nsenter",
    "unshare",
    "sshd",
    "wg",
    "wg-quick",
    "wireguard-go",
    "nft",
    "terraform",
    "socat",
    "ping",
)


def require_lab() -> None:
    """Lab tests need root and the lab's tools: missing ones fail in CI and skip elsewhere."""
    problems = []
    if os.geteuid() != 0:
        problems.append("not root (the lab needs CAP_NET_ADMIN)")
    sbin = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    missing = [t for t in TOOLS if shutil.which(t, path=sbin) is None]
    if missing:
        problems.append("missing tools: " + ", ".join(missing) + " (run .ci/setup)")
    if not Path("/dev/net/tun").exists():
        problems.append("no /dev/net/tun")
    if problems:
        msg = "lab prerequisites: " + "; ".join(problems)
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


def new_prefix() -> str:
    return "cctest" + secrets.token_hex(2)


def lab_prefix_fixture() -> Iterator[str]:
    """A unique lab prefix; everything made under it is torn down at the end, also on failure."""
    require_lab()
    from cloudcast import lab

    prefix = new_prefix()
    try:
        yield prefix
    finally:
        lab.down(prefix)


def write_spec(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc, indent=1))
    return path
