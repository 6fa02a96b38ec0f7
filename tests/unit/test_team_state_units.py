"""Pure parts of the team-state and AWS-lifecycle fixes (the real runs are in tests/terraform)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cloudcast.pipeline.context import Context, aws_sites, remote_state
from cloudcast.plan import build_plan
from cloudcast.spec import load_spec, parse_spec
from cloudcast.state import State, WorkDir, load_state, save_state
from cloudcast.terraform.compile import compile_root
from cloudcast.terraform.runner import lock_error

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAvS3yiaVT3L68Ud/K3yVmaI9JOZChY2Af7rEb3HhpK6 test"

LOCK_DETAIL = (
    "Error acquiring the state lock: Error message: operation error S3: PutObject, https response error "
    "StatusCode: 412, api error PreconditionFailed: At least one of the pre-conditions you specified did "
    "not hold Lock Info: ID: cdf0bee6-83e6-11d5-2d6e-65221bb4ea5c Path: bkt/team/terraform.tfstate "
    "Operation: OperationTypeApply Who: alice@laptop Version: 1.11.4 Created: 2026-11-22 12:19:09.035022511 "
    "+0000 UTC Info: Terraform acquires a state lock to protect the state from being written by multiple "
    "users at the same time."
)


def test_lock_error_names_holder_operation_and_unlock_command() -> None:
    err = lock_error(LOCK_DETAIL, Path("/w/terraform"))
    assert err is not None
    assert err.message == (
        "the Terraform state (bkt/team/terraform.tfstate) is locked: alice@laptop is running apply "
        "since 2026-11-22 12:19:09 +0000 UTC (lock ID cdf0bee6-83e6-11d5-2d6e-65221bb4ea5c)"
    )
    assert err.hint is not None
    assert "terraform force-unlock cdf0bee6-83e6-11d5-2d6e-65221bb4ea5c` in /w/terraform" in err.hint
    assert lock_error("Invalid provider configuration", Path("/w")) is None


def test_removed_aws_site_keeps_its_provider_until_destroyed(tmp_path: Path) -> None:
    spec = load_spec(EXAMPLES / "cloudcaster-hub.json")
    data: dict[str, Any] = spec.model_dump(mode="json", by_alias=True)
    data["sites"] = [s for s in data["sites"] if s["name"] == "aws-east"]
    east_only = parse_spec(data)
    plan, _ = build_plan(east_only)
    retired = {"aws-east": "us-east-1", "aws-west": "us-west-2"}  # as recorded in state
    path = compile_root(east_only, plan, tmp_path, ssh_public_key=KEY, environ={}, retired_aws=retired)
    root = json.loads(path.read_text())
    assert [(p["alias"], p["region"]) for p in root["provider"]["aws"]] == [
        ("site_aws_east", "us-east-1"),
        ("site_aws_west", "us-west-2"),
    ]
    assert set(root["module"]) == {"site_aws_east"}
    assert aws_sites(plan) == {"aws-east": "us-east-1"}


def test_state_remembers_aws_sites(tmp_path: Path) -> None:
    wd = WorkDir(tmp_path)
    save_state(wd, State(aws_sites={"aws-west": "us-west-2"}))
    assert load_state(wd).aws_sites == {"aws-west": "us-west-2"}


def test_s3_backend_puts_cloudcast_state_beside_terraforms(tmp_path: Path) -> None:
    spec = parse_spec(
        {
            "name": "team",
            "state": {"backend": "s3", "bucket": "bkt", "region": "eu-west-1", "key": "nets/team/"},
            "sites": [{"name": "lab", "provider": "lab", "nodes": [{"name": "a"}]}],
        }
    )
    remote = remote_state(spec, {"AWS_SECRET_ACCESS_KEY": "s3cr3t", "AWS_ENDPOINT_URL": "http://127.0.0.1:1"})
    assert remote is not None
    assert (remote.bucket, remote.key, remote.region) == ("bkt", "nets/team/cloudcast.state.json", "eu-west-1")
    assert remote.endpoint == "http://127.0.0.1:1"
    assert "s3cr3t" not in repr(remote)  # credentials stay out of reprs and logs
    local = parse_spec({"name": "solo", "sites": [{"name": "lab", "provider": "lab", "nodes": [{"name": "a"}]}]})
    assert remote_state(local, {}) is None


def test_context_uses_the_remote_store(tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({
        "name": "team",
        "state": {"backend": "s3", "bucket": "bkt", "region": "eu-west-1"},
        "sites": [{"name": "lab", "provider": "lab", "nodes": [{"name": "a"}]}],
    }))
    ctx = Context.load(path, environ={}, workdir=tmp_path / "wd")
    assert ctx.workdir.remote is not None and ctx.workdir.remote.key == "team/cloudcast.state.json"
    rehearsal = Context.load(path, environ={}, workdir=tmp_path / "wd", rehearsal=True)
    assert rehearsal.workdir.remote is None  # a lab rehearsal never touches the team's bucket


def test_the_s3_version_read_travels_with_state_and_secrets_not_in_them(tmp_path: Path) -> None:
    from cloudcast.state import Secrets, ensure_psks, load_secrets, save_secrets

    wd = WorkDir(tmp_path)
    state = State(aws_sites={"aws-a": "us-east-1"}, etag='"v1"')
    assert "etag" not in state.to_dict() and state == State(aws_sites={"aws-a": "us-east-1"})
    save_state(wd, state)  # no remote: the local file alone, the version untouched
    assert state.etag == '"v1"' and "v1" not in wd.state_file.read_text()
    assert load_state(wd).etag is None
    plan, _ = build_plan(load_spec(EXAMPLES / "lab.json"))
    kept, made = ensure_psks(plan, Secrets(etag='"s1"'))
    assert made == len(plan.pairs()) and kept.etag == '"s1"'  # the next write names what was read
    assert "s1" not in repr(kept) and all(k not in repr(kept) for k in kept.psk.values())
    save_secrets(wd, kept)
    assert "s1" not in wd.secrets_file.read_text() and load_secrets(wd).etag is None


def test_a_lost_conditional_write_says_which_object_and_what_happened() -> None:
    from cloudcast.errors import StateError
    from cloudcast.state import RemoteState, StateConflictError

    remote = RemoteState(bucket="bkt", key="team/cloudcast.state.json", region="eu-west-1")
    cases = {
        ("PreconditionFailed", False): "the S3 state s3://bkt/team/cloudcast.state.json changed since this run read it",
        ("PreconditionFailed", True): "the S3 state s3://bkt/team/cloudcast.state.json was created by another run "
        "after this one found none",
        ("NoSuchKey", False): "the S3 state s3://bkt/team/cloudcast.state.json was removed since this run read it "
        "(another destroy?)",
        ("ConditionalRequestConflict", False): "the S3 state s3://bkt/team/cloudcast.state.json was being written "
        "by another run at the same time",
    }
    for (code, created), start in cases.items():
        err = remote._conflict(remote.key, code, created=created)
        assert isinstance(err, StateConflictError) and isinstance(err, StateError)
        assert err.message == f"{start} (another apply?): nothing was written"
        assert err.hint == "re-run to converge: the next run starts from what the other run wrote"
    secrets = remote._conflict(remote.secrets_key, "412", created=False)
    assert secrets.message.startswith("the S3 secrets s3://bkt/team/cloudcast.secrets.json changed")


def test_paths_of_the_checkout_travel_relative_others_stay_absolute(tmp_path: Path) -> None:
    from cloudcast.state.paths import portable, resolved

    made, fresh = tmp_path / "job1" / "src", tmp_path / "job2" / "clone"
    spec_dir, workdir = made / "nets", made / "nets" / ".cloudcast" / "team"
    roots = (spec_dir, workdir)
    assert portable(spec_dir / "team.json", made, roots) == "nets/team.json"
    assert portable(workdir, made, roots) == "nets/.cloudcast/team"
    assert portable(spec_dir / "team.json", made / "out", roots) == "../nets/team.json"
    assert portable(Path("/var/lib/cc"), made, roots) == "/var/lib/cc"  # chosen, not the checkout's
    # the same records read from a fresh clone name the clone's files
    assert resolved("nets/team.json", fresh) == fresh / "nets" / "team.json"
    assert resolved("../nets/team.json", fresh / "out") == fresh / "nets" / "team.json"
    assert resolved("/var/lib/cc", fresh) == Path("/var/lib/cc")
