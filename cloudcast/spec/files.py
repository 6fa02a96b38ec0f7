"""The files a spec names (SSH keys, known_hosts): regular files only, and a public key that parses.

A spec may be written by someone other than the operator who runs it, so a path in it must
never make cloudcast read a device, a FIFO or an arbitrary file into Terraform or onto hosts.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path

from cryptography.hazmat.primitives.serialization import load_ssh_public_key

from cloudcast.spec.models import Spec
from cloudcast.spec.paths import shorten

#: an OpenSSH public key line is well under this (RSA 16384 bits: ~2.8 KB)
PUBLIC_KEY_LIMIT = 16 * 1024
_COMMENT = re.compile(r"\A[A-Za-z0-9@._+-]{1,100}\Z", re.ASCII)


class KeyFileError(ValueError):
    """A file the spec names is not what it must be; the message says why, never its content."""


def expand_user(path: str, environ: Mapping[str, str] | None = None) -> Path:
    """`~` expanded with HOME from `environ` (the command's environment), else the process's."""
    home = (environ or {}).get("HOME")
    if home and (path == "~" or path.startswith("~/")):
        return Path(home) / path[2:]
    return Path(path).expanduser()


def resolve(path: str, spec_dir: Path, environ: Mapping[str, str] | None = None) -> Path:
    """A spec path made absolute: `~` from HOME, relative paths from the spec's directory."""
    full = expand_user(path, environ)
    return full if full.is_absolute() else spec_dir / full


def _regular(path: Path) -> os.stat_result | None:
    """The stat of `path` when it exists; KeyFileError unless it is a regular file."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise KeyFileError(f"cannot read {path} ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise KeyFileError(f"{path} is not a regular file")
    return info


def read_public_key(path: Path) -> str:
    """The OpenSSH public key in `path` as `TYPE BASE64 [COMMENT]` (an odd comment is dropped).

    The file must be a regular file holding exactly one key that parses; the error never
    quotes the file, which may be anything (a spec could name /etc/shadow).
    """
    info = _regular(path)
    if info is None:
        raise KeyFileError(f"cannot read {path} (No such file or directory)")
    if info.st_size > PUBLIC_KEY_LIMIT:
        raise KeyFileError(f"{path} is {info.st_size} bytes, too large for an SSH public key")
    # O_NONBLOCK: the file may have been swapped for a FIFO since the stat
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise KeyFileError(f"{path} is not a regular file")
        data = os.read(fd, PUBLIC_KEY_LIMIT + 1)
    finally:
        os.close(fd)
    lines = [line for line in data.splitlines() if line.strip()]
    if len(lines) != 1:
        raise KeyFileError(f"{path} is not an OpenSSH public key (one line: TYPE BASE64 [COMMENT])")
    fields = lines[0].split()
    try:
        if len(fields) < 2:
            raise ValueError
        load_ssh_public_key(b" ".join(fields[:2]))
    except (ValueError, TypeError):
        raise KeyFileError(f"{path} is not an OpenSSH public key (one line: TYPE BASE64 [COMMENT])") from None
    key = b" ".join(fields[:2]).decode("ascii")
    comment = b" ".join(fields[2:]).decode("ascii", "replace")
    # the comment goes into authorized_keys and main.tf.json too: kept only when plainly harmless
    return f"{key} {comment}" if _COMMENT.match(comment) else key


def check_files(spec: Spec, spec_dir: Path, environ: Mapping[str, str] | None = None) -> list[str]:
    """Problems with the files the spec names, one `path: message` line each."""
    return list(_file_problems(spec, spec_dir, environ))


def _file_problems(spec: Spec, spec_dir: Path, environ: Mapping[str, str] | None) -> Iterator[str]:
    named: list[tuple[str, str]] = [
        (f"ssh.{key}", value)
        for key in ("private_key", "known_hosts")
        if (value := getattr(spec.ssh, key)) is not None
    ]
    for i, site in enumerate(spec.sites):
        for j, node in enumerate(site.nodes):
            if node.ssh and node.ssh.private_key:
                named.append((f"sites[{i}].nodes[{j}].ssh.private_key", node.ssh.private_key))
    for where, value in named:
        try:
            _regular(resolve(value, spec_dir, environ))
        except KeyFileError as exc:
            yield f"{where}: {exc} ({shorten(value)})"
    public = spec.ssh.public_key or (f"{spec.ssh.private_key}.pub" if spec.ssh.private_key else None)
    full = resolve(public, spec_dir, environ) if public else None
    if full is None or not full.exists():
        return  # only cloud sites need one, and compile says so when it is missing
    try:
        read_public_key(full)
    except KeyFileError as exc:
        yield f"ssh.public_key: {exc}"
