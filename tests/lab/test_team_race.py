"""Issue 12 item 4 on the lab: two applies from two work dirs share one S3 team state (moto on
127.0.0.1) and race; one wins, the other fails with one clear line before it touches a host, a
re-run converges, and both ends of every pair hold the same preshared key (verify proves the
tunnels, `wg show` proves the keys, the bucket's secrets agree).

Terraform's own lock is off (`use_lockfile: false`) so both runs get past Terraform (which has
nothing to change once the hosts exist) and race on cloudcast's state and secrets alone.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.conftest import ROOT, stop_process
from tests.lab.labkit import LabNet, lab_prefix_fixture

pytestmark = [pytest.mark.lab, pytest.mark.timeout(900)]

REGION = "us-east-1"
NODES = ("n1", "n2", "n3", "n4")
CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION,
         "AWS_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true",
         "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


class Team(LabNet):
    def __init__(self, prefix: str, tmp: Path, moto: str) -> None:
        self.bucket = f"cc-labrace-{uuid.uuid4().hex[:8]}"
        self.s3 = boto3.client("s3", endpoint_url=moto, region_name=REGION, aws_access_key_id="testing",
                               aws_secret_access_key="testing")
        self.s3.create_bucket(Bucket=self.bucket)
        spec: dict[str, Any] = {
            "name": "labrace",
            "network": {"overlay": "10.16.0.0/24", "domain": "lab.internal"},
            "state": {"backend": "s3", "bucket": self.bucket, "region": REGION, "use_lockfile": False,
                      "endpoint": moto},
            "sites": [{"name": "lab", "provider": "lab",
                       "nodes": [{"name": n, **({"behind_nat": True} if n == "n4" else {})} for n in NODES]}],
        }
        super().__init__(prefix, tmp, spec)
        self.alice, self.bob = tmp / "alice", tmp / "bob"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.env.update(CREDS, CLOUDCAST_LAB_PREFIX=prefix, CI="1", PYTHONPATH=str(ROOT))

    def run(self, *argv: str, workdir: Path) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "cloudcast", *argv, str(self.spec), "--workdir", str(workdir)]
        return subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)

    def wait(self, procs: dict[str, subprocess.Popen[bytes]]) -> dict[str, tuple[int, str, str]]:
        done: dict[str, tuple[int, str, str]] = {}
        try:
            for name, proc in procs.items():
                out, err = proc.communicate(timeout=600)
                done[name] = (proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))
        finally:
            for proc in procs.values():
                stop_process(proc)
        return done

    def psks(self) -> dict[str, dict[str, str]]:
        """Per host: peer public key -> the preshared key the host holds for it."""
        found = {}
        for host in NODES:
            lines = self.sh(host, "wg show cc0 preshared-keys").stdout.split("\n")
            found[host] = dict(line.split("\t") for line in lines if "\t" in line)
        return found

    def public_keys(self) -> dict[str, str]:
        return {host: self.sh(host, "wg show cc0 public-key").stdout.strip() for host in NODES}


@pytest.fixture(scope="module")
def team(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    for prefix in lab_prefix_fixture():
        t = Team(prefix, tmp_path_factory.mktemp("labrace"), moto_server)
        try:
            yield t
        finally:
            t.wait({"down": t.run("destroy", "--auto-approve", workdir=t.alice)})


def test_two_applies_race_one_wins_a_rerun_converges_and_every_pair_shares_one_psk(team: Team) -> None:
    # the hosts first (Terraform), so the race is on cloudcast's own state and secrets
    [(code, _, err)] = team.wait({"hosts": team.run("apply", "--auto-approve", "--skip-bootstrap",
                                                   workdir=team.alice)}).values()
    assert code == 0, err[-3000:]

    raced = team.wait({"alice": team.run("apply", "--auto-approve", workdir=team.alice),
                       "bob": team.run("apply", "--auto-approve", workdir=team.bob)})
    assert sorted(code for code, _, _ in raced.values()) == [0, 1], {n: e[-2000:] for n, (_, _, e) in raced.items()}
    loser = next(name for name, (code, _, _) in raced.items() if code == 1)
    err = raced[loser][2]
    # the secrets are settled first (before any host gets a key), so the loser may lose there
    lost_at = re.search(rf"cloudcast: error: the S3 (state|secrets) s3://{team.bucket}/labrace/cloudcast\.\1\.json ", err)
    assert lost_at, err[-2000:]
    assert "(another apply?): nothing was written" in err and "re-run to converge" in err
    assert "Traceback" not in err

    lost = team.alice if loser == "alice" else team.bob
    [(code, out, err)] = team.wait({"again": team.run("apply", "--auto-approve", workdir=lost)}).values()
    assert code == 0, err[-3000:]
    assert "Apply complete: labrace is up." in out

    for workdir in (team.alice, team.bob):  # both checkouts see a working network
        [(code, out, err)] = team.wait({"verify": team.run("verify", workdir=workdir)}).values()
        assert code == 0, out[-2000:] + err[-2000:]

    keys, held = team.public_keys(), team.psks()
    shared = json.loads(team.s3.get_object(Bucket=team.bucket, Key="labrace/cloudcast.secrets.json")["Body"].read())
    for a in NODES:
        for b in NODES:
            if a < b:
                assert held[a][keys[b]] == held[b][keys[a]], f"{a} and {b} hold different PSKs"
                assert held[a][keys[b]] == shared["psk"][f"{a}--{b}"]
