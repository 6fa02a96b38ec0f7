"""Subcommands that read a spec: validate, schema, compile, plan (and the lifecycle ones)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cloudcast.cli import lifecycle
from cloudcast.cli.env import Environment
from cloudcast.cli.jsonout import diagnostics, emit
from cloudcast.cli.options import add_common, add_json, add_preflight, add_run_limits, context
from cloudcast.errors import ExitStatus, SpecError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser(
        "validate",
        help="check a spec without creating anything",
        description="Check a spec: syntax, types, unknown keys, names, overlapping CIDRs, topology "
        "rules. Prints one line per problem as `path: message (value)`; with -json, one `validate` "
        "record whose diagnostics name their spec path, like `terraform validate -json`.",
        epilog="exit status: 0 valid, 1 problems found",
        formatter_class=fmt,
    )
    p.add_argument("spec", metavar="SPEC", help="the spec file (.json, or .yaml/.yml)")
    p.add_argument("--online", action="store_true", help="also check provider credentials and names")
    add_json(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "schema",
        help="print the spec's JSON Schema (or, with --events, that of the -json records)",
        description="Print the JSON Schema of the spec, for editors (the examples refer to it via "
        "$schema); with --events, the JSON Schema of every record `-json` writes (cloudcast/v1).",
    )
    p.add_argument("--events", action="store_true", help="the schema of the -json records instead")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser(
        "compile",
        help="write the Terraform root module and modules, run nothing",
        description="Validate and plan the spec, then write main.tf.json and the modules it uses into "
        "DIR, for people who want to read or run Terraform themselves.",
    )
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="DIR", help="output directory")
    p.add_argument("--workdir", type=Path, metavar="DIR", help="state dir holding earlier allocations")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser(
        "plan",
        help="show what apply would change",
        description="Validate, allocate addresses, compile, run `terraform init` and `terraform plan`, "
        "and summarize: resources per site, nodes with overlay addresses, peers, host changes. "
        "Nothing is created. Holds the work dir's lock while it runs.",
        epilog="exit status (as terraform's): 0 success, 1 error; with -detailed-exitcode\n"
        "0 no changes, 1 error, 2 changes.\n"
        "examples:\n"
        "  cloudcast plan spec.json -out net.plan -detailed-exitcode\n"
        "  cloudcast plan spec.json -json -lock-timeout=5m\n"
        "  cloudcast plan spec.json -target=db1 -target=aws-west   only those (exceptional use)",
        formatter_class=fmt,
    )
    p.add_argument("spec", metavar="SPEC")
    p.add_argument(
        "-out",
        "--out",
        dest="out",
        type=Path,
        metavar="FILE",
        help="save the plan for `cloudcast apply FILE`",
    )
    add_json(p, "JSON lines on stdout: progress, then one `plan` record")
    p.add_argument(
        "-detailed-exitcode",
        "--detailed-exitcode",
        action="store_true",
        help="exit 0 no changes, 1 error, 2 changes (as terraform plan -detailed-exitcode)",
    )
    p.add_argument(
        "--skip-bootstrap",
        action="store_true",
        help="plan what `apply --skip-bootstrap` would do: host changes are listed but do not count",
    )
    add_run_limits(p, targets=True)
    add_preflight(p)
    add_common(p)
    p.set_defaults(func=cmd_plan)

    lifecycle.register(sub)

    p = sub.add_parser(
        "completion",
        help="print a bash or zsh completion script",
        description="Print a completion script for SHELL, generated from cloudcast's own options.",
        epilog="examples:\n"
        '  eval "$(cloudcast completion bash)"                     in ~/.bashrc\n'
        "  cloudcast completion zsh > ~/.zfunc/_cloudcast           with fpath+=(~/.zfunc)",
        formatter_class=fmt,
    )
    p.add_argument("shell", choices=("bash", "zsh"), metavar="SHELL", help="bash or zsh")
    p.set_defaults(func=cmd_completion)


def cmd_validate(args: argparse.Namespace, env: Environment) -> ExitStatus:
    from cloudcast.spec import load_spec

    try:
        spec = load_spec(Path(args.spec), env.environ)
    except SpecError as exc:
        if not args.json:
            raise
        found = diagnostics(exc.problems)
        emit(env.out, "validate", _validity(False, found))
        raise  # and an `error` record with the exit status, as for every command
    checks: list[str] = []
    if args.online:
        from cloudcast.preflight import preflight

        checks = preflight(spec, env.environ).lines()
    nodes = sum(len(s.nodes) for s in spec.sites)
    if args.json:
        counts = {"checks": checks, "sites": len(spec.sites), "nodes": nodes}
        emit(env.out, "validate", {**_validity(True, []), **counts})
        return ExitStatus.OK
    for line in checks:
        env.out.print(line, markup=False, highlight=False)
    env.out.print(f"{args.spec}: valid ({len(spec.sites)} sites, {nodes} nodes)", highlight=False)
    return ExitStatus.OK


def _validity(valid: bool, found: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "format_version": "1.0",
        "valid": valid,
        "error_count": len(found),
        "warning_count": 0,
        "diagnostics": found,
    }


def cmd_schema(args: argparse.Namespace, env: Environment) -> ExitStatus:
    if args.events:
        from cloudcast.cli.eventschema import event_schema_text

        env.out.file.write(event_schema_text())
        return ExitStatus.OK
    from cloudcast.spec.schema import json_schema_text

    env.out.file.write(json_schema_text())
    return ExitStatus.OK


def cmd_compile(args: argparse.Namespace, env: Environment) -> ExitStatus:
    ctx = context(args, env)
    plan, state = ctx.plan()
    out: Path = args.output
    path = ctx.compile(plan, out, state=state)
    (out / "cloudcast.plan.json").write_text(plan.to_json())
    env.out.print(
        f"wrote {path} and {len(plan.sites)} site modules; plan in {out / 'cloudcast.plan.json'}",
        highlight=False,
    )
    return ExitStatus.OK


def cmd_plan(args: argparse.Namespace, env: Environment) -> ExitStatus:
    from cloudcast.cli.render import print_plan
    from cloudcast.pipeline.plan import plan_network

    ctx = context(args, env)
    result = plan_network(
        ctx,
        out=args.out,
        preflight_checks=not args.skip_preflight,
        include_hosts=not args.skip_bootstrap,
        targets=args.target,
    )
    if args.json:
        data: dict[str, Any] = {
            **result.summary.to_dict(),
            "targets": list(result.targets),
            "planfile": str(args.out) if args.out else None,
        }
        emit(env.out, "plan", data)
    else:
        print_plan(env.out, result.summary)
        if args.out:
            env.out.print(f"Saved the plan to {args.out}; run `cloudcast apply {args.out}`.", highlight=False)
    if args.detailed_exitcode and result.summary.has_changes:
        return ExitStatus.CHANGES
    return ExitStatus.OK


def cmd_completion(args: argparse.Namespace, env: Environment) -> ExitStatus:
    from cloudcast.cli.completion import script
    from cloudcast.cli.main import build_parser

    env.out.file.write(script(build_parser(), args.shell))
    return ExitStatus.OK
