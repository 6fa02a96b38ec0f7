"""The CLI as a CI pipeline sees it: Terraform's exit codes and flags, one JSON envelope, reports,
shell completion. Every `-json` record written here is also checked against the event schema
by `run_cli` (tests/conftest.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from cloudcast.cli.eventschema import LAB_TYPES, PAYLOADS, event_schema
from cloudcast.cli.main import build_parser
from cloudcast.errors import ExitStatus, PlanError, StateError, VerifyError
from cloudcast.inventory.hosts import Host, Inventory
from cloudcast.pipeline.context import Context
from cloudcast.pipeline.inspect import Checked
from cloudcast.pipeline.plan import resolve_targets
from cloudcast.plan import build_plan
from cloudcast.spec import load_spec
from cloudcast.state import WorkDir, locked
from cloudcast.terraform.runner import Terraform, build_args
from cloudcast.verify.probe import Probe, VerifyResult
from cloudcast.verify.status import NodeStatus, PeerStatus, StatusResult
from tests.conftest import EMITTED, EXAMPLES, run_cli

LAB = EXAMPLES / "lab.json"


def records(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


# --- exit codes and flags -------------------------------------------------------------------


def test_exit_codes_are_terraforms() -> None:
    assert (ExitStatus.OK, ExitStatus.ERROR, ExitStatus.CHANGES) == (0, 1, 2)
    assert ExitStatus.USAGE == ExitStatus.ERROR == 1  # never 2: that reads as "changes"
    assert ExitStatus.STALE == 2


def test_a_usage_error_exits_1_with_the_subcommands_usage_line() -> None:
    res = run_cli("plan", str(LAB), "--bogus")
    assert res.code == 1
    assert res.err.startswith("usage: cloudcast plan ")
    assert "cloudcast: error: unrecognized arguments: --bogus" in res.err
    missing = run_cli("plan")
    assert missing.code == 1 and "the following arguments are required: SPEC" in missing.err


def test_abbreviations_are_refused() -> None:
    res = run_cli("apply", str(LAB), "--auto")
    assert res.code == 1 and "unrecognized arguments: --auto" in res.err


def test_terraforms_single_dash_spellings_parse_like_the_double_dash_ones() -> None:
    parse = build_parser().parse_args
    single = parse(
        ["plan", "s.json", "-out=p", "-json", "-detailed-exitcode", "-lock-timeout=5s", "-parallelism=4",
         "-target=alpha", "-target", "lab"]
    )
    double = parse(
        ["plan", "s.json", "--out", "p", "--json", "--detailed-exitcode", "--lock-timeout", "5s",
         "--parallelism", "4", "--target", "alpha", "--target=lab"]
    )
    assert vars(single) == vars(double)
    assert (single.lock_timeout, single.parallelism, single.target) == ("5s", 4, ["alpha", "lab"])
    apply = parse(["apply", "s.json", "-auto-approve", "-json", "-target=alpha", "-lock-timeout=1m30s"])
    assert apply.auto_approve and apply.json and apply.target == ["alpha"] and apply.lock_timeout == "1m30s"
    assert parse(["destroy", "s.json", "-auto-approve", "-json"]).auto_approve
    assert parse(["status", "s.json", "-detailed-exitcode"]).detailed_exitcode
    verify = parse(["verify", "s.json", "-junit", "j.xml", "-metrics=m.prom"])
    assert (verify.junit, verify.metrics) == (Path("j.xml"), Path("m.prom"))


@pytest.mark.parametrize("value", ["soon", "5", "-1s", "2d", "25h"])
def test_a_bad_lock_timeout_is_a_usage_error(value: str) -> None:
    res = run_cli("plan", str(LAB), f"-lock-timeout={value}")
    assert res.code == 1 and "-lock-timeout" in res.err


def test_help_teaches_the_single_dash_spellings() -> None:
    text = build_parser()._subparsers._group_actions[0].choices["plan"].format_help()  # type: ignore[union-attr]
    assert "-detailed-exitcode, --detailed-exitcode" in text
    assert "0 no changes, 1 error, 2 changes" in text
    assert "-target=db1" in text


def test_terraform_gets_the_limits_and_targets() -> None:
    tf = Terraform(workdir=Path("."), binary="terraform", lock_timeout="5s", parallelism=3)
    assert tf._limits() == {"lock_timeout": "5s", "parallelism": 3}
    assert Terraform(workdir=Path("."), binary="t", lock_timeout="0s")._limits() == {}
    args = build_args("plan", out="p", targets=['module.lab.terraform_data.node["a"]'], lock_timeout="5s", parallelism=3)
    assert args[-3:] == ['-target=module.lab.terraform_data.node["a"]', "-lock-timeout=5s", "-parallelism=3"]


def test_targets_resolve_to_terraform_addresses_and_nodes() -> None:
    plan = build_plan(load_spec(LAB))[0]
    site = resolve_targets(plan, ["lab"])
    assert site.addresses == ("module.site_lab",) and site.nodes == ("alpha", "bravo", "charlie", "delta")
    node = resolve_targets(plan, ["charlie", "alpha", "charlie"])
    assert node.nodes == ("alpha", "charlie")
    assert node.addresses == ('module.site_lab.terraform_data.node["charlie"]', 'module.site_lab.terraform_data.node["alpha"]')
    with pytest.raises(PlanError, match="no node or site of that name") as err:
        resolve_targets(plan, ["alhpa"])
    assert err.value.hint == "did you mean 'alpha'?"


def test_the_work_dir_lock_waits_for_lock_timeout(tmp_path: Path) -> None:
    wd = WorkDir(tmp_path / "wd")
    ctx = Context.load(LAB, workdir=wd.root, lock_timeout="0s")
    with locked(wd), pytest.raises(StateError, match="locked by another cloudcast run") as err, ctx.locked():
        pass
    assert "-lock-timeout=DURATION" in (err.value.hint or "")

    ctx.lock_timeout = "300ms"
    started = time.monotonic()
    with locked(wd), pytest.raises(StateError, match=r"\(waited 300ms\)"), ctx.locked():
        pass
    assert time.monotonic() - started >= 0.3

    ctx.lock_timeout = "10s"
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with locked(wd):
            held.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)
    threading.Timer(0.4, release.set).start()
    started = time.monotonic()
    with ctx.locked():
        waited = time.monotonic() - started
    thread.join()
    assert 0.3 < waited < 5


# --- one JSON contract ----------------------------------------------------------------------


def test_the_event_schema_is_a_json_schema_with_every_type() -> None:
    res = run_cli("schema", "--events")
    assert res.code == 0
    schema = json.loads(res.out)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema == json.loads(json.dumps(event_schema()))
    assert set(schema["$defs"]) == set(PAYLOADS) | set(LAB_TYPES)


def test_validate_json_gives_diagnostics_with_spec_paths(tmp_path: Path) -> None:
    ok = run_cli("validate", str(LAB), "-json")
    assert ok.code == 0
    [valid] = records(ok.out)
    assert (valid["schema"], valid["type"], valid["valid"], valid["nodes"]) == ("cloudcast/v1", "validate", True, 4)

    spec = json.loads(LAB.read_text())
    spec["sites"][0]["cidr"] = "10.0.0.0/33"
    spec["sites"][0]["nodes"][1]["sizee"] = "x"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(spec))
    res = run_cli("validate", str(bad), "-json")
    assert res.code == 1
    validate, error = records(res.out)
    assert validate["type"] == "validate" and validate["valid"] is False and validate["error_count"] == 2
    paths = {d["path"] for d in validate["diagnostics"]}  # type: ignore[union-attr]
    assert paths == {"sites[0].cidr", "sites[0].nodes[1].sizee"}
    assert (error["type"], error["error"], error["exit_status"]) == ("error", "SpecError", 1)
    assert "sites[0].cidr" in res.err  # people still read the problems on stderr


def test_errors_are_records_too() -> None:
    usage = run_cli("plan", str(LAB), "-json", "--bogus")
    assert usage.code == 1
    [error] = records(usage.out)
    assert error["type"] == "error" and error["error"] == "UsageError" and error["exit_status"] == 1
    missing = run_cli("verify", "/nonexistent/spec.json", "-json")
    assert missing.code == 1 and records(missing.out)[-1]["type"] == "error"


def test_a_failed_apply_writes_its_matrix_as_a_record(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import cloudcast.pipeline.apply as pipeline_apply

    def fail(*_: object, **__: object) -> None:
        raise VerifyError("1 pairs cannot reach each other: a->b", details="MATRIX", records=[("verify", bad_matrix().to_dict())])

    monkeypatch.setattr(pipeline_apply, "apply", fail)
    res = run_cli("apply", str(LAB), "-auto-approve", "-json", "--workdir", str(tmp_path))
    assert res.code == 1
    verify, error = records(res.out)
    assert verify["type"] == "verify" and verify["ok"] is False and error["error"] == "VerifyError"
    assert "MATRIX" in res.err and "MATRIX" not in res.out  # stdout stays JSON lines
    text = run_cli("apply", str(LAB), "-auto-approve", "--workdir", str(tmp_path))
    assert "MATRIX" in text.out and "cloudcast: error: 1 pairs cannot reach" in text.err


def test_progress_is_a_record() -> None:
    import io

    from rich.console import Console

    from cloudcast.cli.progress import JsonReporter

    buf = io.StringIO()
    JsonReporter(Console(file=buf, width=80)).event("alpha", "bootstrap", "a very long message " * 10)
    [line] = buf.getvalue().splitlines()  # never wrapped
    record = json.loads(line)
    jsonschema.validate(record, event_schema())
    assert (record["type"], record["host"], record["stage"]) == ("progress", "alpha", "bootstrap")


# --- verify reports, status, output ---------------------------------------------------------


def bad_matrix(*, reach: bool = False, mtu: bool = False) -> VerifyResult:
    names = ["alpha", "bravo"]
    r = VerifyResult(nodes=names, mtu=1420)
    r.matrix = {"alpha": {"bravo": Probe(True, 0.4, True)}, "bravo": {"alpha": Probe(True, 0.4, True)}}
    if not reach:
        r.matrix["bravo"]["alpha"] = Probe(False, error="no reply")
    if not mtu:
        r.matrix["alpha"]["bravo"] = Probe(True, 0.4, False)
    return r


@pytest.fixture
def fake_verify(monkeypatch: pytest.MonkeyPatch) -> list[VerifyResult]:
    import cloudcast.pipeline.inspect as inspect

    plan = build_plan(load_spec(LAB))[0]
    results: list[VerifyResult] = []

    def run_verify(ctx: Context, *, with_status: bool = False) -> Checked:
        live = StatusResult([NodeStatus("alpha", True, (PeerStatus("bravo", "k", None, 5, 1, 2),))])
        return Checked(plan, results.pop(0), live if with_status else None)

    monkeypatch.setattr(inspect, "run_verify", run_verify)
    return results


def test_verify_writes_junit_and_metrics_and_fails_on_mtu(fake_verify: list[VerifyResult], tmp_path: Path) -> None:
    junit, metrics = tmp_path / "verify.xml", tmp_path / "verify.prom"
    args = ("verify", str(LAB), "--workdir", str(tmp_path), "-junit", str(junit), "-metrics", str(metrics))

    fake_verify.append(bad_matrix(reach=True, mtu=True))
    assert run_cli(*args).code == 0
    assert ET.parse(junit).getroot().get("failures") == "0"
    assert 'cloudcast_pair_handshake_age_seconds{network="demo",src="alpha",dst="bravo"} 5' in metrics.read_text()

    fake_verify.append(bad_matrix(reach=True))  # only the don't-fragment probe lost
    res = run_cli(*args, "-json")
    assert res.code == 1
    verify, error = records(res.out)
    assert verify["ok"] is False and verify["failed_pairs"] == [] and verify["mtu_failed_pairs"] == [["alpha", "bravo"]]
    assert "MTU 1420 does not fit on 1 pairs" in str(error["message"])
    assert ET.parse(junit).getroot().get("failures") == "1"
    assert 'cloudcast_verify_ok{network="demo"} 0' in metrics.read_text()

    fake_verify.append(bad_matrix())
    res = run_cli(*args)
    assert res.code == 1 and "1 pairs cannot reach each other: bravo->alpha" in res.err
    assert "1/2 pairs reachable" in res.out  # the matrix, for people


def test_status_detailed_exitcode_is_2_for_a_stale_peer(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import cloudcast.pipeline.inspect as inspect

    fresh = PeerStatus("bravo", "k", "198.19.0.12:51871", 30, 1, 2)
    stale = PeerStatus("charlie", "k2", None, None, 0, 0)
    answers = [StatusResult([NodeStatus("alpha", True, (fresh,))]), StatusResult([NodeStatus("alpha", True, (fresh, stale))])]
    monkeypatch.setattr(inspect, "run_status", lambda ctx: answers[0])
    base = ("status", str(LAB), "--workdir", str(tmp_path))
    assert run_cli(*base, "-detailed-exitcode").code == 0
    answers.pop(0)
    assert run_cli(*base).code == 0  # without the flag, stale is no error
    res = run_cli(*base, "-detailed-exitcode", "-json")
    assert res.code == 2
    [status] = records(res.out)
    assert status["type"] == "status" and status["stale"] == [["alpha", "charlie"]]


def test_output_ssh_config_names_the_recorded_host_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import cloudcast.pipeline.inspect as inspect

    plan = build_plan(load_spec(LAB))[0]
    hosts = tuple(
        Host(n.name, n.site, "lab", f"198.19.0.{10 + i}", 22, "root", "/k/id_ed25519", None, None)
        for i, n in enumerate(plan.nodes)
    )
    monkeypatch.setattr(inspect, "live_hosts", lambda ctx: (plan, Inventory(hosts, {})))
    res = run_cli("output", str(LAB), "--workdir", str(tmp_path), "--format", "ssh-config")
    assert res.code == 0, res.err
    known = (tmp_path / "known_hosts").resolve()
    blocks = res.out.split("Host ")[1:]
    assert len(blocks) == 4
    for block in blocks:
        assert f"  UserKnownHostsFile {known}\n" in block and "  StrictHostKeyChecking yes\n" in block
    default = run_cli("output", str(LAB), "--workdir", str(tmp_path))
    [record] = records(default.out)
    assert record["type"] == "output" and [h["name"] for h in record["hosts"]] == ["alpha", "bravo", "charlie", "delta"]  # type: ignore[union-attr]
    text = run_cli("output", str(LAB), "--workdir", str(tmp_path), "--format", "hosts", "-json")
    assert "alpha.lab.internal" in str(records(text.out)[0]["text"])


# --- completion -----------------------------------------------------------------------------


def _complete(script: str, *words: str) -> list[str]:
    line = " ".join(f"'{w}'" for w in words)
    program = f'{script}\nCOMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; _cloudcast; printf "%s\\n" "${{COMPREPLY[@]}}"\n'
    out = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30, check=True)
    return [w for w in out.stdout.splitlines() if w]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completion_follows_the_argparse_tree(tmp_path: Path) -> None:
    res = run_cli("completion", "bash")
    assert res.code == 0
    script = res.out
    assert {"plan", "apply", "lab", "completion"} <= set(_complete(script, "cloudcast", ""))
    assert _complete(script, "cloudcast", "pl") == ["plan"]
    assert {"-detailed-exitcode", "-target", "-lock-timeout"} <= set(_complete(script, "cloudcast", "plan", "-"))
    assert _complete(script, "cloudcast", "output", "spec.json", "--format", "ss") == ["ssh-config"]
    assert "host-up" in _complete(script, "cloudcast", "lab", "ho")
    assert _complete(script, "cloudcast", "lab", "host-up", "x", "--nat", "") == ["none", "nat", "double"]
    assert _complete(script, "cloudcast", "completion", "") == ["bash", "zsh"]


def test_zsh_completion_has_every_command_with_its_help() -> None:
    res = run_cli("completion", "zsh")
    assert res.code == 0
    assert res.out.startswith("#compdef cloudcast\n")
    assert "compdef _cloudcast cloudcast" in res.out
    assert "plan:show what apply would change" in res.out
    assert "-detailed-exitcode:exit 0 no changes, 1 error, 2 changes" in res.out
    if shutil.which("zsh"):
        check = subprocess.run(["zsh", "-n"], input=res.out, capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr


def test_every_record_this_suite_wrote_was_checked() -> None:
    # run_cli validated each record as it was written; here: that it did see some
    assert EMITTED and all(record["schema"] == "cloudcast/v1" for _, record in EMITTED)
