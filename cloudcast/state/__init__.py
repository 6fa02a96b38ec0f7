"""The work dir: allocations, public keys, secrets and the run lock."""

from cloudcast.state.store import (
    Secrets,
    State,
    WorkDir,
    ensure_psks,
    load_secrets,
    load_state,
    locked,
    save_secrets,
    save_state,
    write_private,
)

__all__ = [
    "Secrets",
    "State",
    "WorkDir",
    "ensure_psks",
    "load_secrets",
    "load_state",
    "locked",
    "save_secrets",
    "save_state",
    "write_private",
]
