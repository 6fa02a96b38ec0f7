"""Locate the Terraform modules and Jinja2 templates, in an installed wheel or a checkout."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

_PKG = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    # The package's own data first; the checkout's folder only when the parent really is our
    # source tree (an unrelated `tf` folder beside an installed package must never be used).
    packaged = Path(str(files("cloudcast").joinpath("_data", name)))
    if packaged.is_dir():
        return packaged
    checkout = _PKG.parent
    if (checkout / name).is_dir() and _is_source_tree(checkout):
        return checkout / name
    raise FileNotFoundError(f"cloudcast data folder {name!r} not found in {_PKG}/_data or the checkout")


def _is_source_tree(path: Path) -> bool:
    try:
        return 'name = "cloudcast"' in (path / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return False


def tf_dir() -> Path:
    """The folder holding the hand-written Terraform modules (`aws`, `linode`, `vultr`, `lab`)."""
    return _find("tf")


def templates_dir() -> Path:
    """The folder holding the Jinja2 templates for host configs."""
    return _find("templates")
