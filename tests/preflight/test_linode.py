"""Linode preflight: linode_api4 does real HTTP to a local server replaying API v4 responses."""

from __future__ import annotations

import pytest

from cloudcast.preflight import PreflightFailed, preflight
from tests.preflight.conftest import ReplayServer
from tests.preflight.helpers import LINODE_TOKEN, make_spec, node, site


def fails(spec_sites: list[dict[str, object]], env: dict[str, str]) -> PreflightFailed:
    with pytest.raises(PreflightFailed) as caught:
        preflight(make_spec(*spec_sites), env)
    return caught.value


def test_all_good(linode_env: dict[str, str], linode_api: ReplayServer) -> None:
    spec = make_spec(
        site("linode-nj", "linode", "us-east", node("ln1"), node("ln2", size="g6-standard-2", image="linode/debian12")),
        site("linode-fra", "linode", "eu-central", node("ln3")),
    )
    report = preflight(spec, linode_env)

    assert report.problems == []
    assert report.lines() == [
        "ok: linode: LINODE_TOKEN valid (user 'cloudcast-ci')",
        "ok: sites[0] (linode-nj): region 'us-east' exists and offers VPCs",
        "ok: sites[0] (linode-nj): type 'g6-nanode-1' exists (node ln1)",
        "ok: sites[0] (linode-nj): type 'g6-standard-2' exists (node ln2)",
        "ok: sites[0] (linode-nj): image 'linode/ubuntu22.04' exists (node ln1)",
        "ok: sites[0] (linode-nj): image 'linode/debian12' exists (node ln2)",
        "ok: sites[1] (linode-fra): region 'eu-central' exists and offers VPCs",
        "ok: sites[1] (linode-fra): type 'g6-nanode-1' exists (node ln3)",
        "ok: sites[1] (linode-fra): image 'linode/ubuntu22.04' exists (node ln3)",
    ]
    # Real HTTP, every call authenticated, each catalogue fetched once, nothing written.
    assert all(seen.authorized and seen.method == "GET" for seen in linode_api.seen)
    assert sorted(linode_api.paths()) == ["/v4/images", "/v4/linode/types", "/v4/profile", "/v4/regions"]


def test_bad_token(linode_env: dict[str, str], linode_api: ReplayServer) -> None:
    wrong = "linode-wrong-token-000000"
    err = fails([site("linode-nj", "linode", "us-east")], {**linode_env, "LINODE_TOKEN": wrong})

    assert err.problems == ["linode: LINODE_TOKEN was rejected (401)"]
    assert "skipped: sites[0] (linode-nj): Linode checks skipped (see the linode problem above)" in err.report.lines()
    assert wrong not in err.message and all(wrong not in line for line in err.report.lines())
    assert [s.authorized for s in linode_api.seen] == [False]


def test_token_not_set() -> None:
    err = fails([site("linode-nj", "linode", "us-east")], {})

    assert err.problems == ["linode: LINODE_TOKEN is not set"]


def test_unknown_region_suggests_the_closest(linode_env: dict[str, str]) -> None:
    err = fails(
        [site("home", "static", None, node("nas", ssh={"host": "192.0.2.10"})), site("linode-fra", "linode", "eu-centrall")],
        linode_env,
    )

    assert err.problems == ["sites[1] (linode-fra): region 'eu-centrall' does not exist; did you mean 'eu-central'?"]


def test_region_without_vpcs(linode_env: dict[str, str]) -> None:
    err = fails([site("linode-tyo", "linode", "ap-northeast")], linode_env)

    assert len(err.problems) == 1
    assert err.problems[0].startswith("sites[0] (linode-tyo): region 'ap-northeast' does not offer VPCs (capabilities: ")
    assert "Cloud Firewall" in err.problems[0]


def test_unknown_type(linode_env: dict[str, str]) -> None:
    err = fails([site("linode-nj", "linode", "us-east", node("ln1", size="g6-nanode-2"))], linode_env)

    assert err.problems == ["sites[0] (linode-nj): type 'g6-nanode-2' (node ln1) does not exist; did you mean 'g6-nanode-1'?"]


def test_unknown_image(linode_env: dict[str, str]) -> None:
    err = fails([site("linode-nj", "linode", "us-east", node("ln1", image="linode/ubuntu22.10"))], linode_env)

    assert err.problems == [
        "sites[0] (linode-nj): image 'linode/ubuntu22.10' (node ln1) does not exist; did you mean 'linode/ubuntu22.04'?"
    ]


def test_deprecated_image_is_a_warning_not_a_problem(linode_env: dict[str, str]) -> None:
    report = preflight(make_spec(site("linode-nj", "linode", "us-east", node("ln1", image="linode/ubuntu20.04"))), linode_env)

    assert report.passed
    assert report.warnings == ["sites[0] (linode-nj): image 'linode/ubuntu20.04' is deprecated"]


def test_the_token_is_sent_only_as_a_bearer_header(linode_env: dict[str, str], linode_api: ReplayServer) -> None:
    preflight(make_spec(site("linode-nj", "linode", "us-east")), linode_env)

    assert linode_api.seen and all(LINODE_TOKEN not in s.path + s.query for s in linode_api.seen)
