"""The work dir: allocations, public keys, secrets and the run lock."""

from cloudcast.state.store import (
    RemoteState,
    Secrets,
    State,
    StateConflictError,
    WorkDir,
    WorkDirLockedError,
    ensure_psks,
    forget_state,
    load_secrets,
    load_state,
    locked,
    save_secrets,
    save_state,
    write_private,
)

__all__ = [
    "RemoteState",
    "Secrets",
    "State",
    "StateConflictError",
    "WorkDir",
    "WorkDirLockedError",
    "ensure_psks",
    "forget_state",
    "load_secrets",
    "load_state",
    "locked",
    "save_secrets",
    "save_state",
    "write_private",
]
