"""Everything one command needs: the spec, its work dir, the Terraform binary, the reporter."""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudcast.errors import SpecError, StateError
from cloudcast.events import NullReporter, Reporter
from cloudcast.plan import NetworkPlan, build_plan
from cloudcast.spec import Spec, load_spec
from cloudcast.spec.files import expand_user
from cloudcast.spec.models import Backend, Machine, Provider, Site
from cloudcast.state import RemoteState, State, WorkDir, WorkDirLockedError, load_state, locked
from cloudcast.terraform import Terraform, compile_root, find_binary, read_public_key
from cloudcast.terraform.runner import EventSink

if TYPE_CHECKING:  # paramiko is imported only by the commands that reach hosts
    from cloudcast.ssh import Connector, Fleet, SSHConnector


@dataclass
class Context:
    spec_path: Path
    spec: Spec
    workdir: WorkDir
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    terraform_bin: str | None = None
    reporter: Reporter = field(default_factory=NullReporter)
    lab_prefix: str | None = None
    #: `-lock-timeout`: how long to wait for the work dir's lock and Terraform's (a Go duration)
    lock_timeout: str = "0s"
    #: `-parallelism`: hosts reached at once over SSH, and Terraform's; None: the defaults
    parallelism: int | None = None

    @classmethod
    def load(
        cls,
        spec_path: Path,
        *,
        rehearsal: bool = False,
        environ: Mapping[str, str] | None = None,
        terraform_bin: str | None = None,
        reporter: Reporter | None = None,
        workdir: Path | None = None,
        lab_machine: Machine | None = None,
        lock_timeout: str = "0s",
        parallelism: int | None = None,
    ) -> Context:
        """Load and validate the spec; `rehearsal` swaps every site for lab hosts of its shape
        (namespaces, or with `lab_machine` vm, virtual machines)."""
        spec = load_spec(spec_path, environ)
        # absolute: Terraform runs in its own working dir, where relative paths mean something else
        base = (workdir or _workdir_for(spec_path, spec)).resolve()
        if rehearsal:
            spec = as_lab(spec, lab_machine)
            base = base / "rehearsal"
        env = dict(os.environ if environ is None else environ)
        return cls(
            spec_path=spec_path,
            spec=spec,
            workdir=WorkDir(base, remote=remote_state(spec, env)),
            environ=env,
            terraform_bin=terraform_bin,
            reporter=reporter or NullReporter(),
            lab_prefix=env.get("CLOUDCAST_LAB_PREFIX") or None,
            lock_timeout=lock_timeout,
            parallelism=parallelism,
        )

    def state(self) -> State:
        return load_state(self.workdir)

    def plan(self) -> tuple[NetworkPlan, State]:
        state = self.state()
        plan, alloc = build_plan(self.spec, state.allocations)
        state.allocations = alloc
        return plan, state

    def compile(self, plan: NetworkPlan, out_dir: Path | None = None, state: State | None = None) -> Path:
        """Write the root module; with `state`, AWS sites removed from the spec keep their provider."""
        key = read_public_key(self.spec, self.spec_path.parent, dict(self.environ))
        return compile_root(
            self.spec,
            plan,
            out_dir or self.workdir.ensure().terraform,
            ssh_public_key=key,
            lab_prefix=self.lab_prefix,
            environ=dict(self.environ),
            retired_aws=state.aws_sites if state is not None else None,
        )

    def terraform(self, sink: EventSink | None = None) -> Terraform:
        return Terraform(
            workdir=self.workdir.terraform,
            binary=find_binary(self.terraform_bin, self.environ),
            environ=self.environ,
            sink=sink,
            lock_timeout=self.lock_timeout,
            parallelism=self.parallelism,
        )

    def fleet(self, connector: Connector, *, reporter: Reporter | None = None) -> Fleet:
        """`connector` at this run's `-parallelism` (the Fleet's default without it)."""
        from cloudcast.ssh import Fleet

        if self.parallelism is None:
            return Fleet(connector, reporter=reporter or NullReporter())
        return Fleet(connector, parallel=self.parallelism, reporter=reporter or NullReporter())

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the work dir's lock, waiting up to `lock_timeout` for another run to release it."""
        deadline = time.monotonic() + lock_seconds(self.lock_timeout)
        with contextlib.ExitStack() as stack:
            while True:
                try:
                    stack.enter_context(locked(self.workdir))
                    break
                except WorkDirLockedError as exc:
                    if time.monotonic() >= deadline:
                        waited = "" if self.lock_timeout in ("0s", "0") else f" (waited {self.lock_timeout})"
                        raise StateError(
                            exc.message + waited,
                            hint="wait for it to finish, or pass -lock-timeout=DURATION to wait for it "
                            "(e.g. -lock-timeout=5m); the lock frees itself when that process exits",
                        ) from None
                    time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
            yield

    def has_lab_sites(self) -> bool:
        return any(site.provider is Provider.LAB for site in self.spec.sites)

    def ssh(self, connect_budget: float = 60.0, *, strict: bool = True) -> SSHConnector:
        """Paramiko SSH to the network's hosts, retrying each for `connect_budget` seconds.

        Host keys are recorded in the work dir on first contact; with `strict`, a spec's
        `ssh.known_hosts` must hold every key instead.
        """
        path = self.spec.ssh.known_hosts if strict else None
        from cloudcast.ssh import SSHConnector, SSHOptions

        options = SSHOptions(
            known_hosts=self.workdir.ensure().known_hosts,
            # `~` expanded like the SSH key paths
            strict_known_hosts=expand_user(path, dict(self.environ)) if path else None,
            connect_budget=connect_budget,
        )
        return SSHConnector(options)


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_DURATION_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def lock_seconds(duration: str) -> float:
    """Seconds in a Go duration (`30s`, `1m30s`, `500ms`); the CLI checked its shape."""
    return sum(float(n) * _DURATION_UNIT[unit] for n, unit in _DURATION_PART.findall(duration))


def aws_sites(plan: NetworkPlan) -> dict[str, str]:
    """The plan's AWS sites, name -> region."""
    return {s.name: s.region or "" for s in plan.sites if s.provider == Provider.AWS.value}


def remote_state(spec: Spec, environ: Mapping[str, str]) -> RemoteState | None:
    """With `state.backend: s3`, cloudcast's state goes beside Terraform's in the same bucket."""
    st = spec.state
    if st.backend is not Backend.S3 or not st.bucket or not st.region:
        return None
    prefix = (st.key or spec.name).rstrip("/")
    endpoint = st.endpoint or environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL") or None
    return RemoteState(
        bucket=st.bucket,
        key=f"{prefix}/cloudcast.state.json",
        region=st.region,
        endpoint=endpoint,
        environ=dict(environ),
    )


def _workdir_for(spec_path: Path, spec: Spec) -> Path:
    if spec.state.dir:
        path = Path(spec.state.dir).expanduser()
        return path if path.is_absolute() else spec_path.parent / path
    return spec_path.parent / ".cloudcast" / spec.name


def as_lab(spec: Spec, machine: Machine | None = None) -> Spec:
    """The same network on lab hosts: same names, NAT shape, services and addresses.

    `machine` makes every host that machine (`--lab-machine`); without it lab sites keep theirs.
    """
    sites = []
    for site in spec.sites:
        drop: dict[str, Any] = {"ssh": None, "size": None, "image": None}
        if machine is not None:
            drop["machine"] = None
        nodes = [node.model_copy(update=drop) for node in site.nodes]
        data: dict[str, Any] = {"provider": Provider.LAB, "region": None, "nodes": nodes}
        if site.provider in (Provider.AWS, Provider.LINODE, Provider.VULTR):
            data["lan"] = True  # the provider's private network: co-located nodes peer over it
        if machine is not None:
            data["machine"] = machine
        sites.append(site.model_copy(update=data))
    # lab hosts take root logins on port 22 with the lab's own controller key
    ssh = type(spec.ssh)(sources=spec.ssh.sources)
    try:
        return spec.model_copy(
            update={
                "sites": [Site.model_validate(s.model_dump()) for s in sites],
                "ssh": ssh,
                "aws_endpoint": None,
                "state": type(spec.state)(),
            }
        )
    except ValueError as exc:  # pragma: no cover - a validated spec always converts
        raise SpecError([f"(rehearsal): {exc}"]) from None
