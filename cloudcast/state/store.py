"""The work dir: cloudcast's own state, secrets (mode 0600), known hosts and the run lock."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import secrets as _random
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudcast.errors import StateError
from cloudcast.plan.model import Allocations, NetworkPlan
from cloudcast.providers.aws import aws_session, client_config

STATE_VERSION = 1


@dataclass(frozen=True)
class RemoteState:
    """cloudcast's state as one S3 object beside Terraform's (`state.backend: s3`), and its
    secrets (preshared keys, the IPsec CA key) as another, encrypted at rest (SSE), so every
    work dir of a team uses the same keys.

    Credentials come from `environ` (the command's environment) and are only held in memory.
    """

    bucket: str
    key: str
    region: str
    endpoint: str | None = None
    environ: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def url(self) -> str:
        return self.object_url(self.key)

    def object_url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _client(self) -> Any:
        # an unknown AWS_PROFILE (ProfileNotFound) is a BotoCoreError: `_call` reports it
        session = aws_session(self.environ, self.region)
        config = client_config(s3={"addressing_style": "path"} if self.endpoint else None)
        return session.client("s3", endpoint_url=self.endpoint, config=config)

    @property
    def secrets_key(self) -> str:
        return f"{self.key.rpartition('/')[0]}/cloudcast.secrets.json".lstrip("/")

    def _call(self, action: str, key: str | None = None, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        key = key or self.key
        what = "secrets" if key == self.secrets_key else "state"
        try:
            return getattr(self._client(), action)(Bucket=self.bucket, Key=key, **kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if action == "get_object" and code in ("NoSuchKey", "404"):
                return None
            raise StateError(
                f"{self.object_url(key)}: cannot {action.split('_')[0]} cloudcast's {what} ({code or exc})",
                hint="check the bucket, region and credentials in the spec's state block",
            ) from None
        except BotoCoreError as exc:
            raise StateError(f"{self.object_url(key)}: cannot reach S3 ({exc})") from None

    def read(self, key: str | None = None) -> str | None:
        """The state document (or the object `key`), or None when there is none yet."""
        resp = self._call("get_object", key)
        return None if resp is None else str(resp["Body"].read().decode("utf-8"))

    def write(self, text: str, key: str | None = None) -> None:
        extra = {"ServerSideEncryption": "AES256"} if key == self.secrets_key else {}
        self._call("put_object", key, Body=text.encode("utf-8"), ContentType="application/json", **extra)

    def delete(self, key: str | None = None) -> None:
        self._call("delete_object", key)


@dataclass(frozen=True)
class WorkDir:
    """Where one network's state lives (default `.cloudcast/` beside the spec).

    With `remote` set (spec `state.backend: s3`) cloudcast's state is read from and written
    to S3 beside Terraform's, and so are its secrets; the work dir keeps local copies (secrets
    mode 0600), the recorded host keys and the run lock.
    """

    root: Path
    remote: RemoteState | None = field(default=None, compare=False)

    @property
    def terraform(self) -> Path:
        return self.root / "terraform"

    @property
    def state_file(self) -> Path:
        return self.root / "cloudcast.state.json"

    @property
    def secrets_file(self) -> Path:
        return self.root / "secrets.json"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    def ensure(self) -> WorkDir:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self


@dataclass
class State:
    """cloudcast's own state: allocations, WireGuard public keys, what was last applied."""

    allocations: Allocations = field(default_factory=Allocations)
    public_keys: dict[str, str] = field(default_factory=dict)
    applied: dict[str, Any] = field(default_factory=dict)
    routes: list[dict[str, str]] = field(default_factory=list)  # AWS routes cloudcast owns
    # AWS sites (name -> region) whose resources may be in Terraform's state: a site removed
    # from the spec keeps its provider configuration until Terraform has destroyed them.
    aws_sites: dict[str, str] = field(default_factory=dict)
    # IPsec certificates: the CA's and each gateway's (PEM; public, the keys stay elsewhere)
    ca_cert: str = ""
    certs: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "allocations": self.allocations.to_dict(),
            "public_keys": dict(sorted(self.public_keys.items())),
            "applied": self.applied,
            "routes": self.routes,
            "aws_sites": dict(sorted(self.aws_sites.items())),
            "ca_cert": self.ca_cert,
            "certs": dict(sorted(self.certs.items())),
        }


@dataclass
class Secrets:
    """Preshared keys per pair and the IPsec CA's private key. Never printed; stored with mode 0600."""

    psk: dict[str, str] = field(default_factory=dict)
    ca_key: str = ""  # PEM; only with ipsec_auth certificates

    def __repr__(self) -> str:  # keep keys out of logs and tracebacks
        return f"Secrets(psk=<{len(self.psk)} masked>, ca_key=<{'set' if self.ca_key else 'none'}>)"


def write_private(path: Path, text: str) -> None:
    """Write `text` atomically (temp file + rename) with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _read_json(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise StateError(f"{path}: unreadable state ({exc})", hint="restore it from a backup") from None
    return _parse_json(text, str(path))


def _parse_json(text: str, where: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise StateError(f"{where}: unreadable state ({exc})", hint="restore it from a backup") from None
    if not isinstance(data, dict):
        raise StateError(f"{where}: unreadable state (not an object)")
    return data


def load_state(wd: WorkDir) -> State:
    if wd.remote is not None:
        where = wd.remote.url
        text = wd.remote.read()
        data = _parse_json(text, where) if text else {}
    else:
        where = str(wd.state_file)
        data = _read_json(wd.state_file)
    if data and data.get("version") != STATE_VERSION:
        raise StateError(f"{where}: state version {data.get('version')} is not supported")
    return State(
        allocations=Allocations.from_dict(data.get("allocations", {})),
        public_keys=dict(data.get("public_keys", {})),
        applied=dict(data.get("applied", {})),
        routes=list(data.get("routes", [])),
        aws_sites=dict(data.get("aws_sites", {})),
        ca_cert=str(data.get("ca_cert", "")),
        certs=dict(data.get("certs", {})),
    )


def save_state(wd: WorkDir, state: State) -> None:
    text = json.dumps(state.to_dict(), indent=1, sort_keys=True) + "\n"
    write_private(wd.ensure().state_file, text)  # with a remote, a local copy for people to read
    if wd.remote is not None:
        wd.remote.write(text)


def forget_state(wd: WorkDir) -> None:
    """Remove cloudcast's state, secrets and recorded host keys (after destroy)."""
    for path in (wd.state_file, wd.secrets_file, wd.known_hosts):
        path.unlink(missing_ok=True)
    if wd.remote is not None:
        wd.remote.delete()
        wd.remote.delete(wd.remote.secrets_key)


def load_secrets(wd: WorkDir) -> Secrets:
    """The team's secrets from S3 with a remote state (else, or before the first save, the work dir's)."""
    data: dict[str, Any] = {}
    if wd.remote is not None:
        text = wd.remote.read(wd.remote.secrets_key)
        data = _parse_json(text, wd.remote.object_url(wd.remote.secrets_key)) if text else {}
    data = data or _read_json(wd.secrets_file)
    return Secrets(psk=dict(data.get("psk", {})), ca_key=str(data.get("ca_key", "")))


def save_secrets(wd: WorkDir, secrets: Secrets) -> None:
    doc: dict[str, Any] = {"psk": dict(sorted(secrets.psk.items()))}
    if secrets.ca_key:
        doc["ca_key"] = secrets.ca_key
    text = json.dumps(doc, indent=1) + "\n"
    write_private(wd.ensure().secrets_file, text)
    if wd.remote is not None:
        wd.remote.write(text, wd.remote.secrets_key)


def new_psk() -> str:
    """A 256-bit preshared key in WireGuard's base64 form."""
    return base64.b64encode(_random.token_bytes(32)).decode()


def ensure_psks(plan: NetworkPlan, secrets: Secrets) -> tuple[Secrets, int]:
    """Keep the PSK of every still-peered pair, make one for each new pair, drop the rest."""
    pairs = plan.pairs()
    kept = {p: secrets.psk[p] for p in pairs if p in secrets.psk}
    created = 0
    for pair in pairs:
        if pair not in kept:
            kept[pair] = new_psk()
            created += 1
    return Secrets(psk=kept, ca_key=secrets.ca_key), created


@contextlib.contextmanager
def locked(wd: WorkDir) -> Iterator[None]:
    """Hold the work dir's lock; a second cloudcast run fails fast instead of waiting."""
    path = wd.ensure().root / "lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise StateError(
                f"{wd.root} is locked by another cloudcast run (pid {holder})",
                hint="wait for it to finish; the lock frees itself when that process exits",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)
