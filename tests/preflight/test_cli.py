"""`cloudcast validate --online` runs preflight and reports its problems on one line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import CliResult
from tests.preflight.helpers import LINODE_TOKEN, node, site


def write_spec(tmp_path: Path, *sites: dict[str, object]) -> Path:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"name": "pf", "sites": list(sites)}))
    return path


def test_validate_online_passes(
    cli: Callable[..., CliResult], tmp_path: Path, linode_env: dict[str, str], vultr_env: dict[str, str]
) -> None:
    spec = write_spec(
        tmp_path,
        site("linode-nj", "linode", "us-east", node("ln1")),
        site("vultr-nj", "vultr", "ewr", node("vu1")),
    )
    result = cli("validate", "--online", str(spec), environ={**linode_env, **vultr_env})

    assert result.code == 0, result.err
    assert "valid (2 sites, 2 nodes)" in result.out


def test_validate_online_fails_with_every_problem_on_one_line(
    cli: Callable[..., CliResult], tmp_path: Path, linode_env: dict[str, str]
) -> None:
    spec = write_spec(
        tmp_path,
        site("linode-nj", "linode", "us-east", node("ln1", size="g6-nanode-2")),
        site("linode-fra", "linode", "eu-centrall", node("ln2")),
    )
    result = cli("validate", "--online", str(spec), environ=linode_env)

    assert result.code == 1
    assert (
        "cloudcast: error: preflight failed: 2 problems: "
        "sites[0] (linode-nj): type 'g6-nanode-2' (node ln1) does not exist; did you mean 'g6-nanode-1'?; "
        "sites[1] (linode-fra): region 'eu-centrall' does not exist; did you mean 'eu-central'?"
    ) in result.err
    assert LINODE_TOKEN not in result.err + result.out
