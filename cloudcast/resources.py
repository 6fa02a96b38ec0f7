"""Locate the Terraform modules and Jinja2 templates, in a checkout or an installed wheel."""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    for candidate in (_PKG.parent / name, _PKG / "_data" / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"cloudcast data folder {name!r} not found beside {_PKG}")


def tf_dir() -> Path:
    """The folder holding the hand-written Terraform modules (`aws`, `linode`, `vultr`, `lab`)."""
    return _find("tf")


def templates_dir() -> Path:
    """The folder holding the Jinja2 templates for host configs."""
    return _find("templates")
