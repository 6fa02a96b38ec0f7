"""`cloudcast graph`: draw the network (sites, nodes, tunnels, gateways, relays, policy)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cloudcast.cli.env import Environment
from cloudcast.cli.options import add_common, context
from cloudcast.errors import ExitStatus


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "graph",
        help="draw the network as SVG, PNG or DOT",
        description="Draw the planned network: sites as boxes, nodes with their overlay address and "
        "role, tunnels (a standby gateway's dashed), relays and gateways, and the access policy as "
        "coloured arrows between tags. With --live, each tunnel is coloured by its state from "
        "`cloudcast status` (green: a fresh handshake, red: stale; orange: relayed).",
        epilog="examples:\n  cloudcast graph examples/lab-policy.json -o net.svg\n"
        "  cloudcast graph spec.json -o net.png --live",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("spec", metavar="SPEC")
    p.add_argument(
        "-o", "--output", type=Path, required=True, metavar="FILE", help="net.svg, net.png or net.dot"
    )
    p.add_argument("--live", action="store_true", help="colour tunnels by their state (SSH to every node)")
    p.add_argument("--lab", action="store_true", help="the rehearsal made by `apply --lab`")
    add_common(p)
    p.set_defaults(func=cmd_graph)


def cmd_graph(args: argparse.Namespace, env: Environment) -> ExitStatus:
    from cloudcast.graph import live_from_status, write_graph

    ctx = context(args, env)
    plan, _ = ctx.plan()
    live = None
    if args.live:
        from cloudcast.pipeline.inspect import run_status

        live = live_from_status(run_status(ctx))
    path = write_graph(plan, args.output, live)
    env.out.print(f"wrote {path}", highlight=False)
    return ExitStatus.OK
