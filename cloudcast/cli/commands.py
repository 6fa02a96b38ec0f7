"""Subcommands that read a spec: validate, schema, compile, plan (and the lifecycle ones)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cloudcast.cli import lifecycle
from cloudcast.cli.env import Environment
from cloudcast.cli.options import add_common, add_preflight, context
from cloudcast.errors import ExitStatus


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser(
        "validate",
        help="check a spec without creating anything",
        description="Check a spec: syntax, types, unknown keys, names, overlapping CIDRs, topology "
        "rules. Prints one line per problem as `path: message (value)`.",
        epilog="exit status: 0 valid, 1 problems found",
        formatter_class=fmt,
    )
    p.add_argument("spec", metavar="SPEC", help="the spec file (.json, or .yaml/.yml)")
    p.add_argument("--online", action="store_true", help="also check provider credentials and names")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "schema",
        help="print the spec's JSON Schema",
        description="Print the JSON Schema of the spec, for editors (the examples refer to it via $schema).",
    )
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
        help="show what apply would change (exit 2 when something would)",
        description="Validate, allocate addresses, compile, run `terraform init` and `terraform plan`, "
        "and summarize: resources per site, nodes with overlay addresses, peers, host changes. "
        "Nothing is created.",
        epilog="exit status (like terraform -detailed-exitcode): 0 no changes, 2 changes, 1 error",
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
    p.add_argument("--json", action="store_true", help="machine-readable summary on stdout")
    p.add_argument("--detailed-exitcode", action="store_true", help="accepted for Terraform habit; always on")
    p.add_argument(
        "--skip-bootstrap",
        action="store_true",
        help="plan what `apply --skip-bootstrap` would do: host changes are listed but do not count",
    )
    add_preflight(p)
    add_common(p)
    p.set_defaults(func=cmd_plan)

    lifecycle.register(sub)


def cmd_validate(args: argparse.Namespace, env: Environment) -> ExitStatus:
    from cloudcast.spec import load_spec

    spec = load_spec(Path(args.spec), env.environ)
    if args.online:
        from cloudcast.preflight import preflight

        for line in preflight(spec, env.environ).lines():
            env.out.print(line, markup=False, highlight=False)
    nodes = sum(len(s.nodes) for s in spec.sites)
    env.out.print(f"{args.spec}: valid ({len(spec.sites)} sites, {nodes} nodes)", highlight=False)
    return ExitStatus.OK


def cmd_schema(args: argparse.Namespace, env: Environment) -> ExitStatus:
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
    from cloudcast.pipeline.plan import run_plan, write_planfile

    ctx = context(args, env)
    result = run_plan(ctx, preflight_checks=not args.skip_preflight)
    result.summary.include_hosts = not args.skip_bootstrap
    if args.out:
        write_planfile(args.out, ctx, result)
    if args.json:
        data: dict[str, Any] = {"type": "plan", **result.summary.to_dict()}
        env.out.print(json.dumps(data, sort_keys=True), markup=False, highlight=False, soft_wrap=True)
    else:
        print_plan(env.out, result.summary)
        if args.out:
            env.out.print(f"Saved the plan to {args.out}; run `cloudcast apply {args.out}`.", highlight=False)
    return ExitStatus.CHANGES if result.summary.has_changes else ExitStatus.OK
