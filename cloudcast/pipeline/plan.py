"""`cloudcast plan`: validate, allocate, compile, `terraform init` + `plan`, summarize."""

from __future__ import annotations

import difflib
import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudcast.errors import InventoryError, PlanError, RoutesError, StateError
from cloudcast.pipeline.context import Context
from cloudcast.pipeline.summary import PlanSummary, summarize
from cloudcast.pipeline.tfevents import terraform_sink
from cloudcast.plan.model import NetworkPlan
from cloudcast.providers import provider_info
from cloudcast.routes.aws import Route, desired_routes, routed_sites
from cloudcast.routes.aws import describe as routes_describe
from cloudcast.state import State
from cloudcast.state.paths import portable, resolved
from cloudcast.terraform.compile import module_name
from cloudcast.terraform.runner import Terraform

PLANFILE_VERSION = 1

#: Terraform's own words when -target is used (its plan and apply print the same warning)
TARGET_WARNING = (
    "Resource targeting is in effect: the result may not represent all of the changes the spec "
    "asks for. The -target option is not for routine use, and is provided only for exceptional "
    "situations such as recovering from errors or mistakes; run a full `cloudcast plan` afterwards."
)
#: per provider, the resources of a site module made once per node (`for_each` over its nodes)
NODE_RESOURCES: dict[str, tuple[str, ...]] = {
    "aws": (
        "aws_instance.node",
        "aws_eip.node",
        "aws_network_interface_sg_attachment.internal",
        "aws_network_interface_sg_attachment.edge",
    ),
    "linode": ("linode_instance.node",),
    "vultr": ("vultr_instance.node",),
    "lab": ("terraform_data.node",),
    "static": (),
}


@dataclass
class PlanResult:
    summary: PlanSummary
    state: State
    tfplan: Path
    tfplan_doc: dict[str, Any]
    #: `-target`: the nodes this run is limited to (empty: every node)
    targets: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Targets:
    """`-target NODE|SITE` resolved: the nodes it means, and Terraform's addresses for them."""

    names: tuple[str, ...]  # as given
    nodes: tuple[str, ...]  # every node they cover, in plan order
    addresses: tuple[str, ...]  # Terraform -target addresses (none for static nodes)


def resolve_targets(plan: NetworkPlan, names: Sequence[str]) -> Targets:
    """Node and site names -> the nodes they cover and Terraform -target addresses.

    A site targets its whole module; a node its per-node resources (the instance, its address,
    its firewall attachments): Terraform adds what they depend on (VPC, subnet) by itself.
    """
    sites = {s.name: s for s in plan.sites}
    nodes = {n.name: n for n in plan.nodes}
    covered: set[str] = set()
    addresses: list[str] = []
    for name in dict.fromkeys(names):
        if name in sites:
            site = sites[name]
            covered.update(site.nodes)
            if site.provider != "static":
                addresses.append(f"module.{module_name(site.name)}")
        elif name in nodes:
            node = nodes[name]
            covered.add(node.name)
            module = module_name(node.site)
            kinds = NODE_RESOURCES.get(node.provider, ())
            addresses += [f'module.{module}.{kind}["{node.name}"]' for kind in kinds]
        else:
            close = difflib.get_close_matches(name, [*sites, *nodes], n=1)
            hint = f"did you mean {close[0]!r}?" if close else "name a node or a site of the spec"
            raise PlanError(f"-target={name[:80]}: no node or site of that name", hint=hint)
    ordered = tuple(n.name for n in plan.nodes if n.name in covered)
    return Targets(tuple(dict.fromkeys(names)), ordered, tuple(dict.fromkeys(addresses)))


def new_tfplan(ctx: Context, kind: str = "plan") -> Path:
    """A Terraform plan file of this run only: no other run can overwrite what it shows."""
    return ctx.workdir.terraform / f"cloudcast-{kind}-{os.getpid()}-{secrets.token_hex(4)}.tfplan"


def run_plan(
    ctx: Context,
    *,
    destroy: bool = False,
    preflight_checks: bool = True,
    saved_tfplan: Path | None = None,
    targets: Sequence[str] = (),
) -> PlanResult:
    """Plan the whole network (or only `targets`); nothing is created or changed anywhere.

    With `saved_tfplan` (from `plan -out`), Terraform does not plan again: that plan is shown
    and later applied as it is (Terraform refuses it if its state moved on since). Otherwise
    Terraform plans into a file of this run's own (`PlanResult.tfplan`; the caller removes it).
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
    chosen = resolve_targets(plan, targets) if targets else None
    if chosen is not None:
        ctx.reporter.event("", "plan", f"warning: {TARGET_WARNING}")
        ctx.reporter.event("", "plan", f"-target: only {', '.join(chosen.nodes) or 'no nodes'}")
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
        # empty: a plan of static nodes only, which Terraform had nothing to plan for
        doc = tf.show(tfplan) if saved_tfplan.stat().st_size else {}
    elif chosen is not None and not chosen.addresses:
        # only static nodes: Terraform has nothing of theirs (an empty -target list means "all")
        tfplan = new_tfplan(ctx)
        ctx.reporter.event("", "terraform", "plan skipped: the targets have no Terraform resources")
        doc = {}
    else:
        tfplan = new_tfplan(ctx)
        ctx.reporter.event("", "terraform", "plan")
        changed = tf.plan(tfplan, destroy=destroy, targets=chosen.addresses if chosen else ())
        # `show -json` costs a Terraform start-up; a plan without changes has nothing to show
        doc = tf.show(tfplan) if changed else {}
    summary = summarize(plan, doc, state.applied)
    if chosen is not None:
        summary.hosts = [h for h in summary.hosts if h.node in chosen.nodes]
    summary.routes = route_changes(ctx, plan, state, tf)
    return PlanResult(
        summary=summary,
        state=state,
        tfplan=tfplan,
        tfplan_doc=doc,
        targets=chosen.nodes if chosen is not None else (),
    )


def plan_network(
    ctx: Context,
    *,
    out: Path | None = None,
    preflight_checks: bool = True,
    include_hosts: bool = True,
    targets: Sequence[str] = (),
) -> PlanResult:
    """`cloudcast plan`: under the work dir's lock, plan, and with `out` save it for `apply`.

    The Terraform plan file is this run's own; it is removed once saved (or shown).
    """
    with ctx.locked():
        result = run_plan(ctx, preflight_checks=preflight_checks, targets=targets)
        result.summary.include_hosts = include_hosts
        try:
            if out is not None:
                write_planfile(out, ctx, result)
        finally:
            result.tfplan.unlink(missing_ok=True)
    return result


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
    data = result.tfplan.read_bytes() if result.tfplan.is_file() else b""
    fd = os.open(tfplan, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as dst:
        dst.write(data)
    # paths of the checkout are kept relative to the plan file, so a plan made in one CI job
    # applies from a fresh clone in another directory (the way a CI artifact travels)
    roots = (ctx.spec_path.parent, ctx.workdir.root)
    doc = {
        "version": PLANFILE_VERSION,
        "spec_path": portable(ctx.spec_path, path.parent, roots),
        "workdir": portable(ctx.workdir.root, path.parent, roots),
        "plan_digest": result.summary.plan.digest(),
        "tfplan": tfplan.name,
        "targets": list(result.targets),
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
    base = path.resolve().parent
    for key in ("spec_path", "workdir", "tfplan"):
        if not isinstance(data.get(key), str):
            raise StateError(f"{path}: not a cloudcast plan file (no {key})")
        data[key] = str(resolved(data[key], base))
    return data


def plan_matches(plan: NetworkPlan, saved: dict[str, Any]) -> bool:
    return bool(saved.get("plan_digest") == plan.digest())
