"""`plan` and `apply` of a lab spec through real Terraform (terraform_data needs no provider)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloudcast.pipeline.plan import read_planfile
from tests.conftest import run_cli

pytestmark = pytest.mark.terraform


def test_plan_lists_resources_nodes_and_exits_2(lab_spec: Path, tmp_path: Path) -> None:
    res = run_cli(
        "plan", str(lab_spec), "--workdir", str(tmp_path / "wd"), "-out", str(tmp_path / "net.plan"), "-detailed-exitcode"
    )
    assert res.code == 2, res.err
    assert 'terraform_data.node["alpha"]' in res.out
    assert "Terraform: 4 to add, 0 to change, 0 to destroy" in res.out
    assert "delta.lab.internal" in res.out and "double" in res.out
    assert "charlie <-> delta: both behind NAT, relayed through alpha" in res.out
    saved = read_planfile(tmp_path / "net.plan")
    assert Path(saved["tfplan"]).exists()


def test_plan_json_has_no_secret(lab_spec: Path, tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    res = run_cli("plan", str(lab_spec), "--workdir", str(wd), "--json", "--detailed-exitcode")
    assert res.code == 2, res.err
    doc = json.loads(res.out.strip().splitlines()[-1])
    assert doc["resources"]["add"] == 4
    assert {n["name"]: n["overlay_ip"] for n in doc["nodes"]}["alpha"] == "10.15.0.1"
    assert doc["pairs"] == 5
    assert not (wd / "secrets.json").exists()  # plan makes no keys


def test_apply_never_prompts_without_a_terminal(lab_spec: Path, tmp_path: Path) -> None:
    res = run_cli("apply", str(lab_spec), "--workdir", str(tmp_path / "wd"))
    assert res.code == 1
    assert "confirmation needed, and there is no terminal to ask (or CI is set)" in res.err
    assert "pass --auto-approve" in res.err


def test_terraform_failure_is_one_clear_error(lab_spec: Path, tmp_path: Path) -> None:
    res = run_cli("plan", str(lab_spec), "--workdir", str(tmp_path / "wd"), "--terraform-bin", "/bin/false")
    assert res.code == 1
    assert "cloudcast: error: terraform init failed (exit 1)" in res.err
    assert "Traceback" not in res.err
    missing = run_cli("plan", str(lab_spec), "--workdir", str(tmp_path / "wd"), "--terraform-bin", "/nope/tf")
    assert "Terraform executable not found: /nope/tf" in missing.err


def test_second_run_is_locked_out(lab_spec: Path, tmp_path: Path) -> None:
    from cloudcast.state import WorkDir, locked

    wd = WorkDir(tmp_path / "wd")
    with locked(wd):
        res = run_cli("apply", str(lab_spec), "--workdir", str(wd.root), "--auto-approve")
    assert res.code == 1
    assert "is locked by another cloudcast run" in res.err


def test_relative_spec_path_and_default_workdir(lab_spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = run_cli("plan", "lab.json", "-detailed-exitcode")
    assert res.code == 2, res.err
    terraform = tmp_path / ".cloudcast" / "demo" / "terraform"
    assert (terraform / "main.tf.json").exists()
    assert not list(terraform.glob("*.tfplan"))  # the run's own plan file, removed once shown
