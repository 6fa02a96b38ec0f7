"""`cloudcast plan`: validate, allocate, compile, `terraform init` + `plan`, summarize."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudcast.errors import InventoryError, RoutesError, StateError
from cloudcast.pipeline.context import Context
from cloudcast.pipeline.summary import PlanSummary, summarize
from cloudcast.pipeline.tfevents import terraform_sink
from cloudcast.plan.model import NetworkPlan
from cloudcast.providers import provider_info
from cloudcast.routes.aws import Route, desired_routes, routed_sites
from cloudcast.routes.aws import describe as routes_describe
from cloudcast.state import State
from cloudcast.terraform.runner import Terraform

PLANFILE_VERSION = 1


@dataclass
class PlanResult:
    summary: PlanSummary
    state: State
    tfplan: Path
    tfplan_doc: dict[str, Any]


def run_plan(
    ctx: Context, *, destroy: bool = False, preflight_checks: bool = True, saved_tfplan: Path | None = None
) -> PlanResult:
    """Plan the whole network; nothing is created or changed anywhere.

    With `saved_tfplan` (from `plan -out`), Terraform does not plan again: that plan is shown
    and later applied as it is (Terraform refuses it if its state moved on since).
    """
    if preflight_checks and any(provider_info(s.provider).cloud for s in ctx.spec.sites):
        from cloudcast.preflight import preflight

        report = preflight(ctx.spec, ctx.environ)
        oks = sum(1 for c in report.checks if c.status.value == "ok")
        ctx.reporter.event("", "preflight", f"{oks} provider checks passed")
        for warning in report.warnings:
            ctx.reporter.event("", "preflight", f"warning: {warning}")
    plan, state = ctx.plan()
    ctx.reporter.event("", "plan", f"{len(plan.nodes)} nodes, {len(plan.pairs())} peered pairs")
    ctx.compile(plan, state=state)
    tf = ctx.terraform(terraform_sink(ctx.reporter))
    ctx.reporter.event("", "terraform", "init")
    tf.init()
    if saved_tfplan is not None:
        if not saved_tfplan.is_file():
            raise StateError(
                f"the saved Terraform plan {saved_tfplan} is missing",
                hint="run `cloudcast plan -out FILE` again",
            )
        tfplan = saved_tfplan
        ctx.reporter.event("", "terraform", f"using the saved plan {saved_tfplan}")
        doc = tf.show(tfplan)
    else:
        tfplan = ctx.workdir.terraform / "cloudcast.tfplan"
        ctx.reporter.event("", "terraform", "plan")
        changed = tf.plan(tfplan, destroy=destroy)
        # `show -json` costs a Terraform start-up; a plan without changes has nothing to show
        doc = tf.show(tfplan) if changed else {}
    summary = summarize(plan, doc, state.applied)
    summary.routes = route_changes(ctx, plan, state, tf)
    return PlanResult(summary=summary, state=state, tfplan=tfplan, tfplan_doc=doc)


def route_changes(ctx: Context, plan: NetworkPlan, state: State, tf: Terraform) -> list[str]:
    """Routes `apply` would add or remove; symbolic where the route tables do not exist yet."""
    if not routed_sites(plan) and not state.routes:
        return []
    from cloudcast.pipeline.hosts import inventory

    try:
        want, _ = desired_routes(plan, inventory(ctx, plan, tf))
    except (InventoryError, RoutesError, KeyError):
        return routes_describe(plan)
    owned = {Route(**r).key(): Route(**r) for r in state.routes}
    lines = [f"+ {r.site} {r.table}: {r.cidr} -> {r.eni}" for r in want if r.key() not in owned]
    wanted = {r.key() for r in want}
    lines += [f"- {r.site} {r.table}: {r.cidr}" for k, r in sorted(owned.items()) if k not in wanted]
    return lines


def write_planfile(path: Path, ctx: Context, result: PlanResult) -> None:
    """Save a plan for `cloudcast apply PLANFILE`: the spec, the network plan's digest, and a copy
    of the Terraform plan beside it (`PLANFILE.tfplan`, mode 0600: Terraform plans can hold
    sensitive values), so a later `plan` cannot replace what was reviewed."""
    tfplan = path.with_name(path.name + ".tfplan")
    with open(result.tfplan, "rb") as src:
        data = src.read()
    fd = os.open(tfplan, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as dst:
        dst.write(data)
    doc = {
        "version": PLANFILE_VERSION,
        "spec_path": str(ctx.spec_path.resolve()),
        "workdir": str(ctx.workdir.root.resolve()),
        "plan_digest": result.summary.plan.digest(),
        "tfplan": str(tfplan.resolve()),
    }
    path.write_text(json.dumps(doc, indent=1) + "\n")


def is_planfile(path: Path) -> bool:
    """True for a file written by `plan -out` (whatever its name), False for a spec."""
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:4096]
    except OSError:
        return False
    return '"plan_digest"' in head and '"tfplan"' in head


def read_planfile(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise StateError(f"{path}: not a cloudcast plan file ({exc})") from None
    if not isinstance(data, dict) or data.get("version") != PLANFILE_VERSION:
        raise StateError(f"{path}: not a cloudcast plan file")
    return data


def plan_matches(plan: NetworkPlan, saved: dict[str, Any]) -> bool:
    return bool(saved.get("plan_digest") == plan.digest())
