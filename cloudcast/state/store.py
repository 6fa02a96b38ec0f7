"""The work dir: cloudcast's own state, secrets (mode 0600), known hosts and the run lock."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import secrets as _random
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudcast.errors import StateError
from cloudcast.plan.model import Allocations, NetworkPlan

STATE_VERSION = 1


@dataclass(frozen=True)
class WorkDir:
    """Where one network's state lives (default `.cloudcast/` beside the spec)."""

    root: Path

    @property
    def terraform(self) -> Path:
        return self.root / "terraform"

    @property
    def state_file(self) -> Path:
        return self.root / "cloudcast.state.json"

    @property
    def secrets_file(self) -> Path:
        return self.root / "secrets.json"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    def ensure(self) -> WorkDir:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self


@dataclass
class State:
    """cloudcast's own state: allocations, WireGuard public keys, what was last applied."""

    allocations: Allocations = field(default_factory=Allocations)
    public_keys: dict[str, str] = field(default_factory=dict)
    applied: dict[str, Any] = field(default_factory=dict)
    routes: list[dict[str, str]] = field(default_factory=list)  # AWS routes cloudcast owns

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "allocations": self.allocations.to_dict(),
            "public_keys": dict(sorted(self.public_keys.items())),
            "applied": self.applied,
            "routes": self.routes,
        }


@dataclass
class Secrets:
    """Preshared keys per pair. Never printed; stored with mode 0600."""

    psk: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # keep keys out of logs and tracebacks
        return f"Secrets(psk=<{len(self.psk)} masked>)"


def write_private(path: Path, text: str) -> None:
    """Write `text` atomically (temp file + rename) with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise StateError(f"{path}: unreadable state ({exc})", hint="restore it from a backup") from None
    if not isinstance(data, dict):
        raise StateError(f"{path}: unreadable state (not an object)")
    return data


def load_state(wd: WorkDir) -> State:
    data = _read_json(wd.state_file)
    if data and data.get("version") != STATE_VERSION:
        raise StateError(f"{wd.state_file}: state version {data.get('version')} is not supported")
    return State(
        allocations=Allocations.from_dict(data.get("allocations", {})),
        public_keys=dict(data.get("public_keys", {})),
        applied=dict(data.get("applied", {})),
        routes=list(data.get("routes", [])),
    )


def save_state(wd: WorkDir, state: State) -> None:
    write_private(wd.ensure().state_file, json.dumps(state.to_dict(), indent=1, sort_keys=True) + "\n")


def load_secrets(wd: WorkDir) -> Secrets:
    return Secrets(psk=dict(_read_json(wd.secrets_file).get("psk", {})))


def save_secrets(wd: WorkDir, secrets: Secrets) -> None:
    text = json.dumps({"psk": dict(sorted(secrets.psk.items()))}, indent=1) + "\n"
    write_private(wd.ensure().secrets_file, text)


def new_psk() -> str:
    """A 256-bit preshared key in WireGuard's base64 form."""
    return base64.b64encode(_random.token_bytes(32)).decode()


def ensure_psks(plan: NetworkPlan, secrets: Secrets) -> tuple[Secrets, int]:
    """Keep the PSK of every still-peered pair, make one for each new pair, drop the rest."""
    pairs = plan.pairs()
    kept = {p: secrets.psk[p] for p in pairs if p in secrets.psk}
    created = 0
    for pair in pairs:
        if pair not in kept:
            kept[pair] = new_psk()
            created += 1
    return Secrets(psk=kept), created


@contextlib.contextmanager
def locked(wd: WorkDir) -> Iterator[None]:
    """Hold the work dir's lock; a second cloudcast run fails fast instead of waiting."""
    path = wd.ensure().root / "lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise StateError(
                f"{wd.root} is locked by another cloudcast run (pid {holder})",
                hint="wait for it to finish; the lock frees itself when that process exits",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)
