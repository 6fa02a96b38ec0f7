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


class WorkDirLockedError(StateError):
    """The work dir is locked by another cloudcast run (its pid in the message)."""


class StateConflictError(StateError):
    """An S3 object of cloudcast's changed (or appeared, or went) since this run read it: another
    run wrote it meanwhile. Nothing was written; the next run starts from what the other wrote."""


@dataclass(frozen=True)
class Stored:
    """One S3 object as read: its text and the ETag a conditional write names."""

    text: str
    etag: str


@dataclass(frozen=True)
class RemoteState:
    """cloudcast's state as one S3 object beside Terraform's (`state.backend: s3`), and its
    secrets (preshared keys, the IPsec CA key) as another, encrypted at rest (SSE), so every
    work dir of a team uses the same keys.

    Every write is conditional (S3 conditional writes): `If-Match: <etag>` of the version the
    run read, or `If-None-Match: *` when there was none, so two runs from two work dirs can
    never overwrite each other's update; the loser gets a `StateConflictError`.

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

    def _what(self, key: str) -> str:
        return "secrets" if key == self.secrets_key else "state"

    def _call(self, action: str, key: str | None = None, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        key = key or self.key
        try:
            return getattr(self._client(), action)(Bucket=self.bucket, Key=key, **kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if action == "get_object" and code in ("NoSuchKey", "404"):
                return None
            if action == "put_object" and code in CONFLICT_CODES:
                raise self._conflict(key, code, created="IfNoneMatch" in kwargs) from None
            verb = action.split("_")[0]
            raise StateError(
                f"{self.object_url(key)}: cannot {verb} cloudcast's {self._what(key)} ({code or exc})",
                hint="check the bucket, region and credentials in the spec's state block",
            ) from None
        except BotoCoreError as exc:
            raise StateError(f"{self.object_url(key)}: cannot reach S3 ({exc})") from None

    def _conflict(self, key: str, code: str, *, created: bool) -> StateConflictError:
        where = f"the S3 {self._what(key)} {self.object_url(key)}"
        if created:
            how = "was created by another run after this one found none"
        elif code in ("NoSuchKey", "404"):
            how = "was removed since this run read it (another destroy?)"
        elif code in ("ConditionalRequestConflict", "409"):
            how = "was being written by another run at the same time"
        else:
            how = "changed since this run read it"
        return StateConflictError(
            f"{where} {how} (another apply?): nothing was written",
            hint="re-run to converge: the next run starts from what the other run wrote",
        )

    def fetch(self, key: str | None = None) -> Stored | None:
        """The object `key` (default: the state document) with its ETag, or None when there is none."""
        resp = self._call("get_object", key)
        if resp is None:
            return None
        return Stored(text=resp["Body"].read().decode("utf-8"), etag=str(resp["ETag"]))

    def read(self, key: str | None = None) -> str | None:
        """The state document (or the object `key`), or None when there is none yet."""
        found = self.fetch(key)
        return None if found is None else found.text

    def write(self, text: str, key: str | None = None, *, etag: str | None) -> str:
        """Write `text` if the object is still the version `etag` (None: if there is none yet);
        the new version's ETag. Raises `StateConflictError` when another run wrote it first."""
        key = key or self.key
        extra: dict[str, Any] = {"ServerSideEncryption": "AES256"} if key == self.secrets_key else {}
        extra.update({"IfMatch": etag} if etag is not None else {"IfNoneMatch": "*"})
        body = text.encode("utf-8")
        resp = self._call("put_object", key, Body=body, ContentType="application/json", **extra)
        return str(resp["ETag"])

    def delete(self, key: str | None = None) -> None:
        self._call("delete_object", key)


#: S3's answers to a conditional write that did not hold: 412 (the ETag moved on, or an object
#: appeared), 409 (another conditional write of the key at the same time), 404 (If-Match on an
#: object that is gone)
CONFLICT_CODES = frozenset(
    {"PreconditionFailed", "412", "ConditionalRequestConflict", "409", "NoSuchKey", "404"}
)


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
    # the S3 version (ETag) this state was read from or last written as (None: there was none):
    # the next remote write is conditional on it. Never part of the document.
    etag: str | None = field(default=None, compare=False, repr=False)

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
    etag: str | None = field(default=None, compare=False)  # as `State.etag`, for the secrets object

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
    """cloudcast's state; from S3 with a remote, with the version the next `save_state` names."""
    etag: str | None = None
    if wd.remote is not None:
        where = wd.remote.url
        found = wd.remote.fetch()
        etag = found.etag if found is not None else None
        data = _parse_json(found.text, where) if found is not None and found.text else {}
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
        etag=etag,
    )


def save_state(wd: WorkDir, state: State) -> None:
    """Write the state; with a remote, to S3 first and only if nobody wrote it since `state` was
    read (`StateConflictError` otherwise, and nothing is written), then the local copy."""
    text = json.dumps(state.to_dict(), indent=1, sort_keys=True) + "\n"
    wd.ensure()
    if wd.remote is not None:
        state.etag = wd.remote.write(text, etag=state.etag)
    write_private(wd.state_file, text)  # with a remote, a local copy for people to read


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
    etag: str | None = None
    if wd.remote is not None:
        key = wd.remote.secrets_key
        found = wd.remote.fetch(key)
        etag = found.etag if found is not None else None
        data = _parse_json(found.text, wd.remote.object_url(key)) if found is not None and found.text else {}
    data = data or _read_json(wd.secrets_file)
    return Secrets(psk=dict(data.get("psk", {})), ca_key=str(data.get("ca_key", "")), etag=etag)


def save_secrets(wd: WorkDir, secrets: Secrets) -> None:
    """Settle the secrets: with a remote, create them in S3 (`If-None-Match: *`) or replace the
    version `secrets` was read from (`If-Match`); a run that loses that race gets a
    `StateConflictError` before any host is given a key. Then the local copy (mode 0600)."""
    doc: dict[str, Any] = {"psk": dict(sorted(secrets.psk.items()))}
    if secrets.ca_key:
        doc["ca_key"] = secrets.ca_key
    text = json.dumps(doc, indent=1) + "\n"
    wd.ensure()
    if wd.remote is not None:
        secrets.etag = wd.remote.write(text, wd.remote.secrets_key, etag=secrets.etag)
    write_private(wd.secrets_file, text)


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
    return Secrets(psk=kept, ca_key=secrets.ca_key, etag=secrets.etag), created


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
            raise WorkDirLockedError(
                f"{wd.root} is locked by another cloudcast run (pid {holder})",
                hint="wait for it to finish; the lock frees itself when that process exits",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)
