"""`cloudcast apply` and `destroy`: the only module that knows the order of the stages."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudcast.bootstrap import BootstrapResult, bootstrap, teardown
from cloudcast.errors import BootstrapError, CloudcastError, RoutesError, VerifyError
from cloudcast.inventory import Inventory
from cloudcast.pipeline.context import Context, aws_sites
from cloudcast.pipeline.hosts import inventory
from cloudcast.pipeline.plan import TARGET_WARNING, PlanResult, new_tfplan, run_plan
from cloudcast.pipeline.tfevents import terraform_sink
from cloudcast.plan import build_plan
from cloudcast.plan.model import NetworkPlan
from cloudcast.providers.aws import aws_endpoint
from cloudcast.routes.aws import RoutesResult, program, routed_sites
from cloudcast.spec.models import Provider
from cloudcast.ssh import KnownHosts, PerHost, known_hosts_name
from cloudcast.state import (
    Secrets,
    State,
    ensure_psks,
    forget_state,
    load_secrets,
    save_secrets,
    save_state,
)
from cloudcast.terraform.views import PlanView
from cloudcast.verify import VerifyResult, explain_failures, verify

Confirm = Callable[[PlanResult], bool]


@dataclass
class ApplyResult:
    plan: PlanResult
    bootstrap: BootstrapResult | None = None
    verify: VerifyResult | None = None
    routes: RoutesResult | None = None


class Declined(CloudcastError):
    """The person answered no at the confirmation prompt."""


def apply(
    ctx: Context,
    *,
    confirm: Confirm,
    skip_bootstrap: bool = False,
    skip_verify: bool = False,
    replace_routes: bool = False,
    preflight_checks: bool = True,
    expected_digest: str | None = None,
    saved_tfplan: Path | None = None,
    targets: Sequence[str] = (),
) -> ApplyResult:
    """Plan, confirm, Terraform apply, inventory, bootstrap, verify. Raises on any failed host.

    `expected_digest` and `saved_tfplan` come from a plan file: the network must still plan to
    that digest, and Terraform applies exactly the saved plan. Otherwise Terraform applies the
    plan this run made and showed (a file of its own, removed at the end). `targets` (`-target`)
    limits Terraform and the bootstrap to those nodes and sites; verify is left to a later
    `cloudcast verify`, since the other hosts were not brought up to date.
    """
    with ctx.locked():
        planned = run_plan(ctx, preflight_checks=preflight_checks, saved_tfplan=saved_tfplan, targets=targets)
        try:
            return _apply_planned(
                ctx, planned, confirm, skip_bootstrap, skip_verify, replace_routes, expected_digest
            )
        finally:
            if saved_tfplan is None:
                planned.tfplan.unlink(missing_ok=True)


def _apply_planned(
    ctx: Context,
    planned: PlanResult,
    confirm: Confirm,
    skip_bootstrap: bool,
    skip_verify: bool,
    replace_routes: bool,
    expected_digest: str | None,
) -> ApplyResult:
    rep = ctx.reporter
    plan, state = planned.summary.plan, planned.state
    if expected_digest and expected_digest != plan.digest():
        raise CloudcastError(
            "the saved plan is stale: the spec or state changed since it was made",
            hint="run `cloudcast plan -out FILE` again",
        )
    if planned.summary.has_changes and not confirm(planned):
        raise Declined("apply cancelled; nothing was changed")
    tf = ctx.terraform(terraform_sink(rep))
    add, change, destroy = planned.summary.counts()
    current = aws_sites(plan)
    if add or change or destroy:
        rep.event("", "terraform", f"apply: {add} to add, {change} to change, {destroy} to destroy")
        # every AWS site that may own resources is remembered before Terraform makes them
        state.aws_sites = {**state.aws_sites, **current}
        save_state(ctx.workdir, state)
        tf.apply(planned.tfplan)
        if planned.targets:
            rep.event("", "terraform", f"warning: applied changes may be incomplete: {TARGET_WARNING}")
    # Terraform has destroyed what removed sites had: their provider blocks can go
    state.aws_sites = current
    # allocations are recorded as soon as Terraform used them, whatever happens next
    save_state(ctx.workdir, state)
    inv = inventory(ctx, plan, tf)
    rebuilt = PlanView(planned.tfplan_doc).created_instances(INSTANCE_TYPES)
    _forget_host_keys(ctx, rebuilt, inv)
    result = ApplyResult(plan=planned)
    result.routes = _program_routes(ctx, plan, inv, state, replace_routes)
    save_state(ctx.workdir, state)
    if skip_bootstrap:
        rep.event("", "bootstrap", "skipped (--skip-bootstrap)")
        _raise_route_conflicts(result.routes)
        return result
    secrets, created = ensure_psks(plan, load_secrets(ctx.workdir))
    new_ca = False
    if plan.ipsec_auth == "certificates":
        from cloudcast.bootstrap.pki import ensure_ca

        new_ca = ensure_ca(plan.name, secrets, state)
    # the secrets are settled (created, or the version read replaced) before the state names
    # a new CA and before any host gets a key: a run that lost that race stops here
    save_secrets(ctx.workdir, secrets)
    if new_ca:
        rep.event("", "bootstrap", "new IPsec certificate authority")
        save_state(ctx.workdir, state)
    if created and plan.ipsec_auth != "certificates":
        rep.event("", "bootstrap", f"{created} new preshared keys")
    only = planned.targets or None
    if only is not None:
        rep.event("", "bootstrap", f"-target: only {', '.join(only)}")
        if not skip_verify:
            rep.event("", "verify", "skipped with -target: run `cloudcast verify` once every host is applied")
    result.bootstrap, result.verify = _converge(
        ctx, plan, inv, state, secrets, rebuilt, skip_verify or only is not None, only
    )
    live = result.bootstrap.plan
    if live is not None and live.digest() != plan.digest() and routed_sites(live):
        # a gateway was found down: the route tables point at the standby that took over
        rep.event("", "routes", "re-pointing the route tables at the gateways that took over")
        result.routes = _program_routes(ctx, live, inv, state, replace_routes)
        save_state(ctx.workdir, state)
    _raise_failures(result)
    return result


def _converge(
    ctx: Context,
    plan: NetworkPlan,
    inv: Inventory,
    state: State,
    secrets: Secrets,
    rebuilt: set[str],
    skip_verify: bool,
    only: tuple[str, ...] | None = None,
) -> tuple[BootstrapResult, VerifyResult | None]:
    """Bootstrap every host (or those in `only`), then verify, over one SSH connection per host."""
    rep = ctx.reporter
    # new machines may take a minute to start sshd; known ones that do not answer soon
    # are down, and waiting longer for them only delays everyone's result
    new, known = ctx.ssh(NEW_HOST_WAIT), ctx.ssh(KNOWN_HOST_WAIT)
    ssh = ctx.fleet(PerHost(lambda host: new if host.name in rebuilt else known), reporter=rep)
    checked: VerifyResult | None = None
    with ssh.pooled() as fleet:
        # a gateway or hub found down is planned around: its standby takes over
        allocations = state.allocations
        boot = bootstrap(
            plan,
            inv,
            secrets,
            state,
            fleet,
            replan=lambda down: build_plan(ctx.spec, allocations, down=down)[0],
            only=only,
        )
        state.public_keys.update(boot.public_keys)
        # a targeted run leaves the other hosts as they were: the next plan still shows them
        if not boot.failed and only is None:
            state.applied = {"plan": plan.to_dict(), "digest": plan.digest()}
        save_state(ctx.workdir, state)
        if not boot.changed and not boot.failed:
            which = "every targeted host" if only is not None else "every host"
            rep.event("", "bootstrap", f"{which} already up to date; nothing changed")
        if not skip_verify:
            live = boot.plan or plan
            checked = verify(live, inv, fleet, down=boot.down)
            explain_failures(
                checked, live, inv, ctx.workdir, fleet, public_keys=state.public_keys, down=boot.down
            )
    return boot, checked


def _raise_failures(result: ApplyResult) -> None:
    """Failed hosts, route conflicts, then unreachable pairs (or a planned MTU that does not fit);
    the matrix is shown with each (and travels as a `verify` record for `--json`)."""
    matrix = result.verify.render_matrix() if result.verify is not None else ""
    records: list[tuple[str, dict[str, Any]]] = []
    if result.verify is not None:
        records.append(("verify", result.verify.to_dict()))
    boot = result.bootstrap
    if boot is not None and boot.failed:
        names = ", ".join(f"{h.name} ({h.error})" for h in boot.failed)
        fixes = [f"{h.name}: {h.hint}" for h in boot.failed if h.hint]
        raise BootstrapError(
            f"{len(boot.failed)} of {len(boot.hosts)} hosts failed: {names}",
            hint="; ".join(fixes)
            or "the other hosts are configured; fix the named hosts and run apply again",
            details=matrix,
            records=records,
        )
    _raise_route_conflicts(result.routes)
    if result.verify is not None and not result.verify.ok:
        raise verify_error(result.verify, matrix, records)


def verify_error(
    checked: VerifyResult, matrix: str, records: Sequence[tuple[str, dict[str, Any]]] = ()
) -> VerifyError:
    """Unreachable pairs, else pairs whose don't-fragment probe at the planned MTU was lost."""
    if checked.failed_pairs:
        return VerifyError(
            f"{len(checked.failed_pairs)} pairs cannot reach each other: "
            + ", ".join(f"{a}->{b}" for a, b in checked.failed_pairs[:10]),
            details=matrix,
            records=records,
        )
    bad = checked.mtu_failed_pairs
    if not bad and checked.flows is not None and checked.flows.violations:
        flows = checked.flows.violations
        return VerifyError(
            f"{len(flows)} flows break the access policy: "
            + ", ".join(f"{c.flow} ({c.verdict.value})" for c in flows[:10]),
            details=matrix,
            records=records,
        )
    return VerifyError(
        f"MTU {checked.mtu} does not fit on {len(bad)} pairs (don't-fragment probe lost): "
        + ", ".join(f"{a}->{b}" for a, b in bad[:10]),
        hint="set network.mtu lower in the spec (every hop's MTU minus the tunnel's overhead)",
        details=matrix,
        records=records,
    )


@dataclass
class DestroyPreview:
    """What `destroy` will remove, shown before it asks: Terraform's resources, the machines
    they are, and the static hosts cloudcast is removed from over SSH."""

    network: str
    resources: list[str] = field(default_factory=list)  # Terraform addresses
    machines: list[str] = field(default_factory=list)  # nodes whose machine Terraform destroys
    cleaned: list[str] = field(default_factory=list)  # static nodes cleaned over SSH

    @property
    def empty(self) -> bool:
        return not (self.resources or self.cleaned)

    def to_dict(self) -> dict[str, Any]:
        return {
            "network": self.network,
            "resources": list(self.resources),
            "machines": list(self.machines),
            "cleaned": list(self.cleaned),
        }


def destroy_preview(plan: NetworkPlan, tf_plan: dict[str, Any], static: set[str]) -> DestroyPreview:
    """From a `plan -destroy` document: every resource it deletes, and the nodes it takes down."""
    resources, machines = [], set()
    for rc in PlanView(tf_plan).changes:
        if "delete" not in rc.get("change", {}).get("actions", []):
            continue
        resources.append(str(rc.get("address", "")))
        if rc.get("type") in INSTANCE_TYPES and isinstance(rc.get("index"), str):
            machines.add(str(rc["index"]))
    order = [n.name for n in plan.nodes]
    return DestroyPreview(
        network=plan.name,
        resources=sorted(resources),
        machines=[n for n in order if n in machines] + sorted(machines - set(order)),
        cleaned=[n for n in order if n in static],
    )


def destroy(ctx: Context, *, confirm: Callable[[DestroyPreview], bool]) -> list[str]:
    """Show what goes, ask, remove cloudcast from static hosts, destroy what Terraform made
    (exactly the destroy plan shown), forget the state."""
    rep = ctx.reporter
    notes: list[str] = []
    with ctx.locked():
        plan, state = ctx.plan()
        ctx.compile(plan, state=state)
        tf = ctx.terraform(terraform_sink(rep))
        tf.init()
        static = [s for s in ctx.spec.sites if s.provider is Provider.STATIC]
        keep = {n.name for s in static for n in s.nodes}
        tfplan = new_tfplan(ctx, "destroy")
        try:
            rep.event("", "terraform", "plan -destroy")
            changed = tf.plan(tfplan, destroy=True)
            preview = destroy_preview(plan, tf.show(tfplan) if changed else {}, keep)
            if not confirm(preview):
                raise Declined("destroy cancelled; nothing was changed")
            if static:
                inv = inventory(ctx, plan, tf)
                boot = teardown(plan, inv, ctx.fleet(ctx.ssh(), reporter=rep), only=keep)
                if boot.failed:
                    names = ", ".join(f"{h.name} ({h.error})" for h in boot.failed)
                    raise BootstrapError(
                        f"could not clean static hosts: {names}", hint="fix them and run destroy again"
                    )
                notes.append(f"cleaned {len(keep)} static hosts")
            if changed:
                rep.event("", "terraform", f"destroy: {len(preview.resources)} resources")
                tf.apply(tfplan)
        finally:
            tfplan.unlink(missing_ok=True)
        forget_state(ctx.workdir)
        notes.append("state, secrets and recorded host keys removed")
    return notes


def _program_routes(
    ctx: Context, plan: NetworkPlan, inv: Inventory, state: State, replace: bool
) -> RoutesResult | None:
    """AWS route tables for gateways/hub sites; the routes cloudcast owns are kept in state."""
    if not routed_sites(plan) and not state.routes:
        return None
    regions = {s.name: s.region for s in plan.sites if s.provider == "aws" and s.region}
    res = program(
        plan,
        inv,
        state.routes,
        regions=regions,
        endpoint=aws_endpoint(ctx.spec, dict(ctx.environ)),
        environ=ctx.environ,
        replace=replace,
        reporter=ctx.reporter,
    )
    state.routes = [r.to_dict() for r in res.recorded]
    return res


def _raise_route_conflicts(routes: RoutesResult | None) -> None:
    if routes is not None and routes.conflicts:
        raise RoutesError(
            f"{len(routes.conflicts)} route conflicts: " + "; ".join(routes.conflicts),
            hint="remove those routes, or pass --replace-routes to take them over",
        )


NEW_HOST_WAIT = 90.0
KNOWN_HOST_WAIT = 15.0
INSTANCE_TYPES = frozenset({"terraform_data", "aws_instance", "linode_instance", "vultr_instance"})


def _forget_host_keys(ctx: Context, rebuilt: set[str], inv: Inventory) -> None:
    """A machine Terraform just created has a new host key, maybe at a reused address."""
    names = {known_hosts_name(h.ssh_host, h.ssh_port) for h in inv.hosts if h.name in rebuilt and h.ssh_host}
    if names and KnownHosts(ctx.workdir.known_hosts).forget(names):
        ctx.reporter.event("", "bootstrap", f"forgot old host keys of new hosts: {', '.join(sorted(names))}")
