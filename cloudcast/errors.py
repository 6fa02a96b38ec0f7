"""One root exception, a subclass per pipeline stage, and the process exit codes."""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """Process exit codes, following Terraform's `-detailed-exitcode` habit."""

    OK = 0
    ERROR = 1
    CHANGES = 2  # `plan`: the plan has changes
    INTERRUPTED = 130


class CloudcastError(Exception):
    """Root of every error cloudcast reports to the user as one line."""

    exit_status: ExitStatus = ExitStatus.ERROR

    def __init__(self, message: str, *, hint: str | None = None, details: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details  # printed before the one-line error (e.g. the verify matrix)


class SpecError(CloudcastError):
    """The spec is malformed or inconsistent; carries one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        count = len(problems)
        super().__init__(f"the spec has {count} problem{'s' if count != 1 else ''}")


class StateError(CloudcastError):
    """The state dir is unreadable, locked, or inconsistent."""


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
