"""Two applies from two work dirs racing for one S3 team state (moto over HTTP, no patching).

cloudcast's own objects (`<key>/cloudcast.state.json`, `<key>/cloudcast.secrets.json`) are
written with S3 conditional writes: `If-Match: <etag>` of the version the run read, or
`If-None-Match: *` when there was none. Of two runs that read the same version, one wins and
the other fails with one clear line and writes nothing; a re-run starts from the winner's
objects and converges. The secrets are settled (created, or the version read replaced) before
any host gets a key, so two runs can never hand the two ends of a pair different PSKs.

The CLI race disables Terraform's own lock (`use_lockfile: false`) so both runs get past
Terraform and race on cloudcast's objects alone; the spec has only static sites, so Terraform
makes nothing and no host is contacted (`--skip-bootstrap`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest

from cloudcast.pipeline.context import Context
from cloudcast.state import StateConflictError, ensure_psks, load_secrets, save_secrets, save_state
from tests.conftest import ROOT, stop_process

pytestmark = [pytest.mark.terraform, pytest.mark.timeout(300)]

REGION = "us-east-1"
NETWORK = "race"
STATE_KEY = f"{NETWORK}/cloudcast.state.json"
SECRETS_KEY = f"{NETWORK}/cloudcast.secrets.json"


class Race:
    """One bucket, one spec (and a bigger one), two work dirs: alice's and bob's."""

    def __init__(self, base: Path, env: Mapping[str, str]) -> None:
        self.base = base
        self.env = dict(env)
        self.bucket = f"cc-race-{uuid.uuid4().hex[:10]}"
        self.s3 = boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=REGION,
        )
        self.s3.create_bucket(Bucket=self.bucket)
        self.alice, self.bob = base / "alice", base / "bob"
        nodes = [{"name": f"n{i}", "ssh": {"host": "127.0.0.1", "port": 2200 + i}} for i in range(1, 4)]
        doc: dict[str, Any] = {
            "name": NETWORK,
            "network": {"overlay": "10.70.0.0/24", "topology": "mesh"},
            "state": {
                "backend": "s3",
                "bucket": self.bucket,
                "region": REGION,
                "use_lockfile": False,  # cloudcast's conditional writes alone keep the runs apart
                "endpoint": env["AWS_ENDPOINT_URL"],
            },
            "sites": [{"name": "home", "provider": "static", "nodes": nodes}],
        }
        (base / "spec").mkdir()
        self.spec = base / "spec" / "race.json"
        self.spec.write_text(json.dumps(doc, indent=1))
        doc["sites"][0]["nodes"].append({"name": "n4", "ssh": {"host": "127.0.0.1", "port": 2204}})
        self.bigger = base / "spec" / "race-bigger.json"
        self.bigger.write_text(json.dumps(doc, indent=1))

    def ctx(self, workdir: Path, spec: Path | None = None) -> Context:
        """What one `cloudcast apply` holds: its own spec load, work dir and S3 connection."""
        return Context.load(spec or self.spec, environ=self.env, workdir=workdir)

    def object(self, key: str) -> str:
        return str(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode())

    def objects(self) -> dict[str, str]:
        listed = self.s3.list_objects_v2(Bucket=self.bucket).get("Contents", [])
        return {o["Key"]: self.object(o["Key"]) for o in listed}

    def apply(self, workdir: Path, spec: Path) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "cloudcast", "apply", str(spec), "--workdir", str(workdir),
                   "--skip-bootstrap", "--auto-approve", "--skip-preflight"]
        env = {**self.env, "CI": "1", "PYTHONPATH": str(ROOT)}
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)

    def conflict(self, key: str, how: str) -> str:
        what = "secrets" if key == SECRETS_KEY else "state"
        return f"the S3 {what} s3://{self.bucket}/{key} {how} (another apply?): nothing was written"


@pytest.fixture
def race(cli_env: Mapping[str, str], tmp_path: Path) -> Iterator[Race]:
    yield Race(tmp_path, cli_env)


def _both(procs: dict[str, subprocess.Popen[bytes]]) -> dict[str, tuple[int, str]]:
    done: dict[str, tuple[int, str]] = {}
    try:
        for name, proc in procs.items():
            _, err = proc.communicate(timeout=180)
            done[name] = (proc.returncode, err.decode(errors="replace"))
    finally:
        for proc in procs.values():
            stop_process(proc)
    return done


def _race(race: Race, spec: Path, start: str | None) -> tuple[str, str]:
    """Alice's and Bob's applies started together from the S3 state `start` (None: none); the
    loser's name and its stderr. Both succeeding means they did not overlap (on a loaded
    machine one process can finish before the other has read anything): that round is run
    again from the same start, a few times."""
    seen = []
    for _ in range(ATTEMPTS):
        if start is None:
            race.s3.delete_object(Bucket=race.bucket, Key=STATE_KEY)
            for workdir in (race.alice, race.bob):
                (workdir / "cloudcast.state.json").unlink(missing_ok=True)
        else:
            race.s3.put_object(Bucket=race.bucket, Key=STATE_KEY, Body=start.encode())
        done = _both({"alice": race.apply(race.alice, spec), "bob": race.apply(race.bob, spec)})
        codes = sorted(code for code, _ in done.values())
        if codes == [0, 1]:
            return next((name, err) for name, (code, err) in done.items() if code == 1)
        assert codes == [0, 0], {name: err[-1500:] for name, (_, err) in done.items()}
        seen.append(codes)
    raise AssertionError(f"the two applies never overlapped in {ATTEMPTS} tries ({seen})")


ATTEMPTS = 3


def test_two_cli_applies_race_one_wins_the_other_says_so_and_a_rerun_converges(race: Race) -> None:
    # both start from no state at all: both write with If-None-Match: *
    loser, err = _race(race, race.spec, None)
    line = race.conflict(STATE_KEY, "was created by another run after this one found none")
    assert f"cloudcast: error: {line}" in err, err[-2000:]
    assert "re-run to converge" in err and "Traceback" not in err
    lost = race.alice if loser == "alice" else race.bob
    assert not (lost / "cloudcast.state.json").exists()  # nothing half-written, not even locally
    start = race.object(STATE_KEY)
    won = json.loads(start)
    assert sorted(won["allocations"]["overlay"]) == ["n1", "n2", "n3"]

    # both read the winner's state, both grow the network: both write with If-Match
    loser, err = _race(race, race.bigger, start)
    assert f"cloudcast: error: {race.conflict(STATE_KEY, 'changed since this run read it')}" in err, err[-2000:]
    kept = json.loads(race.object(STATE_KEY))
    assert kept["allocations"]["overlay"]["n1"] == won["allocations"]["overlay"]["n1"]  # nothing lost

    # the loser runs again: it starts from the winner's state, changes nothing, succeeds
    again = _both({loser: race.apply(race.alice if loser == "alice" else race.bob, race.bigger)})
    assert again[loser][0] == 0, again[loser][1][-2000:]
    converged = json.loads(race.object(STATE_KEY))
    assert converged["allocations"] == kept["allocations"]
    # no object of the team's names a path of the machines that wrote it (plans travel)
    for key, text in race.objects().items():
        assert str(race.base) not in text, key


def test_state_writes_of_two_runs_one_wins_the_other_fails_clearly(race: Race) -> None:
    alice, bob = race.ctx(race.alice), race.ctx(race.bob)
    (_, a_state), (_, b_state) = alice.plan(), bob.plan()  # both read: nothing there yet
    save_state(alice.workdir, a_state)
    assert a_state.etag == race.s3.head_object(Bucket=race.bucket, Key=STATE_KEY)["ETag"]
    with pytest.raises(StateConflictError) as lost:
        save_state(bob.workdir, b_state)
    assert lost.value.message == race.conflict(STATE_KEY, "was created by another run after this one found none")
    assert lost.value.hint == "re-run to converge: the next run starts from what the other run wrote"
    assert not bob.workdir.state_file.exists()

    # a run keeps writing the version it wrote last; the other run's stale version cannot
    a_state.routes = [{"site": "home", "table": "rtb-1", "cidr": "10.70.0.0/24", "eni": "eni-1"}]
    save_state(alice.workdir, a_state)
    (_, b_state) = race.ctx(race.bob).plan()
    (_, stale) = race.ctx(race.alice).plan()
    b_state.aws_sites = {"aws-x": REGION}  # bob's run records something alice's did not read
    save_state(bob.workdir, b_state)
    with pytest.raises(StateConflictError) as changed:
        save_state(alice.workdir, stale)
    assert changed.value.message == race.conflict(STATE_KEY, "changed since this run read it")
    kept = json.loads(race.object(STATE_KEY))
    assert kept["routes"] == a_state.routes and kept["aws_sites"] == {"aws-x": REGION}  # both updates

    # a run that read a state which is gone since (another work dir destroyed it) is told so
    race.s3.delete_object(Bucket=race.bucket, Key=STATE_KEY)
    with pytest.raises(StateConflictError) as gone:
        save_state(bob.workdir, b_state)
    assert gone.value.message == race.conflict(STATE_KEY, "was removed since this run read it (another destroy?)")


def test_both_runs_agree_on_every_psk(race: Race) -> None:
    alice, bob = race.ctx(race.alice), race.ctx(race.bob)
    plan, _ = alice.plan()
    # both read no secrets and make keys for every pair: different ones
    a_keys, a_made = ensure_psks(plan, load_secrets(alice.workdir))
    b_keys, b_made = ensure_psks(plan, load_secrets(bob.workdir))
    assert a_made == b_made == 3 and a_keys.psk != b_keys.psk
    save_secrets(alice.workdir, a_keys)
    with pytest.raises(StateConflictError) as lost:
        save_secrets(bob.workdir, b_keys)  # bob stops here: before any host of his gets a key
    assert lost.value.message == race.conflict(SECRETS_KEY, "was created by another run after this one found none")
    assert not bob.workdir.secrets_file.exists()

    # bob's re-run reads alice's keys, makes none, and settles them (his write names her version)
    b_keys, b_made = ensure_psks(plan, load_secrets(race.ctx(race.bob).workdir))
    assert b_made == 0 and b_keys.psk == a_keys.psk
    save_secrets(bob.workdir, b_keys)

    # the network grows, both runs race again: the new pairs' keys are the winner's, for both
    bigger, _ = race.ctx(race.alice, race.bigger).plan()
    a_keys, a_made = ensure_psks(bigger, load_secrets(race.ctx(race.alice).workdir))
    b_keys, b_made = ensure_psks(bigger, load_secrets(race.ctx(race.bob).workdir))
    assert a_made == b_made == 3
    save_secrets(bob.workdir, b_keys)
    with pytest.raises(StateConflictError) as changed:
        save_secrets(alice.workdir, a_keys)
    assert changed.value.message == race.conflict(SECRETS_KEY, "changed since this run read it")
    a_keys, a_made = ensure_psks(bigger, load_secrets(race.ctx(race.alice).workdir))
    assert a_made == 0
    save_secrets(alice.workdir, a_keys)
    shared = json.loads(race.object(SECRETS_KEY))["psk"]
    assert a_keys.psk == b_keys.psk == shared and len(shared) == 6
    head = race.s3.head_object(Bucket=race.bucket, Key=SECRETS_KEY)
    assert head["ServerSideEncryption"] == "AES256"

