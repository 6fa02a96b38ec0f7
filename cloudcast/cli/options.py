"""Options and helpers every spec command shares: the Terraform binary, the work dir, the context."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING

from cloudcast.cli.env import Environment

if TYPE_CHECKING:  # the pipeline is imported by the commands that run it, keeping `lab` fast
    from cloudcast.events import Reporter
    from cloudcast.pipeline.context import Context


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--terraform-bin",
        metavar="PATH",
        help="terraform or tofu binary (default: $CLOUDCAST_TERRAFORM, then terraform, then tofu)",
    )
    p.add_argument(
        "--workdir", type=Path, metavar="DIR", help="state dir (default: .cloudcast/NAME beside the spec)"
    )


def add_preflight(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--skip-preflight",
        action="store_true",
        help="skip the provider checks (credentials, regions, sizes, images) before Terraform",
    )


def add_lab_machine(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lab-machine",
        choices=("namespace", "vm"),
        help="with --lab: make every rehearsal host this machine (vm: QEMU guests of the lab "
        "image, with their own kernel and systemd); default: what lab sites say, else namespace",
    )


JSON_HELP = "JSON lines on stdout, one envelope each (`cloudcast schema --events`)"


def add_json(p: argparse.ArgumentParser, what: str = JSON_HELP) -> None:
    p.add_argument("-json", "--json", action="store_true", help=what)


def add_auto_approve(p: argparse.ArgumentParser) -> None:
    p.add_argument("-auto-approve", "--auto-approve", action="store_true", help="do not ask for confirmation")


_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)(ms|s|m|h))+")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration(text: str) -> str:
    """A Terraform (Go) duration such as `0s`, `30s`, `5m`, `1m30s`; kept as typed for Terraform."""
    if not _DURATION.fullmatch(text):
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (examples: 0s, 30s, 5m, 1m30s)")
    if sum(float(n) * _UNIT[unit] for n, unit in _PART.findall(text)) > 86400:
        raise argparse.ArgumentTypeError(f"{text!r} is more than a day")
    return text


def parallelism(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError(f"must be between 1 and 256: {value}")
    return value


def add_run_limits(p: argparse.ArgumentParser, *, targets: bool = False) -> None:
    """Terraform's -lock-timeout, -parallelism and (for plan and apply) -target."""
    p.add_argument(
        "-lock-timeout",
        "--lock-timeout",
        type=duration,
        default="0s",
        metavar="DURATION",
        help="wait this long for the work dir's lock and Terraform's state lock (default: 0s, fail at once)",
    )
    p.add_argument(
        "-parallelism",
        "--parallelism",
        type=parallelism,
        metavar="N",
        help="hosts reached over SSH at once, and Terraform's -parallelism (default: 32 hosts, 10 resources)",
    )
    if targets:
        p.add_argument(
            "-target",
            "--target",
            action="append",
            default=[],
            metavar="NODE|SITE",
            help="only this node or site (repeatable): Terraform's -target, and only those hosts "
            "bootstrapped; for exceptional use, as with Terraform",
        )


def reporter_for(args: argparse.Namespace, env: Environment) -> Reporter:
    from cloudcast.cli.progress import ConsoleReporter, JsonReporter

    return JsonReporter(env.out) if getattr(args, "json", False) else ConsoleReporter(env.err)


def context(args: argparse.Namespace, env: Environment, *, rehearsal: bool = False) -> Context:
    from cloudcast.pipeline.context import Context
    from cloudcast.spec.models import Machine

    machine = getattr(args, "lab_machine", None)
    return Context.load(
        Path(args.spec),
        rehearsal=rehearsal or bool(getattr(args, "lab", False)) or machine is not None,
        lab_machine=Machine(machine) if machine else None,
        environ=env.environ,
        terraform_bin=getattr(args, "terraform_bin", None),
        reporter=reporter_for(args, env),
        workdir=getattr(args, "workdir", None),
        lock_timeout=getattr(args, "lock_timeout", "0s") or "0s",
        parallelism=getattr(args, "parallelism", None),
    )
