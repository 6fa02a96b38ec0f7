"""`cloudcast plan -out FILE` then `cloudcast apply FILE`: Terraform applies exactly the saved
plan (a copy kept beside FILE, not the work dir's latest), and a saved plan whose state moved on
is refused with the way out. Real Terraform (lab provider), real lab hosts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.lab.labkit import LabNet, lab_prefix_fixture

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabNet]:
    for prefix in lab_prefix_fixture():
        yield LabNet(prefix, tmp_path_factory.mktemp("saved"), "lab.json")


def test_apply_of_a_saved_plan_applies_that_plan_once(net: LabNet) -> None:
    planfile = net.tmp / "net.plan"
    wd = str(net.workdir)
    res = net.cli("plan", str(net.spec), "--workdir", wd, "-out", str(planfile), "-detailed-exitcode")
    assert res.code == 2, res.err[-3000:]
    saved = planfile.with_name("net.plan.tfplan")
    assert saved.is_file() and saved.stat().st_mode & 0o777 == 0o600
    kept = saved.read_bytes()
    # a later plan rewrites the work dir's plan, never the saved copy
    assert net.cli("plan", str(net.spec), "--workdir", wd, "-detailed-exitcode").code == 2
    assert saved.read_bytes() == kept

    res = net.cli("apply", str(planfile))
    assert res.code == 0, res.err[-3000:]
    assert f"using the saved plan {saved}" in res.err
    assert "Apply complete!" in res.err and "Apply complete: demo is up." in res.out
    assert "pairs reachable over the overlay" in res.out

    again = net.cli("apply", str(planfile))
    assert again.code == 1
    assert "Saved plan is stale" in again.err, again.err[-2000:]
    assert "run `cloudcast plan -out FILE` again" in again.err
    assert "Traceback" not in again.err
