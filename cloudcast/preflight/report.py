"""The preflight report: one line per check, and the error raised when any check found a problem."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from cloudcast.errors import PreflightError
from cloudcast.spec.models import Site

REDACTED = "***"


class Status(StrEnum):
    OK = "ok"
    WARNING = "warning"  # worth knowing, does not stop Terraform
    PROBLEM = "problem"  # Terraform would fail (or do the wrong thing): preflight fails
    SKIPPED = "skipped"  # nothing to check, or a check that could not run


@dataclass(frozen=True)
class Check:
    """The outcome of one check; `message` names the site (`sites[1] (linode-fra): ...`) when it has one."""

    status: Status
    message: str
    site: str | None = None

    @property
    def line(self) -> str:
        return f"{self.status.value}: {self.message}"


@dataclass(frozen=True)
class SiteRef:
    """A site and its index in the spec, for messages like `sites[1] (linode-fra): ...`."""

    index: int
    site: Site

    @property
    def name(self) -> str:
        return self.site.name

    @property
    def label(self) -> str:
        return f"sites[{self.index}] ({self.site.name})"


@dataclass
class PreflightReport:
    """Every check preflight ran, in order. Secret values never reach a message."""

    checks: list[Check] = field(default_factory=list)
    _secrets: set[str] = field(default_factory=set, repr=False)

    def add_secret(self, value: str | None) -> None:
        """Remember a token so no message can ever contain it."""
        if value and len(value) >= 4:
            self._secrets.add(value)

    def credential(
        self, environ: Mapping[str, str], variable: str, provider: str, sites: Iterable[SiteRef], what: str
    ) -> str | None:
        """The secret in `variable` (remembered, never printed); unset: a problem, and each site's
        checks reported skipped ("Linode checks skipped (no token)")."""
        value = environ.get(variable, "")
        self.add_secret(value)
        if value:
            return value
        self.problem(f"{provider.lower()}: {variable} is not set")
        for ref in sites:
            self.skipped(f"{provider} checks skipped (no {what})", ref)
        return None

    def _add(self, status: Status, message: str, site: SiteRef | None) -> None:
        for secret in self._secrets:
            message = message.replace(secret, REDACTED)
        text = f"{site.label}: {message}" if site is not None else message
        self.checks.append(Check(status, text, site.name if site is not None else None))

    def ok(self, message: str, site: SiteRef | None = None) -> None:
        self._add(Status.OK, message, site)

    def warning(self, message: str, site: SiteRef | None = None) -> None:
        self._add(Status.WARNING, message, site)

    def problem(self, message: str, site: SiteRef | None = None) -> None:
        self._add(Status.PROBLEM, message, site)

    def skipped(self, message: str, site: SiteRef | None = None) -> None:
        self._add(Status.SKIPPED, message, site)

    def _messages(self, status: Status) -> list[str]:
        return [c.message for c in self.checks if c.status is status]

    @property
    def problems(self) -> list[str]:
        return self._messages(Status.PROBLEM)

    @property
    def warnings(self) -> list[str]:
        return self._messages(Status.WARNING)

    @property
    def passed(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """One `status: message` line per check, for printing."""
        return [c.line for c in self.checks]


class PreflightFailed(PreflightError):
    """Preflight found problems; `problems` holds one line each and `report` every check."""

    def __init__(self, report: PreflightReport) -> None:
        self.report = report
        self.problems = report.problems
        count = len(self.problems)
        summary = f"preflight failed: {count} problem{'s' if count != 1 else ''}"
        super().__init__(
            f"{summary}: {'; '.join(self.problems)}",
            hint="fix the spec or the provider credentials (nothing was created)",
        )
        self.summary = summary


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """`; did you mean 'x'?` for the closest choice (`'x' or 'y'` on a tie), or "" when nothing is close."""
    scored: dict[float, list[str]] = {}
    for choice in sorted(set(choices)):
        matcher = difflib.SequenceMatcher(None, value, choice)
        if matcher.real_quick_ratio() >= 0.6 and matcher.quick_ratio() >= 0.6:
            ratio = matcher.ratio()
            if ratio >= 0.6:
                scored.setdefault(ratio, []).append(choice)
    if not scored:
        return ""
    best = scored[max(scored)][:3]
    return f"; did you mean {' or '.join(repr(c) for c in best)}?"


def nodes_phrase(nodes: list[str]) -> str:
    """`node a` / `nodes a, b`, for saying which nodes a value came from."""
    return f"node{'s' if len(nodes) != 1 else ''} {', '.join(nodes)}"


def group_nodes(site: Site, attr: str, default: str) -> dict[str, list[str]]:
    """Distinct values of a node attribute (`size`, `image`) in spec order, with the nodes using each."""
    groups: dict[str, list[str]] = {}
    for node in site.nodes:
        value = getattr(node, attr) or default
        groups.setdefault(str(value), []).append(node.name)
    return groups


def short_list(values: Iterable[str], limit: int = 8) -> str:
    """`a, b, c` or `a, b, ... (12 in all)` for long lists."""
    items = sorted(values)
    if len(items) <= limit:
        return ", ".join(items) if items else "none"
    return f"{', '.join(items[:limit])}, ... ({len(items)} in all)"
