"""The `cloudcast` command: parse arguments, call one library function, map errors to exit codes."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from cloudcast import __version__
from cloudcast.cli import commands, lab
from cloudcast.cli.env import Environment
from cloudcast.errors import CloudcastError, ExitStatus, SpecError


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser; each command module registers its own subcommands."""
    parser = argparse.ArgumentParser(
        prog="cloudcast",
        description=(
            "Build a private, encrypted network (WireGuard or IPsec) across AWS, Linode, Vultr, "
            "your own hosts and a local lab, from one JSON spec."
        ),
        epilog=(
            "typical session:\n"
            "  cloudcast validate spec.json     check the spec\n"
            "  cloudcast plan spec.json         show what would change (exit 2 when something would)\n"
            "  cloudcast apply spec.json        build it, configure every node, verify every pair\n"
            "  cloudcast status spec.json       live handshakes and traffic per peer\n"
            "  cloudcast destroy spec.json      take it all down\n"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"cloudcast {__version__}")
    parser.add_argument("--debug", action="store_true", help="show a traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    commands.register(sub)
    lab.register(sub)
    return parser


def run(argv: Sequence[str], env: Environment) -> ExitStatus:
    """Run one command in-process; never raises for user-facing errors."""
    parser = build_parser()
    args = parser.parse_args(list(argv))
    debug = bool(args.debug) or bool(os.environ.get("CLOUDCAST_DEBUG"))
    try:
        status: ExitStatus = args.func(args, env)
        return status
    except SpecError as exc:
        for line in exc.report():
            env.err.print(line, markup=False, highlight=False, soft_wrap=True)
        env.err.print(f"cloudcast: error: {exc.message}", markup=False, highlight=False)
        return exc.exit_status
    except CloudcastError as exc:
        if exc.details:
            env.out.print(exc.details.rstrip("\n"), markup=False, highlight=False)
        if debug:
            env.err.print(traceback.format_exc(), markup=False, highlight=False)
        env.err.print(f"cloudcast: error: {exc.message}", markup=False, highlight=False, soft_wrap=True)
        if exc.hint:
            env.err.print(f"  fix: {exc.hint}", markup=False, highlight=False, soft_wrap=True)
        return exc.exit_status
    except KeyboardInterrupt:
        env.err.print("cloudcast: interrupted", markup=False)
        return ExitStatus.INTERRUPTED
    except Exception as exc:
        if debug:
            env.err.print(traceback.format_exc(), markup=False, highlight=False)
        env.err.print(
            f"cloudcast: error: internal error: {type(exc).__name__}: {exc} "
            "(run with --debug for a traceback)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return ExitStatus.ERROR


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point."""
    return int(run(sys.argv[1:] if argv is None else argv, Environment.from_process()))


if __name__ == "__main__":
    sys.exit(main())
