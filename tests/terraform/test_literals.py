"""Spec strings reach Terraform as literals: `${...}` and `%{...}` in them are never evaluated.

A lab-only root (built-in terraform_data, no provider) is planned for real; the values the
module receives must be exactly the spec's text. Put into the parsed spec past validation, so
the escaping alone is what is tested.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cloudcast.plan import build_plan
from cloudcast.spec import parse_spec
from cloudcast.terraform.compile import compile_root

pytestmark = [pytest.mark.terraform, pytest.mark.timeout(300)]

NAME = 'net${file("/etc/hostname")}%{ if true }x%{ endif }$${kept}'
KEY = 'ssh-ed25519 AAAA ${upper("key")}'


def test_interpolations_in_spec_strings_stay_text(
    tmp_path: Path, terraform_bin: str, tf_env: dict[str, str]
) -> None:
    doc = {"name": "net", "sites": [{"name": "lab", "provider": "lab", "nodes": [{"name": "n0"}]}]}
    spec = parse_spec(doc).model_copy(update={"name": NAME})
    plan, _ = build_plan(spec)
    compile_root(spec, plan, tmp_path, ssh_public_key=KEY, lab_prefix="cclab", environ={})

    def tf(*args: str) -> str:
        res = subprocess.run(
            [terraform_bin, *args, "-no-color"], cwd=tmp_path, env=tf_env, capture_output=True, text=True
        )
        assert res.returncode == 0, res.stderr
        return res.stdout

    tf("init", "-input=false", "-backend=false")
    tf("plan", "-input=false", "-out=plan")
    [change] = json.loads(tf("show", "-json", "plan"))["resource_changes"]
    given = change["change"]["after"]["input"]
    assert (given["name_prefix"], given["ssh_public_key"]) == (NAME, KEY)
