"""The read-only commands over an applied network: verify, status, output."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cloudcast.inventory import Inventory
from cloudcast.inventory.formats import host_records, render_inventory
from cloudcast.pipeline.context import Context
from cloudcast.pipeline.hosts import inventory
from cloudcast.plan.model import NetworkPlan
from cloudcast.spec.files import expand_user
from cloudcast.verify import CONNECT_BUDGET, StatusResult, VerifyResult, explain_failures, status, verify


@dataclass
class Checked:
    """One `verify` run: the matrix, and (for `--metrics`) the live tunnels it was probed over."""

    plan: NetworkPlan
    result: VerifyResult
    live: StatusResult | None = None


def live_hosts(ctx: Context) -> tuple[NetworkPlan, Inventory]:
    plan, _ = ctx.plan()
    return plan, inventory(ctx, plan, ctx.terraform())


def run_verify(ctx: Context, *, with_status: bool = False) -> Checked:
    """Probe every ordered pair; explain the failed ones; with `with_status`, read every tunnel too."""
    plan, inv = live_hosts(ctx)
    fleet = ctx.fleet(ctx.ssh(CONNECT_BUDGET, strict=False), reporter=ctx.reporter)
    with fleet.pooled() as pooled:
        result = verify(plan, inv, pooled)
        explain_failures(result, plan, inv, ctx.workdir, pooled)
        live = status(plan, inv, ctx.workdir, pooled) if with_status else None
    return Checked(plan, result, live)


def run_status(ctx: Context) -> StatusResult:
    plan, inv = live_hosts(ctx)
    return status(plan, inv, ctx.workdir, ctx.fleet(ctx.ssh(CONNECT_BUDGET, strict=False)))


def known_hosts_files(ctx: Context) -> list[Path]:
    """Where the hosts' keys are: the spec's `ssh.known_hosts` (strict) and the work dir's."""
    files = []
    if ctx.spec.ssh.known_hosts:
        files.append(expand_user(ctx.spec.ssh.known_hosts, dict(ctx.environ)).resolve())
    files.append(ctx.workdir.known_hosts.resolve())
    return files


def output(ctx: Context, fmt: str) -> str:
    """The inventory as `fmt` (json, hosts, ssh-config, ansible)."""
    plan, inv = live_hosts(ctx)
    return render_inventory(plan, inv, fmt, known_hosts=known_hosts_files(ctx))


def output_rows(ctx: Context) -> list[dict[str, object]]:
    """The inventory as records (`output --json`)."""
    plan, inv = live_hosts(ctx)
    return host_records(plan, inv)
