"""Run a host's actions in ONE round trip: stage every file, rename them all, then the commands.

The script travels on stdin, never on a command line, so preshared keys never show in `ps`.
"""

from __future__ import annotations

import base64
import shlex
from collections.abc import Sequence

from cloudcast.bootstrap.actions import Action
from cloudcast.errors import BootstrapError
from cloudcast.ssh.transport import Transport

_MARK = "@@cloudcast-done"


class StepFailed(BootstrapError):
    """An action failed on the host; carries the actions that did complete before it."""

    def __init__(self, message: str, done: tuple[Action, ...], failed: Action) -> None:
        super().__init__(message)
        self.done = done
        self.failed = failed


def _order(actions: Sequence[Action]) -> list[int]:
    """Indices in the order the script runs them: file writes first, then commands."""
    files = [n for n, a in enumerate(actions) if a.file is not None]
    return files + [n for n, a in enumerate(actions) if a.command is not None]


def build_script(actions: Sequence[Action]) -> str:
    """The shell script for `actions` (files staged first, renamed together, then commands)."""
    lines = [
        "set -e",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH",
        "umask 077",
        'staged=""',
        "trap 'rm -f $staged' EXIT",
    ]
    files = [(n, a) for n, a in enumerate(actions) if a.file is not None]
    for n, action in files:
        assert action.file is not None
        path = shlex.quote(action.file.path)
        data = base64.encodebytes(action.file.content).decode()
        lines += [
            f'mkdir -p "$(dirname {path})"',
            f"t{n}=$(mktemp {path}.XXXXXX)",
            f'staged="$staged $t{n}"',
            f"base64 -d > \"$t{n}\" <<'CLOUDCAST_EOF'",
            data.rstrip("\n"),
            "CLOUDCAST_EOF",
            f'chmod {action.file.mode:o} "$t{n}"',
        ]
    for n, action in files:
        assert action.file is not None
        path = shlex.quote(action.file.path)
        # a bind-mounted file (/etc/hosts in a container) cannot be replaced by rename
        lines.append(f'mv -f "$t{n}" {path} 2>/dev/null || {{ cat "$t{n}" > {path}; rm -f "$t{n}"; }}')
        lines.append(f"echo '{_MARK} {n}'")
    for n, action in enumerate(actions):
        if action.command is not None:
            lines += ["(", action.command, ")", f"echo '{_MARK} {n}'"]
    return "\n".join(lines) + "\n"


def execute(transport: Transport, actions: Sequence[Action], *, timeout: float = 900.0) -> list[Action]:
    """Run `actions` on the host; returns them, or raises `StepFailed` naming the failing one."""
    if not actions:
        return []
    result = transport.run("sh -s", stdin=build_script(actions).encode(), timeout=timeout)
    finished = {
        int(line.split()[1])
        for line in result.stdout.splitlines()
        if line.startswith(_MARK) and line.split()[1:2] and line.split()[1].isdigit()
    }
    if result.ok:
        return list(actions)
    order = _order(actions)
    done = tuple(actions[n] for n in order if n in finished)
    failed = actions[next((n for n in order if n not in finished), order[-1])]
    raise StepFailed(f"{failed.description} failed: {result.tail()}", done, failed)
