"""Field contracts of the spec: every string the spec may carry has a shape, checked here.

The spec is untrusted input (a pull request may edit it), and its values reach shells, config
files and Terraform. Each type below refuses what its sinks could misread: newlines, control
characters, quotes, `${`/`%{`, option-like leading dashes, non-ASCII look-alikes. Sinks still
quote and escape (defence in depth); these contracts make the spec say clearly what it must be.

Every refusal is a `PydanticCustomError` of type ``cc_*`` whose message already names the
offending value (cut to a readable length), so the report adds nothing after it.
"""

from __future__ import annotations

import posixpath
import re
from functools import cache
from ipaddress import IPv4Address, IPv4Network
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, StrictBool, StrictInt
from pydantic_core import PydanticCustomError

from cloudcast.spec.paths import shorten


def _refuse(kind: str, value: Any, what: str) -> PydanticCustomError:
    # pydantic fills `{value}` from the context; no message here contains that word in braces
    return PydanticCustomError(f"cc_{kind}", "{value} " + what, {"value": shorten(value)})


def _matcher(kind: str, pattern: str, what: str) -> AfterValidator:
    regex = re.compile(rf"\A(?:{pattern})\Z", re.ASCII)

    def check(value: str) -> str:
        if not regex.match(value):
            raise _refuse(kind, value, what)
        return value

    return AfterValidator(check)


def _schema(pattern: str, description: str, **extra: Any) -> Any:
    # JSON Schema (ECMA) anchors: `$` there matches only at the very end of the input.
    return Field(json_schema_extra={"pattern": f"^(?:{pattern})$", **extra}, description=description)


LABEL_RE = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_LABEL_WHAT = "is not a valid hostname label (letters, digits, '-')"

#: names every Debian/Ubuntu /etc/hosts already gives a meaning to
SYSTEM_NAMES = frozenset(
    {
        "localhost", "localdomain", "broadcasthost", "ip6-localhost", "ip6-loopback", "ip6-localnet",
        "ip6-mcastprefix", "ip6-allnodes", "ip6-allrouters", "ip6-allhosts",
    }
)

Label = Annotated[
    str,
    Field(min_length=1, max_length=63),
    _matcher("label", LABEL_RE, _LABEL_WHAT),
    _schema(LABEL_RE, "A hostname label: ASCII letters, digits and '-', not starting or ending with '-'."),
]


def _not_system(value: str) -> str:
    if value.lower() in SYSTEM_NAMES:
        raise _refuse("reserved", value, "is a name the system already uses in /etc/hosts; pick another")
    return value


NodeName = Annotated[Label, AfterValidator(_not_system)]

_HOSTNAME_RE = rf"{LABEL_RE}(?:\.{LABEL_RE})*"
_HOSTNAME = re.compile(rf"\A{_HOSTNAME_RE}\Z", re.ASCII)


def _host(value: str) -> str:
    try:
        return str(IPv4Address(value))
    except ValueError:
        pass
    last = value.rsplit(".", 1)[-1]
    # an all-numeric last label is a mistyped address, never a name (RFC 1123 2.1)
    if len(value) > 253 or not _HOSTNAME.match(value) or last.isdigit():
        raise _refuse("host", value, "is not an IPv4 address or an RFC 1123 host name")
    return value


Host = Annotated[
    str,
    Field(min_length=1, max_length=253),
    AfterValidator(_host),
    _schema(_HOSTNAME_RE, "An IPv4 address or an RFC 1123 host name.", maxLength=253),
]

_LOGIN_RE = r"[a-z_][a-z0-9_-]{0,31}"
LoginName = Annotated[
    str,
    _matcher("login", _LOGIN_RE, "is not a POSIX login name (lower-case letters, digits, '_', '-'; "
             "up to 32, not starting with a digit or '-')"),
    _schema(_LOGIN_RE, "A POSIX login name."),
]

# Provider identifiers: t3.micro, g6-nanode-1, vc2-1c-1gb, ami-0abc…, linode/ubuntu22.04, us-east-1.
_TOKEN_RE = r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}"
ProviderToken = Annotated[
    str,
    _matcher("token", _TOKEN_RE, "is not a provider identifier (letters, digits and . _ : / -; "
             "no spaces, quotes, '${' or '%{')"),
    _schema(_TOKEN_RE, "A provider identifier: letters, digits and . _ : / - (no spaces, quotes or braces)."),
]

# Images may also be AMI name patterns (ubuntu/images/hvm-ssd/ubuntu-noble-24.04-amd64-server-*).
_IMAGE_RE = r"[A-Za-z0-9][A-Za-z0-9._:/*?-]{0,127}"
ImageToken = Annotated[
    str,
    _matcher("image", _IMAGE_RE, "is not an image id or AMI name pattern (letters, digits and . _ : / - * ?; "
             "no spaces, quotes, '${' or '%{')"),
    _schema(_IMAGE_RE, "An image id, or an AMI name pattern with * and ?."),
]

# Key and file paths: what ssh_config, shells and Terraform all read the same way.
_PATH_RE = r"[A-Za-z0-9._/+@=,~-][A-Za-z0-9._/+@=, ~-]{0,1023}"
_PATH = re.compile(rf"\A(?:{_PATH_RE})\Z", re.ASCII)


def _path(value: str) -> str:
    # `~user` is refused: only the operator's own home (`~`, `~/…`) is meant, and `~0` has none
    tilde_ok = not value.startswith("~") or value == "~" or value.startswith("~/")
    shaped = _PATH.match(value) and not value.startswith("-") and not value.endswith(" ")
    if not shaped or "~" in value[1:] or not tilde_ok:
        raise _refuse("path", value, "is not a usable path (letters, digits, spaces and . _ / + @ = , -; "
                      "'~' or '~/' only at the start; no quotes, '%', '$' or control characters)")
    return value


FilePath = Annotated[
    str,
    AfterValidator(_path),
    _schema(_PATH_RE, "A file path (~ for the home directory); relative paths are relative to the spec."),
]

_IFACE_RE = r"[a-z][a-z0-9_]{0,14}"
# Names the host's own devices have (or a distribution gives them), and sysctl's `all`/`default`.
_SYSTEM_IFACE = re.compile(
    r"\A(?:lo|all|default|(?:eth|wlan|wwan|ib|bond|br|docker|veth|virbr|vlan|vxlan|team|tap|tun|dummy"
    r"|lan|wan|gre|sit|ppp|usb)[0-9]*|en[opsx].*|wl[ps].*)\Z",
    re.ASCII,
)


def _iface(value: str) -> str:
    if _SYSTEM_IFACE.match(value):
        raise _refuse("interface", value, "is (or looks like) a device of the host itself; "
                      "name the tunnel something of its own, like cc0")
    return value


InterfaceName = Annotated[
    str,
    Field(pattern=f"^{_IFACE_RE}$"),
    AfterValidator(_iface),
    Field(description="Tunnel interface name: 1-15 of a-z, 0-9, '_', starting with a letter; "
          "not a name the host's own devices use (lo, eth0, ens3, …)."),
]


@cache
def _suffixes() -> Any:
    from publicsuffixlist import PublicSuffixList  # 0.1 s to load: only when a domain is checked

    return PublicSuffixList(accept_unknown=False)


def _domain(value: str) -> str:
    name = value.rstrip(".")
    labels = name.split(".")
    if not name or len(name) > 200 or not all(re.match(rf"\A{LABEL_RE}\Z", lab, re.ASCII) for lab in labels):
        raise _refuse("domain", value, "is not a valid domain name")
    if labels[-1].isdigit():
        raise _refuse("domain", value, "is not a valid domain name (its last label is a number)")
    if _suffixes().is_public(name.lower()):
        raise _refuse("domain", value, "is a public suffix: names under it belong to others "
                      "(use a domain of your own, like vpc.internal)")
    if name.lower() in SYSTEM_NAMES:
        raise _refuse("domain", value, "is a name the system already uses; pick another")
    return name


Domain = Annotated[
    str,
    Field(min_length=1, max_length=200),
    AfterValidator(_domain),
    _schema(rf"{LABEL_RE}(?:\.{LABEL_RE})*\.?", "A DNS domain of your own (not a public suffix like com)."),
]


def _url(value: str) -> str:
    if len(value) > 2048 or any(c.isspace() or not c.isprintable() or c in "\"'`\\{}<>" for c in value):
        raise _refuse("url", value, "is not an http(s) URL (no spaces, quotes or braces)")
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises on a port that is not a number in range
    except ValueError:
        raise _refuse("url", value, "is not an http(s) URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        raise _refuse("url", value, "is not an http(s) URL like http://127.0.0.1:5000 (no credentials)")
    _host(parts.hostname)
    return value


HttpUrl = Annotated[
    str,
    AfterValidator(_url),
    Field(json_schema_extra={"format": "uri", "pattern": "^https?://"}),
]

_BUCKET_RE = r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"
BucketName = Annotated[
    str,
    _matcher("bucket", _BUCKET_RE, "is not an S3 bucket name (3-63 of a-z, 0-9, '.', '-')"),
    _schema(_BUCKET_RE, "An S3 bucket name."),
]

_AWS_REGION_RE = r"[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}"
AwsRegion = Annotated[
    str,
    _matcher("region", _AWS_REGION_RE, "is not an AWS region like us-east-1"),
    _schema(_AWS_REGION_RE, "An AWS region like us-east-1."),
]

_TABLE_RE = r"[A-Za-z0-9_.-]{3,255}"
TableName = Annotated[
    str,
    _matcher("table", _TABLE_RE, "is not a DynamoDB table name (3-255 of letters, digits, '_', '.', '-')"),
    _schema(_TABLE_RE, "A DynamoDB table name."),
]

_KEY_RE = r"[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*/?"


def _s3_key(value: str) -> str:
    parts = value.rstrip("/").split("/")
    shaped = len(value) <= 512 and re.match(rf"\A{_KEY_RE}\Z", value, re.ASCII)
    if not shaped or any(p in (".", "..") for p in parts):
        raise _refuse("key", value, "is not an S3 key prefix that stays where it says "
                      "(segments of letters, digits, '_', '.', '-' joined by '/'; no '..', no leading '/')")
    return value


S3Key = Annotated[str, AfterValidator(_s3_key), _schema(_KEY_RE, "An S3 key prefix: a/b/c.")]


def _dir(value: str) -> str:
    _path(value)
    if ".." in posixpath.normpath(value).split("/") or ".." in value.split("/"):
        raise _refuse("dir", value, "leaves the place it names ('..'); give the directory itself")
    return value


StateDir = Annotated[
    str, AfterValidator(_dir), _schema(_PATH_RE, "A directory; relative paths are relative to the spec.")
]


def _text(value: str) -> str:
    if any(not c.isprintable() and c not in "\n\t" for c in value):
        raise _refuse("text", value, "has control characters")
    return value


Text = Annotated[str, Field(max_length=4000), AfterValidator(_text)]


def _cidr(value: Any) -> Any:
    # strings only: JSON numbers would otherwise become /32 networks (10 → 0.0.0.10/32)
    if isinstance(value, IPv4Network | str):
        return value
    raise _refuse("cidr", value, "is not a CIDR string like 10.0.0.0/16")


Cidr = Annotated[IPv4Network, BeforeValidator(_cidr)]

Port = Annotated[StrictInt, Field(ge=1, le=65535)]


def _nat(value: Any) -> Any:
    # one clear line instead of one per member of the union; "yes" and 1 are not booleans
    if value is True or value is False or value == "double":
        return value
    raise _refuse("nat", value, 'must be true, false or "double"')


BehindNat = Annotated[StrictBool | Literal["double"], BeforeValidator(_nat)]



def _schema_ref(value: str) -> str:
    try:
        return _url(value)
    except PydanticCustomError:
        pass
    try:
        return _path(value)
    except PydanticCustomError:
        raise _refuse("schema", value, "is not a JSON Schema URL or path") from None


SchemaRef = Annotated[str, AfterValidator(_schema_ref)]
