"""The `cloudcast` command: parse arguments, call one library function, map errors to exit codes."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from cloudcast import __version__
from cloudcast.cli import commands, graph, lab
from cloudcast.cli.env import Environment
from cloudcast.cli.jsonout import emit, error_payload
from cloudcast.errors import CloudcastError, ExitStatus, SpecError, UsageError


class Parser(argparse.ArgumentParser):
    """argparse as Terraform users expect it: no abbreviations (`--auto` is not `--auto-approve`),
    and a usage error exits 1 (argparse's own 2 would read as "changes" to a CI pipeline)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, hint=f"`{self.prog} --help` lists the options", details=self.format_usage())

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        """As argparse's, but an unknown flag is reported by the subcommand it was given to,
        with that subcommand's usage line."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self._innermost(parsed).error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed

    def _innermost(self, parsed: argparse.Namespace) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = self
        while True:
            subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
            chosen = getattr(parsed, subs[0].dest, None) if subs else None
            if not subs or chosen not in subs[0].choices:
                return parser
            parser = subs[0].choices[chosen]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser; each command module registers its own subcommands."""
    parser: argparse.ArgumentParser = Parser(
        prog="cloudcast",
        description=(
            "Build a private, encrypted network (WireGuard or IPsec) across AWS, Linode, Vultr, "
            "your own hosts and a local lab, from one JSON spec."
        ),
        epilog=(
            "typical session:\n"
            "  cloudcast validate spec.json     check the spec\n"
            "  cloudcast plan spec.json         show what would change\n"
            "  cloudcast apply spec.json        build it, configure every node, verify every pair\n"
            "  cloudcast status spec.json       live handshakes and traffic per peer\n"
            "  cloudcast destroy spec.json      take it all down\n"
            "\n"
            "in CI, as with Terraform (single-dash spellings work too):\n"
            "  cloudcast plan spec.json -out net.plan -detailed-exitcode   0 none, 2 changes, 1 error\n"
            "  cloudcast apply net.plan -json                              JSON lines, one envelope\n"
            "  cloudcast verify spec.json -junit verify.xml                one test case per pair\n"
            "\n"
            "exit status: 0 success, 1 error (usage errors too), 2 changes (plan) or stale peers\n"
            "(status), only with -detailed-exitcode; 130 interrupted.\n"
            "shell completion: eval \"$(cloudcast completion bash)\"  (or zsh)\n"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"cloudcast {__version__}")
    parser.add_argument("--debug", action="store_true", help="show a traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    commands.register(sub)
    lab.register(sub)
    graph.register(sub)
    return parser


def _wants_json(argv: Sequence[str], args: argparse.Namespace | None) -> bool:
    if args is not None:
        return bool(getattr(args, "json", False))
    # a usage error leaves no parsed arguments: the flag as typed decides
    return any(a in ("--json", "-json") for a in argv)


def run(argv: Sequence[str], env: Environment) -> ExitStatus:
    """Run one command in-process; never raises for user-facing errors.

    With `--json`, every error is also an `error` record on stdout (after the records the
    error carries, e.g. the verify matrix of a failed apply); people still read it on stderr.
    """
    args: argparse.Namespace | None = None
    debug = bool(os.environ.get("CLOUDCAST_DEBUG")) or "--debug" in argv
    try:
        args = build_parser().parse_args(list(argv))
        debug = debug or bool(args.debug)
        status: ExitStatus = args.func(args, env)
        return status
    except CloudcastError as exc:
        if _wants_json(argv, args):
            for kind, payload in exc.records:
                emit(env.out, kind, payload)
            emit(env.out, "error", error_payload(exc, exc.exit_status))
        return _report(exc, env, debug=debug, json_mode=_wants_json(argv, args))
    except KeyboardInterrupt:
        if _wants_json(argv, args):
            emit(env.out, "error", error_payload(CloudcastError("interrupted"), ExitStatus.INTERRUPTED))
        env.err.print("cloudcast: interrupted", markup=False)
        return ExitStatus.INTERRUPTED
    except Exception as exc:
        if _wants_json(argv, args):
            emit(env.out, "error", error_payload(exc, ExitStatus.ERROR))
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


def _report(exc: CloudcastError, env: Environment, *, debug: bool, json_mode: bool) -> ExitStatus:
    """The one-line error (and its fix) for people, on stderr; details before it."""
    if isinstance(exc, SpecError):
        for line in exc.report():
            env.err.print(line, markup=False, highlight=False, soft_wrap=True)
        env.err.print(f"cloudcast: error: {exc.message}", markup=False, highlight=False)
        return exc.exit_status
    if isinstance(exc, UsageError):
        env.err.print(exc.details.rstrip("\n"), markup=False, highlight=False, soft_wrap=True)
    elif exc.details:
        # stdout stays JSON lines with --json: the details (a matrix) go to people on stderr
        console = env.err if json_mode else env.out
        console.print(exc.details.rstrip("\n"), markup=False, highlight=False)
    if debug:
        env.err.print(traceback.format_exc(), markup=False, highlight=False)
    env.err.print(f"cloudcast: error: {exc.message}", markup=False, highlight=False, soft_wrap=True)
    if exc.hint:
        env.err.print(f"  fix: {exc.hint}", markup=False, highlight=False, soft_wrap=True)
    return exc.exit_status


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point."""
    return int(run(sys.argv[1:] if argv is None else argv, Environment.from_process()))


if __name__ == "__main__":
    sys.exit(main())
