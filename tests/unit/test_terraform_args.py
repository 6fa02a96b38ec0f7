"""The Terraform argument builder, table-tested (the runner's only pure part)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudcast.errors import TerraformError
from cloudcast.terraform.runner import build_args, find_binary

TABLE = [
    ("init", {}, ["init", "-input=false", "-no-color", "-upgrade=false"]),
    ("plan", {"out": Path("p.tfplan")}, ["plan", "-input=false", "-no-color", "-json", "-detailed-exitcode", "-out=p.tfplan", "-parallelism=10"]),
    ("plan", {"out": "x", "destroy": True}, ["plan", "-input=false", "-no-color", "-json", "-detailed-exitcode", "-destroy", "-out=x", "-parallelism=10"]),
    ("apply", {"planfile": "p.tfplan"}, ["apply", "-input=false", "-no-color", "-json", "-parallelism=10", "p.tfplan"]),
    ("apply", {}, ["apply", "-input=false", "-no-color", "-json", "-auto-approve", "-parallelism=10"]),
    ("destroy", {"lock_timeout": "30s"}, ["destroy", "-input=false", "-no-color", "-json", "-auto-approve", "-lock-timeout=30s", "-parallelism=10"]),
    ("output", {}, ["output", "-no-color", "-json"]),
    ("show", {"planfile": "p"}, ["show", "-no-color", "-json", "p"]),
    ("validate", {}, ["validate", "-no-color", "-json"]),
]


@pytest.mark.parametrize(("command", "opts", "expected"), TABLE)
def test_build_args(command: str, opts: dict[str, object], expected: list[str]) -> None:
    assert build_args(command, **opts) == expected


def test_every_command_is_non_interactive_and_colourless() -> None:
    for command, opts, _ in TABLE:
        args = build_args(command, **opts)
        assert "-no-color" in args
        assert "-force" not in args  # python-terraform's removed flag


def test_binary_from_env_and_missing(tmp_path: Path) -> None:
    fake = tmp_path / "tofu"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert find_binary(None, {"CLOUDCAST_TERRAFORM": str(fake)}) == str(fake)
    with pytest.raises(TerraformError, match="Terraform executable not found: /nope/terraform"):
        find_binary("/nope/terraform", {})
