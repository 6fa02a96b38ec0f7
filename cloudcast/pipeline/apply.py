"""`cloudcast apply` and `destroy`: the only module that knows the order of the stages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cloudcast.bootstrap import BootstrapResult, bootstrap, teardown
from cloudcast.errors import BootstrapError, CloudcastError, RoutesError, VerifyError
from cloudcast.inventory import Inventory
from cloudcast.pipeline.context import Context, aws_sites
from cloudcast.pipeline.hosts import inventory
from cloudcast.pipeline.plan import PlanResult, run_plan
from cloudcast.pipeline.tfevents import terraform_sink
from cloudcast.plan import build_plan
from cloudcast.plan.model import NetworkPlan
from cloudcast.providers.aws import aws_endpoint
from cloudcast.routes.aws import RoutesResult, program, routed_sites
from cloudcast.spec.models import Provider
from cloudcast.ssh import Fleet, KnownHosts, PerHost, known_hosts_name
from cloudcast.state import (
    Secrets,
    State,
    ensure_psks,
    forget_state,
    load_secrets,
    locked,
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
) -> ApplyResult:
    """Plan, confirm, Terraform apply, inventory, bootstrap, verify. Raises on any failed host.

    `expected_digest` and `saved_tfplan` come from a plan file: the network must still plan to
    that digest, and Terraform applies exactly the saved plan.
    """
    rep = ctx.reporter
    with locked(ctx.workdir):
        planned = run_plan(ctx, preflight_checks=preflight_checks, saved_tfplan=saved_tfplan)
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
        if plan.ipsec_auth == "certificates":
            from cloudcast.bootstrap.pki import ensure_ca

            if ensure_ca(plan.name, secrets, state):
                rep.event("", "bootstrap", "new IPsec certificate authority")
                save_state(ctx.workdir, state)
        save_secrets(ctx.workdir, secrets)
        if created and plan.ipsec_auth != "certificates":
            rep.event("", "bootstrap", f"{created} new preshared keys")
        result.bootstrap, result.verify = _converge(ctx, plan, inv, state, secrets, rebuilt, skip_verify)
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
) -> tuple[BootstrapResult, VerifyResult | None]:
    """Bootstrap every host, then verify, over one SSH connection per host."""
    rep = ctx.reporter
    # new machines may take a minute to start sshd; known ones that do not answer soon
    # are down, and waiting longer for them only delays everyone's result
    new, known = ctx.ssh(NEW_HOST_WAIT), ctx.ssh(KNOWN_HOST_WAIT)
    ssh = Fleet(PerHost(lambda host: new if host.name in rebuilt else known), reporter=rep)
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
        )
        state.public_keys.update(boot.public_keys)
        if not boot.failed:
            state.applied = {"plan": plan.to_dict(), "digest": plan.digest()}
        save_state(ctx.workdir, state)
        if not boot.changed and not boot.failed:
            rep.event("", "bootstrap", "every host already up to date; nothing changed")
        if not skip_verify:
            live = boot.plan or plan
            checked = verify(live, inv, fleet, down=boot.down)
            explain_failures(
                checked, live, inv, ctx.workdir, fleet, public_keys=state.public_keys, down=boot.down
            )
    return boot, checked


def _raise_failures(result: ApplyResult) -> None:
    """Failed hosts, route conflicts, then unreachable pairs; the matrix is shown with each."""
    matrix = result.verify.render_matrix() if result.verify is not None else ""
    boot = result.bootstrap
    if boot is not None and boot.failed:
        names = ", ".join(f"{h.name} ({h.error})" for h in boot.failed)
        fixes = [f"{h.name}: {h.hint}" for h in boot.failed if h.hint]
        raise BootstrapError(
            f"{len(boot.failed)} of {len(boot.hosts)} hosts failed: {names}",
            hint="; ".join(fixes)
            or "the other hosts are configured; fix the named hosts and run apply again",
            details=matrix,
        )
    _raise_route_conflicts(result.routes)
    if result.verify is not None and result.verify.failed_pairs:
        raise VerifyError(
            f"{len(result.verify.failed_pairs)} pairs cannot reach each other: "
            + ", ".join(f"{a}->{b}" for a, b in result.verify.failed_pairs[:10]),
            details=matrix,
        )


def destroy(ctx: Context, *, confirm: Callable[[], bool]) -> list[str]:
    """Remove cloudcast from static hosts, destroy what Terraform made, forget the state."""
    rep = ctx.reporter
    notes: list[str] = []
    with locked(ctx.workdir):
        if not confirm():
            raise Declined("destroy cancelled; nothing was changed")
        plan, state = ctx.plan()
        ctx.compile(plan, state=state)
        tf = ctx.terraform(terraform_sink(rep))
        tf.init()
        static = [s for s in ctx.spec.sites if s.provider is Provider.STATIC]
        if static:
            inv = inventory(ctx, plan, tf)
            keep = {n.name for s in static for n in s.nodes}
            boot = teardown(plan, inv, Fleet(ctx.ssh(), reporter=rep), only=keep)
            if boot.failed:
                names = ", ".join(f"{h.name} ({h.error})" for h in boot.failed)
                raise BootstrapError(
                    f"could not clean static hosts: {names}", hint="fix them and run destroy again"
                )
            notes.append(f"cleaned {len(keep)} static hosts")
        rep.event("", "terraform", "destroy")
        tf.destroy()
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
