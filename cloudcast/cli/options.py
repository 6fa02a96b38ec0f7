"""Options and helpers every spec command shares: the Terraform binary, the work dir, the context."""

from __future__ import annotations

import argparse
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
    )
