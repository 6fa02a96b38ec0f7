"""Fixtures for tests that run the real `terraform` binary (and moto for AWS).

- `terraform_bin`: the terraform (or tofu) executable.
- `tf_plugins_dir`: the local provider mirror (`/tf-plugins` or `/*/tf-plugins`; env
  `CLOUDCAST_TF_PLUGINS` overrides). Providers are never downloaded.
- `tf_cli_config`: a CLI config file using that mirror for registry.terraform.io/hashicorp/*.
- `moto_server` (tests/conftest.py): one moto server on 127.0.0.1 for the session; its EC2
  knows two Canonical Ubuntu 22.04 AMIs (`CANONICAL_JAMMY_AMIS`).
- `tf_plugin_cache`: a session TF_PLUGIN_CACHE_DIR shared by every `terraform init`.
- `ssh_home`: a HOME holding a fresh `~/.ssh/id_ed25519(.pub)` (the examples use it).
- `cli_env`: the whole environment for `run_cli(...)` against moto (PATH, HOME, TF_*, AWS_*).
- `tf_timer`: measures cloudcast commands and the Terraform subprocesses they run; the
  numbers are printed at the end of the session.
- `aws_env`: fake credentials and region; `tf_env`: the full environment for terraform.

Nothing here reaches the network beyond 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from tests.conftest import EXAMPLES, MOTO_JAMMY_IDS

ROOT = Path(__file__).resolve().parents[2]
TF_DIR = ROOT / "tf"
AWS_REGION = "us-east-1"
CANONICAL_JAMMY_AMIS = MOTO_JAMMY_IDS  # the default image lookup resolves to one of these in moto


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
def tf_plugin_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One TF_PLUGIN_CACHE_DIR for the session: every `terraform init` links the provider from it.

    (With the unpacked mirror used here Terraform links the mirror's own directory and `init`
    takes ~0.6 s once the 675 MB binary is in the page cache; the cache matters for packed
    mirrors, where each init would otherwise unzip and hash the provider again.)
    """
    return tmp_path_factory.mktemp("tf-plugin-cache")


@pytest.fixture(scope="session")
def tf_env(tf_cli_config: Path, tf_plugin_cache: Path, aws_env: Mapping[str, str]) -> dict[str, str]:
    """Environment for terraform: the mirror-only CLI config, no checkpoint calls, fake AWS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))}
    env.update(aws_env)
    env.update(
        {
            "TF_CLI_CONFIG_FILE": str(tf_cli_config),
            "TF_PLUGIN_CACHE_DIR": str(tf_plugin_cache),
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


# --- the CLI against moto ------------------------------------------------------------

# Fake credentials for CLI tests; the secret is distinctive so tests can scan files for it.
CLI_ACCESS_KEY = "AKIACLOUDCASTTEST001"
CLI_SECRET_KEY = "cloudcast-fake-secret-Zq7xW3vN9pK2mB5t"


@pytest.fixture(scope="session")
def ssh_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HOME with a fresh ed25519 key pair at ~/.ssh/id_ed25519(.pub)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    home = tmp_path_factory.mktemp("home")
    ssh = home / ".ssh"
    ssh.mkdir(mode=0o700)
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    (ssh / "id_ed25519").write_bytes(private)
    (ssh / "id_ed25519").chmod(0o600)
    (ssh / "id_ed25519.pub").write_text(public.decode() + " cloudcast-test\n")
    return home


@pytest.fixture(scope="session")
def cli_env(
    moto_server: str, tf_cli_config: Path, tf_plugin_cache: Path, ssh_home: Path
) -> dict[str, str]:
    """Everything `run_cli(..., environ=cli_env)` needs against moto, and nothing else."""
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(ssh_home),
        "TF_CLI_CONFIG_FILE": str(tf_cli_config),
        "TF_PLUGIN_CACHE_DIR": str(tf_plugin_cache),
        "TF_IN_AUTOMATION": "1",
        "CHECKPOINT_DISABLE": "1",
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": CLI_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": CLI_SECRET_KEY,
        "AWS_DEFAULT_REGION": AWS_REGION,
        "AWS_REGION": AWS_REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


@dataclass
class Measured:
    """One cloudcast command: its wall time and the Terraform subprocesses it ran."""

    label: str
    wall: float = 0.0
    terraform: list[tuple[str, float]] = field(default_factory=list)

    @property
    def terraform_total(self) -> float:
        return sum(seconds for _, seconds in self.terraform)

    @property
    def overhead(self) -> float:
        """cloudcast's own share of the wall time, as a fraction of Terraform's time."""
        return (self.wall - self.terraform_total) / self.terraform_total if self.terraform_total else 0.0

    def line(self) -> str:
        parts = ", ".join(f"{cmd} {secs:.1f}s" for cmd, secs in self.terraform)
        return (
            f"{self.label:<34} wall {self.wall:6.1f}s  terraform {self.terraform_total:6.1f}s "
            f"({parts})  cloudcast overhead {self.wall - self.terraform_total:5.1f}s "
            f"= {self.overhead:5.1%}"
        )


MEASURED: list[Measured] = []


class TfTimer:
    """`with tf_timer("apply") as m: run_cli(...)` times the command and each terraform run in it."""

    @contextlib.contextmanager
    def __call__(self, label: str) -> Iterator[Measured]:
        from cloudcast.terraform import runner

        measured = Measured(label)
        original = runner.Terraform._run

        def timed(self: runner.Terraform, args: Sequence[str], **kwargs: Any) -> runner.Result:
            start = time.perf_counter()
            try:
                return original(self, args, **kwargs)
            finally:
                measured.terraform.append((args[0], time.perf_counter() - start))

        start = time.perf_counter()
        with mock.patch.object(runner.Terraform, "_run", timed):
            try:
                yield measured
            finally:
                measured.wall = time.perf_counter() - start
                MEASURED.append(measured)


@pytest.fixture(scope="session")
def tf_timer() -> TfTimer:
    return TfTimer()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not MEASURED:
        return
    terminalreporter.section("cloudcast vs terraform time")
    for measured in MEASURED:
        terminalreporter.write_line(measured.line())


@pytest.fixture
def lab_spec(tmp_path: Path) -> Path:
    """A copy of examples/lab.json in the test's own directory."""
    spec = tmp_path / "lab.json"
    shutil.copy(EXAMPLES / "lab.json", spec)
    return spec
