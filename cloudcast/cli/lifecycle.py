"""Subcommands that change or inspect hosts: apply, destroy, verify, status, output."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cloudcast.cli.env import Environment
from cloudcast.cli.jsonout import emit
from cloudcast.cli.options import (
    add_auto_approve,
    add_common,
    add_json,
    add_lab_machine,
    add_preflight,
    add_run_limits,
    context,
)
from cloudcast.errors import CloudcastError, ExitStatus

FMT = argparse.RawDescriptionHelpFormatter


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "apply",
        help="build the network: Terraform, SSH bootstrap, routes, verification",
        description="Plan, ask for confirmation, run Terraform, configure every node over SSH "
        "(WireGuard keys made on the hosts, configs, names, firewall), then probe every pair. "
        "Terraform applies exactly the plan shown (a plan file of this run's own).",
        epilog="examples:\n"
        "  cloudcast apply examples/lab.json -auto-approve\n"
        "  cloudcast plan spec.json -out net.plan && cloudcast apply net.plan\n"
        "  cloudcast apply spec.json -target=db1 -auto-approve   only db1 (exceptional use)\n"
        "  cloudcast apply examples/fakevpc.json --lab      rehearse a cloud spec on lab hosts\n"
        "Without a terminal (or with CI set) apply never prompts: pass -auto-approve.\n"
        "exit status: 0 applied and every pair verified, 1 error (a failed host, pair or MTU probe)",
        formatter_class=FMT,
    )
    p.add_argument("spec", metavar="SPEC|PLANFILE", help="a spec, or a plan saved by `plan -out`")
    add_auto_approve(p)
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
    add_json(p)
    add_run_limits(p, targets=True)
    add_preflight(p)
    add_common(p)
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser(
        "destroy",
        help="remove cloudcast from static hosts and destroy what Terraform made",
        description="Shows the resources, machines and static hosts it will remove, asks, then "
        "removes the tunnel interface, files, names and firewall table from static hosts, destroys "
        "every Terraform resource (exactly the destroy plan shown), and forgets the state so a "
        "later apply starts clean.",
        epilog="example: cloudcast destroy spec.json -auto-approve -lock-timeout=5m",
        formatter_class=FMT,
    )
    p.add_argument("spec", metavar="SPEC")
    add_auto_approve(p)
    p.add_argument("--lab", action="store_true", help="destroy the rehearsal made by `apply --lab`")
    add_lab_machine(p)
    add_json(p)
    add_run_limits(p)
    add_common(p)
    p.set_defaults(func=cmd_destroy)

    p = _inspect_parser(
        sub,
        "verify",
        "probe every pair of nodes over the overlay",
        "From every node, ping every other node (its overlay address; members of gateway sites at "
        "their LAN address), retrying a few seconds for handshakes, with one don't-fragment probe "
        "at the planned MTU. Prints the NxN matrix.",
        "examples:\n"
        "  cloudcast verify spec.json -junit verify.xml      one test case per pair and MTU probe\n"
        "  cloudcast verify spec.json -metrics verify.prom   Prometheus text (node_exporter textfile)\n"
        "exit status: 0 every pair and every MTU probe passed, 1 otherwise",
    )
    p.add_argument(
        "-junit", "--junit", type=Path, metavar="FILE", help="write a JUnit XML report (for CI test tabs)"
    )
    p.add_argument(
        "-metrics",
        "--metrics",
        type=Path,
        metavar="FILE",
        help="write Prometheus text: reachability, RTT, MTU, handshake age, direct or relayed, per pair",
    )
    p.set_defaults(func=cmd_verify)

    p = _inspect_parser(
        sub,
        "status",
        "live per-peer state: endpoint, latest handshake, transfer",
        "Like `wg show` for the whole network at once: per node and peer, the endpoint, the age of "
        "the latest handshake and bytes each way (IPsec: SAs and their age); stale peers are flagged.",
        "exit status: 0 read every node, 1 error; with -detailed-exitcode, 2 when a peer is stale "
        "(no handshake for 3 minutes, or no IKE SA) or a node could not be read",
    )
    p.add_argument(
        "-detailed-exitcode",
        "--detailed-exitcode",
        action="store_true",
        help="exit 2 when a peer is stale or a node is down (0 all fresh, 1 error)",
    )
    p.set_defaults(func=cmd_status)

    p = _inspect_parser(
        sub,
        "output",
        "print the inventory as JSON, /etc/hosts lines, an ssh config or an Ansible inventory",
        "Print the nodes of an applied network in a format other tools read. The ssh config names "
        "the host keys cloudcast recorded (UserKnownHostsFile, StrictHostKeyChecking yes), so "
        "`ssh -F FILE NODE` checks every host key.",
        "examples:\n"
        "  cloudcast output spec.json --format ssh-config > net.ssh && ssh -F net.ssh db1\n"
        "  cloudcast output spec.json -json       one `output` record with every host\n"
        "--format json is the same as -json.",
    )
    p.add_argument("--format", choices=("json", "hosts", "ssh-config", "ansible"), default=None)
    p.set_defaults(func=cmd_output)


def _inspect_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, short: str, long: str, epilog: str
) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=short, description=long, epilog=epilog, formatter_class=FMT)
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--lab", action="store_true", help="the rehearsal made by `apply --lab`")
    add_lab_machine(p)
    add_json(p)
    add_run_limits(p)
    add_common(p)
    return p


def _confirm(env: Environment, auto: bool, question: str) -> bool:
    if auto:
        return True
    if not env.interactive:
        raise CloudcastError(
            "confirmation needed, and there is no terminal to ask (or CI is set)",
            hint="review with `cloudcast plan`, then pass --auto-approve (or Terraform's -auto-approve)",
        )
    from rich.prompt import Confirm

    return Confirm.ask(question, console=env.err, default=False)


def cmd_apply(args: argparse.Namespace, env: Environment) -> ExitStatus:
    from cloudcast.cli.render import print_plan
    from cloudcast.pipeline.apply import apply
    from cloudcast.pipeline.plan import PlanResult, is_planfile, read_planfile

    digest, saved_tfplan = None, None
    spec_arg = Path(args.spec)
    targets: list[str] = list(args.target)
    if is_planfile(spec_arg):
        saved = read_planfile(spec_arg)
        if targets:
            raise CloudcastError(
                "-target cannot change a saved plan", hint="pass -target to `cloudcast plan -out FILE`"
            )
        args.spec, digest = saved["spec_path"], saved["plan_digest"]
        saved_tfplan = Path(saved["tfplan"])
        args.workdir = Path(saved["workdir"])
        targets = list(saved.get("targets") or [])
        args.auto_approve = True  # a saved plan was reviewed when it was made, as with terraform
    ctx = context(args, env)

    def confirm(planned: PlanResult) -> bool:
        if args.json:
            emit(env.out, "plan", {**planned.summary.to_dict(), "targets": list(planned.targets)})
        else:
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
        targets=targets,
    )
    network = result.plan.summary.plan.name
    if args.json:
        if result.verify is not None:
            emit(env.out, "verify", result.verify.to_dict())
        add, change, destroy = result.plan.summary.counts()
        boot = result.bootstrap
        payload: dict[str, Any] = {
            "network": network,
            "ok": True,
            "resources": {"add": add, "change": change, "destroy": destroy},
            "hosts": [h.to_dict() for h in boot.hosts] if boot is not None else [],
            "targets": list(result.plan.targets),
            "verified": result.verify is not None,
        }
        emit(env.out, "apply", payload)
        return ExitStatus.OK
    if result.verify is not None:
        env.out.print(result.verify.render_matrix(), markup=False, highlight=False)
    env.out.print(f"Apply complete: {network} is up.", highlight=False)
    return ExitStatus.OK


def cmd_destroy(args: argparse.Namespace, env: Environment) -> ExitStatus:
    from cloudcast.cli.render import print_destroy
    from cloudcast.pipeline.apply import DestroyPreview, destroy

    ctx = context(args, env)

    def confirm(preview: DestroyPreview) -> bool:
        if args.json:
            emit(env.out, "destroy_plan", preview.to_dict())
        else:
            print_destroy(env.err, preview)
        if preview.empty:
            return True  # nothing to remove but cloudcast's own state: nothing to ask about
        return _confirm(env, args.auto_approve, f"Destroy {ctx.spec.name}?")

    notes = destroy(ctx, confirm=confirm)
    if args.json:
        emit(env.out, "destroy", {"network": ctx.spec.name, "ok": True, "notes": notes})
        return ExitStatus.OK
    for note in notes:
        env.err.print(note, highlight=False)
    env.out.print(f"Destroy complete: {ctx.spec.name} is gone.", highlight=False)
    return ExitStatus.OK


def cmd_verify(args: argparse.Namespace, env: Environment) -> ExitStatus:
    from cloudcast.pipeline.inspect import run_verify
    from cloudcast.verify.reports import junit_xml, prometheus_text

    checked = run_verify(context(args, env), with_status=args.metrics is not None)
    result = checked.result
    if args.junit is not None:
        _write_report(args.junit, junit_xml(result, checked.plan))
    if args.metrics is not None:
        _write_report(args.metrics, prometheus_text(result, checked.plan, checked.live))
    if not result.ok:
        from cloudcast.pipeline.apply import verify_error

        # an MTU that does not fit fails too: the path drops full-size packets. The matrix
        # goes with the error (a `verify` record with -json, the text without)
        raise verify_error(result, result.render_matrix(), [("verify", result.to_dict())])
    if args.json:
        emit(env.out, "verify", result.to_dict())
    else:
        env.out.print(result.render_matrix(), markup=False, highlight=False)
    return ExitStatus.OK


def _write_report(path: Path, text: str) -> None:
    """Write a report whole (temp file + rename): a scraper never reads half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CloudcastError(f"cannot write {path}: {exc.strerror}") from None


def cmd_status(args: argparse.Namespace, env: Environment) -> ExitStatus:
    from cloudcast.pipeline.inspect import run_status

    result = run_status(context(args, env))
    stale = bool(result.stale) or any(not n.up or n.error for n in result.nodes)
    if args.json:
        data = {k: v for k, v in result.to_dict().items() if k != "type"}
        emit(env.out, "status", {**data, "stale": [list(pair) for pair in result.stale]})
    else:
        env.out.print(result.render(), markup=False, highlight=False)
    return ExitStatus.STALE if args.detailed_exitcode and stale else ExitStatus.OK


def cmd_output(args: argparse.Namespace, env: Environment) -> ExitStatus:
    from cloudcast.pipeline.inspect import output, output_rows

    fmt = args.format or "json"
    args.json = args.json or fmt == "json"  # --format json is -json: errors are records too
    ctx = context(args, env)
    if args.json:
        payload: dict[str, Any] = {"format": fmt}
        if fmt == "json":
            payload["hosts"] = output_rows(ctx)
        else:
            payload["text"] = output(ctx, fmt)
        emit(env.out, "output", payload)
        return ExitStatus.OK
    env.out.file.write(output(ctx, fmt))
    return ExitStatus.OK
