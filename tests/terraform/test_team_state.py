"""Team state: `state.backend: s3` against moto, shared by two work dirs.

Terraform's state lives in the bucket (`use_lockfile: true`, S3-native locking) and so does
cloudcast's own (`<key>/cloudcast.state.json`: allocations, owned routes, AWS sites), so a
second work dir (another person's checkout) plans the same network with no changes; the
secrets (preshared keys, IPsec CA key) are shared there too, encrypted at rest. The work dir
keeps local copies, known hosts and the run lock. Two concurrent applies: sharing a work dir,
cloudcast's own lock fires first; from two work dirs sharing the S3 state, Terraform's lock
fires (Terraform's default `-lock-timeout` is 0 s), and both say so clearly, fast.
Credentials are never written to any file cloudcast or Terraform leaves behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.conftest import ROOT, CliResult, run_cli, stop_process

from .conftest import CLI_ACCESS_KEY, CLI_SECRET_KEY, TfTimer

pytestmark = [pytest.mark.terraform, pytest.mark.timeout(300)]

NETWORK = "team"
REGION = "us-east-1"
OVERLAY = "10.60.0.0/24"


class Team:
    def __init__(self, base: Path, env: Mapping[str, str], timer: TfTimer) -> None:
        self.env = dict(env)
        self.timer = timer
        self.base = base
        self.bucket = f"cc-team-{uuid.uuid4().hex[:10]}"
        self.a, self.b = base / "alice", base / "bob"  # two work dirs: two people
        creds = {
            "endpoint_url": env["AWS_ENDPOINT_URL"],
            "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
            "region_name": REGION,
        }
        self.s3 = boto3.client("s3", **creds)
        self.ec2 = boto3.client("ec2", **creds)
        self.s3.create_bucket(Bucket=self.bucket)
        spec: dict[str, Any] = {
            "name": NETWORK,
            "network": {"overlay": OVERLAY, "topology": "gateways"},
            "ssh": {"private_key": "~/.ssh/id_ed25519", "sources": ["203.0.113.0/24"]},
            "state": {
                "backend": "s3",
                "bucket": self.bucket,
                "region": REGION,
                "use_lockfile": True,
                "endpoint": env["AWS_ENDPOINT_URL"],
            },
            "sites": [
                {"name": "aws-a", "provider": "aws", "region": REGION, "cidr": "10.61.0.0/24",
                 "nodes": [{"name": "gw-a", "role": "gateway"}]},
            ],
        }
        self.spec = base / "spec" / "team.json"
        self.spec.parent.mkdir()
        self.spec.write_text(json.dumps(spec, indent=1))
        spec["sites"][0]["nodes"].append({"name": "app-a"})
        self.bigger = base / "spec" / "team-bigger.json"
        self.bigger.write_text(json.dumps(spec, indent=1))
        self.destroyed = False

    def cli(self, *argv: str, workdir: Path, label: str | None = None) -> CliResult:
        args = [*argv, "--workdir", str(workdir)]
        if label is None:
            return run_cli(*args, environ=self.env)
        with self.timer(label):
            return run_cli(*args, environ=self.env)

    def objects(self) -> set[str]:
        return {o["Key"] for o in self.s3.list_objects_v2(Bucket=self.bucket).get("Contents", [])}

    def object(self, key: str) -> str:
        return str(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode())

    def ours(self) -> list[dict[str, Any]]:
        return [{"Name": "tag:cloudcast:network", "Values": [NETWORK]}]


@pytest.fixture(scope="module")
def team(cli_env: Mapping[str, str], tf_timer: TfTimer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    t = Team(tmp_path_factory.mktemp("team"), cli_env, tf_timer)
    try:
        yield t
    finally:
        if not t.destroyed:
            res = t.cli("destroy", str(t.bigger), "--auto-approve", workdir=t.a)
            print(f"teardown destroy exited {res.code}: {res.err[-2000:]}")


def test_apply_keeps_both_states_in_the_bucket(team: Team) -> None:
    res = team.cli("apply", str(team.spec), "--skip-bootstrap", "--auto-approve", "--skip-preflight", workdir=team.a, label="apply (s3 backend): 1 site")

    assert res.code == 0, res.err
    assert team.objects() == {f"{NETWORK}/terraform.tfstate", f"{NETWORK}/cloudcast.state.json"}  # no lock left
    tfstate = json.loads(team.object(f"{NETWORK}/terraform.tfstate"))
    assert any(r["type"] == "aws_instance" for r in tfstate["resources"])
    ours = json.loads(team.object(f"{NETWORK}/cloudcast.state.json"))
    assert [(r["site"], r["cidr"]) for r in ours["routes"]] == [("aws-a", OVERLAY)]
    assert ours["allocations"]["private"] == {"gw-a": "10.61.0.10"}
    assert ours["aws_sites"] == {"aws-a": REGION}
    assert not (team.a / "terraform" / "terraform.tfstate").exists()


def test_a_second_work_dir_sees_the_same_network(team: Team) -> None:
    res = team.cli("plan", str(team.spec), "--json", "--skip-preflight", "--skip-bootstrap", workdir=team.b)

    assert res.code == 0, res.err
    [summary] = [json.loads(line) for line in res.out.splitlines() if '"type": "plan"' in line]
    assert summary["resources"] == {"add": 0, "change": 0, "destroy": 0}
    assert summary["routes"] == []  # bob's checkout knows alice's routes are cloudcast's


def test_secrets_are_shared_through_the_bucket_encrypted(team: Team) -> None:
    from cloudcast.pipeline.context import remote_state
    from cloudcast.spec import load_spec
    from cloudcast.state.store import Secrets, WorkDir, load_secrets, save_secrets

    remote = remote_state(load_spec(team.spec), team.env)
    assert remote is not None
    alice, bob = WorkDir(team.a, remote), WorkDir(team.b, remote)
    assert load_secrets(bob).psk == {}  # nothing made yet
    save_secrets(alice, Secrets(psk={"gw-a--gw-b": "x" * 43 + "="}, ca_key="PEM"))
    shared = load_secrets(bob)  # another checkout gets the same keys, not new ones
    assert shared.psk == {"gw-a--gw-b": "x" * 43 + "="} and shared.ca_key == "PEM"
    key = f"{NETWORK}/cloudcast.secrets.json"
    assert team.s3.head_object(Bucket=team.bucket, Key=key)["ServerSideEncryption"] == "AES256"
    assert (team.a / "secrets.json").stat().st_mode & 0o777 == 0o600  # and a local copy


def test_concurrent_applies_fail_fast_with_a_clear_lock_message(team: Team) -> None:
    # Alice applies a bigger network (a new instance keeps Terraform busy for 10+ s) ...
    logs = team.base / "alice-apply.log"
    env = {**team.env, "CI": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "cloudcast", "apply", str(team.bigger), "--workdir", str(team.a),
               "--skip-bootstrap", "--auto-approve", "--skip-preflight"]
    with logs.open("wb") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        lock_key = f"{NETWORK}/terraform.tfstate.tflock"
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, logs.read_text()[-3000:]
            assert time.monotonic() < deadline, "alice's apply never took Terraform's lock"
            if lock_key in team.objects():
                try:
                    if json.loads(team.object(lock_key)).get("Operation") == "OperationTypeApply":
                        break
                except team.s3.exceptions.NoSuchKey:
                    pass
            time.sleep(0.2)

        # ... alice again, from the same work dir: cloudcast's own lock answers at once.
        start = time.monotonic()
        same = team.cli("apply", str(team.bigger), "--skip-bootstrap", "--auto-approve", "--skip-preflight", workdir=team.a)
        assert same.code == 1
        assert f"cloudcast: error: {team.a} is locked by another cloudcast run (pid {proc.pid})" in same.err
        assert time.monotonic() - start < 2

        # ... and bob, from his own work dir sharing the S3 state: Terraform's lock answers.
        start = time.monotonic()
        other = team.cli("apply", str(team.bigger), "--skip-bootstrap", "--auto-approve", "--skip-preflight", workdir=team.b)
        elapsed = time.monotonic() - start
        assert other.code == 1, other.err
        assert (
            f"cloudcast: error: the Terraform state ({team.bucket}/{NETWORK}/terraform.tfstate) is locked: "
        ) in other.err
        assert " is running apply since " in other.err
        assert "fix: wait for that run to finish and try again; if it died, release the lock with `terraform force-unlock " in other.err
        assert elapsed < 20, f"bob waited {elapsed:.1f} s for the lock"

        assert proc.wait(timeout=180) == 0, logs.read_text()[-3000:]
    finally:
        stop_process(proc)
    assert "Apply complete: team is up." in logs.read_text()
    assert f"{NETWORK}/terraform.tfstate.tflock" not in team.objects()


def _texts(path: Path) -> Iterator[tuple[str, bytes]]:
    """Every file under `path` (symlinked provider binaries aside), zip members opened."""
    for file in sorted(path.rglob("*")):
        if file.is_symlink() or not file.is_file():
            continue
        data = file.read_bytes()
        if zipfile.is_zipfile(file):
            with zipfile.ZipFile(file) as zf:
                for member in zf.namelist():
                    yield f"{file}!{member}", zf.read(member)
        yield str(file), data


def test_credentials_never_land_in_files(team: Team) -> None:
    scanned = 0
    for where in (team.a, team.b, team.spec.parent):
        for name, data in _texts(where):
            scanned += 1
            assert CLI_SECRET_KEY.encode() not in data, name
            assert CLI_ACCESS_KEY.encode() not in data, name
    assert scanned > 10
    # each run's own Terraform plan file is gone once applied: none is left to leak a credential
    assert not list((team.a / "terraform").glob("*.tfplan"))
    for key in team.objects():
        assert CLI_SECRET_KEY not in team.object(key), key
    assert os.stat(team.a / "cloudcast.state.json").st_mode & 0o077 == 0


def test_destroy_from_the_other_work_dir(team: Team) -> None:
    res = team.cli("destroy", str(team.bigger), "--auto-approve", workdir=team.b, label="destroy (s3 backend): 1 site")
    team.destroyed = res.code == 0

    assert res.code == 0, res.err
    assert team.ec2.describe_vpcs(Filters=team.ours())["Vpcs"] == []
    running = team.ec2.describe_instances(Filters=[*team.ours(), {"Name": "instance-state-name", "Values": ["pending", "running"]}])
    assert running["Reservations"] == []
    assert team.ec2.describe_addresses(Filters=team.ours())["Addresses"] == []
    assert f"{NETWORK}/cloudcast.state.json" not in team.objects()
    assert f"{NETWORK}/cloudcast.secrets.json" not in team.objects()
    assert json.loads(team.object(f"{NETWORK}/terraform.tfstate"))["resources"] == []
