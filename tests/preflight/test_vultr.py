"""Vultr preflight: urllib against a local server replaying API v2 responses."""

from __future__ import annotations

import pytest

from cloudcast.preflight import PreflightFailed, preflight
from tests.preflight.conftest import ReplayServer
from tests.preflight.helpers import VULTR_KEY, make_spec, node, site


def fails(spec_sites: list[dict[str, object]], env: dict[str, str]) -> PreflightFailed:
    with pytest.raises(PreflightFailed) as caught:
        preflight(make_spec(*spec_sites), env)
    return caught.value


def test_all_good(vultr_env: dict[str, str], vultr_api: ReplayServer) -> None:
    spec = make_spec(
        site(
            "vultr-nj",
            "vultr",
            "ewr",
            node("vu1"),
            node("vu2", size="vc2-2c-4gb", image="2284"),
            node("vu3", image="docker"),
        ),
    )
    report = preflight(spec, vultr_env)

    assert report.problems == []
    assert report.lines() == [
        "ok: vultr: VULTR_API_KEY valid",
        "ok: sites[0] (vultr-nj): region 'ewr' exists",
        "ok: sites[0] (vultr-nj): plan 'vc2-1c-1gb' exists and offered in 'ewr' (nodes vu1, vu3)",
        "ok: sites[0] (vultr-nj): plan 'vc2-2c-4gb' exists and offered in 'ewr' (node vu2)",
        "ok: sites[0] (vultr-nj): OS id 1743 exists (Ubuntu 22.04 LTS x64; node vu1)",
        "ok: sites[0] (vultr-nj): OS id 2284 exists (Ubuntu 24.04 LTS x64; node vu2)",
        "ok: sites[0] (vultr-nj): marketplace image 'docker' exists (node vu3)",
    ]
    assert all(seen.authorized and seen.method == "GET" for seen in vultr_api.seen)
    assert vultr_api.paths() == ["/v2/account", "/v2/regions", "/v2/plans", "/v2/os", "/v2/applications"]
    assert "per_page=500" in vultr_api.seen[1].query


def test_bad_key(vultr_env: dict[str, str]) -> None:
    wrong = "VULTRWRONGKEY00000000000000000000000"
    err = fails([site("vultr-nj", "vultr", "ewr")], {**vultr_env, "VULTR_API_KEY": wrong})

    assert err.problems == ["vultr: VULTR_API_KEY was rejected (401: Invalid API token.)"]
    assert wrong not in err.message and all(wrong not in line for line in err.report.lines())


def test_key_not_set() -> None:
    err = fails([site("vultr-nj", "vultr", "ewr")], {})

    assert err.problems == ["vultr: VULTR_API_KEY is not set"]


def test_plan_not_offered_in_the_region(vultr_env: dict[str, str]) -> None:
    err = fails([site("vultr-nj", "vultr", "ewr", node("vu1", size="vhf-1c-1gb"))], vultr_env)

    assert err.problems == [
        "sites[0] (vultr-nj): plan 'vhf-1c-1gb' (node vu1) is not offered in region 'ewr' (offered in: ams, fra, sgp)"
    ]


def test_unknown_region_plan_and_os(vultr_env: dict[str, str]) -> None:
    err = fails([site("vultr-x", "vultr", "ewrr", node("vu1", size="vc2-1c-1g", image="9999"))], vultr_env)

    assert err.problems == [
        "sites[0] (vultr-x): region 'ewrr' does not exist; did you mean 'ewr'?",
        "sites[0] (vultr-x): plan 'vc2-1c-1g' (node vu1) does not exist; did you mean 'vc2-1c-1gb'?",
        "sites[0] (vultr-x): OS id 9999 (node vu1) does not exist (see GET /v2/os)",
    ]


def test_unknown_marketplace_image(vultr_env: dict[str, str]) -> None:
    err = fails([site("vultr-nj", "vultr", "ewr", node("vu1", image="dokcer"))], vultr_env)

    assert err.problems == [
        "sites[0] (vultr-nj): image 'dokcer' (node vu1) is neither an OS id nor a marketplace image id; "
        "did you mean 'docker'?"
    ]


def test_unreachable_api() -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {"VULTR_API_KEY": VULTR_KEY, "VULTR_API_URL": f"http://127.0.0.1:{port}/v2"}
    err = fails([site("vultr-nj", "vultr", "ewr")], env)

    assert len(err.problems) == 1
    assert err.problems[0].startswith(f"vultr: could not reach the Vultr API at http://127.0.0.1:{port}/v2")
