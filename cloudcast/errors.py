"""One root exception, a subclass per pipeline stage, and the process exit codes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import IntEnum
from typing import Any


class ExitStatus(IntEnum):
    """Process exit codes, following Terraform's: 0 success, 1 error (usage errors too), and with
    `-detailed-exitcode` 2 for "something to act on" (`plan`: changes; `status`: a stale peer)."""

    OK = 0
    ERROR = 1
    USAGE = 1  # an unknown flag or a missing argument: Terraform's 1, never 2 ("changes")
    CHANGES = 2  # `plan -detailed-exitcode`: the plan has changes
    STALE = 2  # `status -detailed-exitcode`: a peer has no recent handshake, or a node is down
    INTERRUPTED = 130


class CloudcastError(Exception):
    """Root of every error cloudcast reports to the user as one line."""

    exit_status: ExitStatus = ExitStatus.ERROR

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        details: str = "",
        records: Sequence[tuple[str, Mapping[str, Any]]] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details  # printed before the one-line error (e.g. the verify matrix)
        #: the same for machines: (type, payload) JSON records written before the error record
        #: with `--json` (e.g. `("verify", result.to_dict())` for a failed apply)
        self.records = tuple(records)


class UsageError(CloudcastError):
    """The command line is wrong (unknown flag, missing argument); the usage line is the details."""

    exit_status = ExitStatus.USAGE


class SpecError(CloudcastError):
    """The spec is malformed or inconsistent; carries one line per problem."""

    #: problems printed before "and N more problems"; `problems` keeps them all, for programs
    SHOWN = 20
    #: a printed problem line is cut here, whatever stage wrote it (values are cut already)
    LINE_LIMIT = 400

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        count = len(problems)
        super().__init__(f"the spec has {count} problem{'s' if count != 1 else ''}")

    def report(self) -> list[str]:
        """The lines to print for a person: the first SHOWN problems, then how many more."""
        limit = self.LINE_LIMIT
        lines = [p if len(p) <= limit else p[:limit] + "…" for p in self.problems[: self.SHOWN]]
        more = len(self.problems) - self.SHOWN
        if more > 0:
            lines.append(f"and {more} more problem{'s' if more != 1 else ''}")
        return lines


class StateError(CloudcastError):
    """The state dir is unreadable, locked, or inconsistent."""


class UnsafeValueError(CloudcastError):
    """A value would change the shape of what it is written into (a config line, a command, a
    Terraform expression), so it is refused at that sink, whatever validation let through."""


class PlanError(CloudcastError):
    """The network cannot be planned from this spec and state."""


class TerraformError(CloudcastError):
    """Terraform failed or is missing."""


class InventoryError(CloudcastError):
    """Terraform outputs and static hosts do not make a consistent host list."""


class BootstrapError(CloudcastError):
    """One or more hosts could not be configured."""


class HostKeyError(BootstrapError):
    """A host presented an SSH host key other than the one recorded."""


class RoutesError(CloudcastError):
    """Route tables could not be programmed."""


class VerifyError(CloudcastError):
    """Some pairs of nodes cannot reach each other over the overlay."""


class LabError(CloudcastError):
    """The local lab could not be built, inspected or torn down."""


class PreflightError(CloudcastError):
    """A provider check before Terraform runs failed."""
