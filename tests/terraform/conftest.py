"""Fixtures for tests that run the real `terraform` binary (and moto for AWS).

- `terraform_bin`: the terraform (or tofu) executable.
- `tf_plugins_dir`: the local provider mirror (`/tf-plugins` or `/*/tf-plugins`; env
  `CLOUDCAST_TF_PLUGINS` overrides). Providers are never downloaded.
- `tf_cli_config`: a CLI config file using that mirror for registry.terraform.io/hashicorp/*.
- `moto_server`: a moto server on 127.0.0.1 for the session; its EC2 knows one Canonical
  Ubuntu 22.04 AMI (`CANONICAL_JAMMY_AMI`) so the modules' default image lookup works.
- `aws_env`: fake credentials and region; `tf_env`: the full environment for terraform.

Nothing here reaches the network beyond 127.0.0.1.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TF_DIR = ROOT / "tf"
AWS_REGION = "us-east-1"
CANONICAL_OWNER = "099720109477"
CANONICAL_JAMMY_AMI = "ami-0220400000000c0ffe"
CANONICAL_JAMMY_NAME = "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20240301"

# moto's stock AMI list has no Ubuntu 22.04 image; MOTO_AMIS_PATH replaces that list.
MOTO_AMIS = [
    {
        "ami_id": CANONICAL_JAMMY_AMI,
        "name": CANONICAL_JAMMY_NAME,
        "description": "Canonical, Ubuntu, 22.04 LTS, amd64 jammy image build on 2024-03-01",
        "owner_id": CANONICAL_OWNER,
        "image_location": f"{CANONICAL_OWNER}/{CANONICAL_JAMMY_NAME}",
        "state": "available",
        "public": True,
        "architecture": "x86_64",
        "virtualization_type": "hvm",
        "hypervisor": "xen",
        "image_type": "machine",
        "root_device_type": "ebs",
        "root_device_name": "/dev/sda1",
        "creation_date": "2024-03-01T00:00:00.000Z",
    }
]


@pytest.fixture(scope="session")
def terraform_bin() -> str:
    found = shutil.which("terraform") or shutil.which("tofu")
    if found is None:
        pytest.fail("terraform (or tofu) is not on PATH; the terraform tests need it")
    return found


def find_tf_plugins(environ: Mapping[str, str] = os.environ) -> Path | None:
    """The provider mirror: $CLOUDCAST_TF_PLUGINS, else /tf-plugins or /*/tf-plugins."""
    override = environ.get("CLOUDCAST_TF_PLUGINS")
    if override:
        return Path(override)
    for candidate in ["/tf-plugins", *sorted(glob.glob("/*/tf-plugins"))]:
        if Path(candidate).is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def tf_plugins_dir() -> Path:
    found = find_tf_plugins()
    if found is None or not found.is_dir():
        pytest.fail(
            "no Terraform provider mirror found: looked for $CLOUDCAST_TF_PLUGINS, /tf-plugins "
            "and /*/tf-plugins (a filesystem mirror holding registry.terraform.io/hashicorp/aws); "
            "set CLOUDCAST_TF_PLUGINS to its path"
        )
    if not (found / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
        pytest.fail(f"{found} holds no registry.terraform.io/hashicorp/aws provider")
    return found


@pytest.fixture(scope="session")
def tf_cli_config(tf_plugins_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CLI config installing hashicorp/* from the mirror and nothing from the network."""
    path = tmp_path_factory.mktemp("tfcli") / "terraformrc"
    path.write_text(
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f"    path    = {json.dumps(str(tf_plugins_dir))}\n"
        '    include = ["registry.terraform.io/hashicorp/*"]\n'
        "  }\n"
        "  direct {\n"
        '    exclude = ["registry.terraform.io/hashicorp/*"]\n'
        "  }\n"
        "}\n"
    )
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=1) as response:
            return bool(response.status < 500)
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto server for the session; yields its endpoint URL."""
    workdir = tmp_path_factory.mktemp("moto")
    amis = workdir / "amis.json"
    amis.write_text(json.dumps(MOTO_AMIS))
    port = _free_port()
    binary = shutil.which("moto_server")
    command = [binary] if binary else [sys.executable, "-m", "moto.server"]
    command += ["-H", "127.0.0.1", "-p", str(port)]
    env = {**os.environ, "MOTO_AMIS_PATH": str(amis)}
    log = (workdir / "moto.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not _answers(url):
            if process.poll() is not None:
                pytest.fail(f"moto_server exited ({process.returncode}); see {workdir / 'moto.log'}")
            if time.monotonic() > deadline:
                pytest.fail(f"moto_server did not answer on {url} within 30 s")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="session")
def aws_env() -> dict[str, str]:
    """Fake AWS credentials and region; nothing may reach real AWS."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": AWS_REGION,
        "AWS_REGION": AWS_REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


@pytest.fixture(scope="session")
def tf_env(tf_cli_config: Path, aws_env: Mapping[str, str]) -> dict[str, str]:
    """Environment for terraform: the mirror-only CLI config, no checkpoint calls, fake AWS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))}
    env.update(aws_env)
    env.update(
        {
            "TF_CLI_CONFIG_FILE": str(tf_cli_config),
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "CHECKPOINT_DISABLE": "1",
        }
    )
    return env


@dataclass(frozen=True)
class Terraform:
    """Runs terraform in one working directory with `-input=false -no-color`."""

    binary: str
    workdir: Path
    env: Mapping[str, str]

    # Subcommands that accept -input=false.
    _INPUT = frozenset({"init", "plan", "apply", "destroy", "import", "refresh"})

    def run(
        self, *args: str, ok: Sequence[int] = (0,), timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        # Options go after the (sub)command words: `providers schema -json -no-color`.
        words = 2 if args[0] in ("providers", "state", "workspace") else 1
        command = [self.binary, *args[:words]]
        if args[0] in self._INPUT:
            command.append("-input=false")
        command += ["-no-color", *args[words:]]
        result = subprocess.run(
            command,
            cwd=self.workdir,
            env=dict(self.env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode not in ok:
            raise AssertionError(
                f"{' '.join(command)} exited {result.returncode}\n"
                f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
            )
        return result

    def outputs(self) -> dict[str, object]:
        raw = json.loads(self.run("output", "-json").stdout)
        return {name: entry["value"] for name, entry in raw.items()}
