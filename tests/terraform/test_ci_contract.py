"""Terraform's contract through real Terraform, on specs that create nothing when planned:
`plan`'s exit codes, its lock, `-target`, per-run plan files, `destroy`'s preview.

(The lab spec's `terraform_data` needs no provider; nothing here is applied, so no lab host
is made. The static spec makes no Terraform resources at all.)
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest

from cloudcast.state import WorkDir, locked
from tests.conftest import EXAMPLES, run_cli

pytestmark = pytest.mark.terraform


def records(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_plan_exits_0_unless_detailed_exitcode_asks_for_2(lab_spec: Path, tmp_path: Path) -> None:
    wd = str(tmp_path / "wd")
    plain = run_cli("plan", str(lab_spec), "--workdir", wd)
    assert plain.code == 0, plain.err
    assert "Plan: 4 to add" in plain.out
    detailed = run_cli("plan", str(lab_spec), "--workdir", wd, "-detailed-exitcode", "-json")
    assert detailed.code == 2, detailed.err
    assert records(detailed.out)[-1]["type"] == "plan"


def test_plan_without_changes_exits_0_with_detailed_exitcode(tmp_path: Path, ssh_home: Path) -> None:
    spec = tmp_path / "static.json"
    shutil.copy(EXAMPLES / "p2p-lan-mesh.json", spec)
    environ = {"HOME": str(ssh_home)}
    res = run_cli(
        "plan", str(spec), "--workdir", str(tmp_path / "wd"), "--skip-bootstrap", "-detailed-exitcode",
        environ=environ,
    )
    assert res.code == 0, res.err
    assert "No changes." in res.out


def test_plan_holds_the_work_dir_lock_and_waits_with_lock_timeout(lab_spec: Path, tmp_path: Path) -> None:
    wd = WorkDir(tmp_path / "wd")
    with locked(wd):
        res = run_cli("plan", str(lab_spec), "--workdir", str(wd.root), "-json")
    assert res.code == 1
    [error] = records(res.out)
    assert error["type"] == "error" and "is locked by another cloudcast run" in str(error["message"])
    assert "-lock-timeout" in str(error["hint"])

    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with locked(wd):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(10)
    threading.Timer(0.5, release.set).start()
    res = run_cli("plan", str(lab_spec), "--workdir", str(wd.root), "-lock-timeout=30s")
    thread.join()
    assert res.code == 0, res.err


def test_target_plans_only_those_nodes_with_terraforms_warning(lab_spec: Path, tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    planfile = tmp_path / "alpha.plan"
    res = run_cli(
        "plan", str(lab_spec), "--workdir", str(wd), "-target=alpha", "-out", str(planfile), "-json",
        "-detailed-exitcode", "-parallelism=2",
    )
    assert res.code == 2, res.err
    lines = records(res.out)
    messages = [str(r["message"]) for r in lines if r["type"] == "progress"]
    assert any("Resource targeting is in effect" in m and "not for routine use" in m for m in messages)
    [plan] = [r for r in lines if r["type"] == "plan"]
    assert plan["resources"] == {"add": 1, "change": 0, "destroy": 0}
    assert plan["sites"] == {"lab": {"add": ['terraform_data.node["alpha"]'], "change": [], "destroy": []}}
    assert plan["targets"] == ["alpha"]
    assert [h["node"] for h in plan["hosts"]] == ["alpha"]  # type: ignore[union-attr, index]
    assert json.loads(planfile.read_text())["targets"] == ["alpha"]

    site = run_cli("plan", str(lab_spec), "--workdir", str(wd), "-target=lab", "-json")
    assert next(r for r in records(site.out) if r["type"] == "plan")["resources"]["add"] == 4  # type: ignore[index]

    unknown = run_cli("plan", str(lab_spec), "--workdir", str(wd), "-target=alhpa")
    assert unknown.code == 1
    assert "-target=alhpa: no node or site of that name" in unknown.err and "did you mean 'alpha'?" in unknown.err


def test_each_run_has_its_own_plan_file(lab_spec: Path, tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    planfile = tmp_path / "net.plan"
    assert run_cli("plan", str(lab_spec), "--workdir", str(wd), "-out", str(planfile)).code == 0
    saved = planfile.with_name("net.plan.tfplan")
    kept = saved.read_bytes()
    assert kept
    assert run_cli("plan", str(lab_spec), "--workdir", str(wd)).code == 0
    assert saved.read_bytes() == kept
    assert not list((wd / "terraform").glob("*.tfplan"))  # no shared plan file an apply could pick up
    assert not (wd / "terraform" / "cloudcast.tfplan").exists()


def test_destroy_shows_what_it_removes_first(lab_spec: Path, tmp_path: Path) -> None:
    wd = str(tmp_path / "wd")
    res = run_cli("destroy", str(lab_spec), "--workdir", wd, "-json")  # nothing applied: nothing to ask
    assert res.code == 0, res.err
    preview, done = (r for r in records(res.out) if r["type"] in ("destroy_plan", "destroy"))
    assert preview == {**preview, "type": "destroy_plan", "resources": [], "machines": [], "cleaned": []}
    assert done["type"] == "destroy" and done["ok"] is True
    text = run_cli("destroy", str(lab_spec), "--workdir", wd)
    assert text.code == 0 and "Nothing to destroy for demo" in text.err


def test_apply_refuses_target_on_a_saved_plan(lab_spec: Path, tmp_path: Path) -> None:
    planfile = tmp_path / "net.plan"
    assert run_cli("plan", str(lab_spec), "--workdir", str(tmp_path / "wd"), "-out", str(planfile)).code == 0
    res = run_cli("apply", str(planfile), "-target=alpha")
    assert res.code == 1 and "-target cannot change a saved plan" in res.err
