"""Subcommands that change or inspect hosts: apply, destroy, verify, status, output."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cloudcast.cli.env import Environment
from cloudcast.cli.options import add_common, add_lab_machine, add_preflight, context
from cloudcast.errors import CloudcastError, ExitStatus


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser(
        "apply",
        help="build the network: Terraform, SSH bootstrap, routes, verification",
        description="Plan, ask for confirmation, run Terraform, configure every node over SSH "
        "(WireGuard keys made on the hosts, configs, names, firewall), then probe every pair.",
        epilog="examples:\n"
        "  cloudcast apply examples/lab.json --auto-approve\n"
        "  cloudcast plan spec.json -out net.plan && cloudcast apply net.plan\n"
        "  cloudcast apply examples/fakevpc.json --lab      rehearse a cloud spec on lab hosts\n"
        "Without a terminal (or with CI set) apply never prompts: pass --auto-approve.",
        formatter_class=fmt,
    )
    p.add_argument("spec", metavar="SPEC|PLANFILE", help="a spec, or a plan saved by `plan -out`")
    p.add_argument("--auto-approve", action="store_true", help="do not ask for confirmation")
    p.add_argument(
        "--lab", action="store_true", help="rehearse: run every site as lab hosts of the same shape"
    )
    add_lab_machine(p)
    p.add_argument("--skip-bootstrap", action="store_true", help="infrastructure and routes only; no SSH")
    p.add_argument("--skip-verify", action="store_true", help="do not probe pairs at the end")
    p.add_argument(
        "--replace-routes",
        action="store_true",
        help="take over AWS routes for the same CIDRs that cloudcast did not create",
    )
    p.add_argument("--json", action="store_true", help="JSON event lines on stdout, for CI")
    add_preflight(p)
    add_common(p)
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser(
        "destroy",
        help="remove cloudcast from static hosts and destroy what Terraform made",
        description="Removes the tunnel interface, files, names and firewall table from static hosts, "
        "destroys every Terraform resource, and forgets the state so a later apply starts clean.",
    )
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--auto-approve", action="store_true", help="do not ask for confirmation")
    p.add_argument("--lab", action="store_true", help="destroy the rehearsal made by `apply --lab`")
    add_lab_machine(p)
    p.add_argument("--json", action="store_true", help="JSON event lines on stdout")
    add_common(p)
    p.set_defaults(func=cmd_destroy)

    inspect = [
        (
            "verify",
            cmd_verify,
            "probe every pair of nodes over the overlay",
            "From every node, ping every other node (its overlay address; members of gateway sites at "
            "their LAN address), retrying a few seconds for handshakes, with one don't-fragment probe "
            "at the planned MTU. Prints the NxN matrix. Exit status: 0 every pair passes, 1 otherwise.",
        ),
        (
            "status",
            cmd_status,
            "live per-peer state: endpoint, latest handshake, transfer",
            "Like `wg show` for the whole network at once: per node and peer, the endpoint, the age of "
            "the latest handshake and bytes each way (IPsec: SAs and their age); stale peers are flagged.",
        ),
        (
            "output",
            cmd_output,
            "print the inventory as JSON, /etc/hosts lines, an ssh config or an Ansible inventory",
            "Print the nodes of an applied network in a format other tools read.",
        ),
    ]
    for name, func, short, long in inspect:
        p = sub.add_parser(name, help=short, description=long)
        p.add_argument("spec", metavar="SPEC")
        p.add_argument("--lab", action="store_true", help="the rehearsal made by `apply --lab`")
        add_lab_machine(p)
        if name == "output":
            p.add_argument("--format", choices=("json", "hosts", "ssh-config", "ansible"), default="json")
        else:
            p.add_argument("--json", action="store_true", help="machine-readable output")
        add_common(p)
        p.set_defaults(func=func)


def _confirm(env: Environment, auto: bool, question: str) -> bool:
    if auto:
        return True
    if not env.interactive:
        raise CloudcastError(
            "confirmation needed, and there is no terminal to ask (or CI is set)",
            hint="review with `cloudcast plan`, then pass --auto-approve",
        )
    from rich.prompt import Confirm

    return Confirm.ask(question, console=env.err, default=False)


def cmd_apply(args: argparse.Namespace, env: Environment) -> ExitStatus:
    from cloudcast.cli.render import print_plan
    from cloudcast.pipeline.apply import apply
    from cloudcast.pipeline.plan import is_planfile, read_planfile

    digest, saved_tfplan = None, None
    spec_arg = Path(args.spec)
    if is_planfile(spec_arg):
        saved = read_planfile(spec_arg)
        args.spec, digest = saved["spec_path"], saved["plan_digest"]
        saved_tfplan = Path(saved["tfplan"])
        args.workdir = Path(saved["workdir"])
        args.auto_approve = True  # a saved plan was reviewed when it was made, as with terraform
    ctx = context(args, env)

    def confirm(planned: object) -> bool:
        from cloudcast.pipeline.plan import PlanResult

        assert isinstance(planned, PlanResult)
        if not args.json:
            print_plan(env.err, planned.summary)
        return _confirm(env, args.auto_approve, "Apply these changes?")

    result = apply(
        ctx,
        confirm=confirm,
        skip_bootstrap=args.skip_bootstrap,
        skip_verify=args.skip_verify,
        replace_routes=args.replace_routes,
        preflight_checks=not args.skip_preflight,
        expected_digest=digest,
        saved_tfplan=saved_tfplan,
    )
    if result.verify is not None:
        if args.json:
            env.out.print(
                json.dumps({"type": "verify", **result.verify.to_dict()}), markup=False, soft_wrap=True
            )
        else:
            env.out.print(result.verify.render_matrix(), markup=False, highlight=False)
    if not args.json:
        env.out.print(f"Apply complete: {result.plan.summary.plan.name} is up.", highlight=False)
    return ExitStatus.OK


def cmd_destroy(args: argparse.Namespace, env: Environment) -> ExitStatus:
    from cloudcast.pipeline.apply import destroy

    ctx = context(args, env)
    notes = destroy(ctx, confirm=lambda: _confirm(env, args.auto_approve, f"Destroy {ctx.spec.name}?"))
    for note in notes:
        env.err.print(note, highlight=False)
    env.out.print(f"Destroy complete: {ctx.spec.name} is gone.", highlight=False)
    return ExitStatus.OK


def _live(args: argparse.Namespace, env: Environment):  # type: ignore[no-untyped-def]
    from cloudcast.pipeline.hosts import inventory

    ctx = context(args, env)
    plan, _ = ctx.plan()
    tf = ctx.terraform()
    return ctx, plan, inventory(ctx, plan, tf)


def cmd_verify(args: argparse.Namespace, env: Environment) -> ExitStatus:
    from cloudcast.ssh import Fleet
    from cloudcast.verify import CONNECT_BUDGET, explain_failures, verify

    ctx, plan, inv = _live(args, env)
    fleet = Fleet(ctx.ssh(CONNECT_BUDGET, strict=False), reporter=ctx.reporter)
    result = verify(plan, inv, fleet)
    explain_failures(result, plan, inv, ctx.workdir, fleet)
    if args.json:
        env.out.print(json.dumps({"type": "verify", **result.to_dict()}), markup=False, soft_wrap=True)
    else:
        env.out.print(result.render_matrix(), markup=False, highlight=False)
    return ExitStatus.ERROR if result.failed_pairs else ExitStatus.OK


def cmd_status(args: argparse.Namespace, env: Environment) -> ExitStatus:
    from cloudcast.ssh import Fleet
    from cloudcast.verify import CONNECT_BUDGET, status

    ctx, plan, inv = _live(args, env)
    result = status(plan, inv, ctx.workdir, Fleet(ctx.ssh(CONNECT_BUDGET, strict=False)))
    if args.json:
        env.out.print(json.dumps(result.to_dict()), markup=False, soft_wrap=True)
    else:
        env.out.print(result.render(), markup=False, highlight=False)
    return ExitStatus.OK


def cmd_output(args: argparse.Namespace, env: Environment) -> ExitStatus:
    from cloudcast.inventory.formats import render_inventory

    _, plan, inv = _live(args, env)
    env.out.file.write(render_inventory(plan, inv, args.format))
    return ExitStatus.OK
