"""Read the spec file into plain data, within bounds: the spec is untrusted input.

It may come from a pull request, so only a regular file of at most MAX_BYTES is read, and
nesting, integers, floats, YAML aliases and tags are bounded: every document ends in a value
or in a SpecError with one line per problem, fast and in little memory.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from array import array
from itertools import accumulate
from pathlib import Path
from typing import Any

import yaml

from cloudcast.errors import SpecError
from cloudcast.spec.paths import ECHO_LIMIT, shorten

MAX_BYTES = 10 * 1024 * 1024
MAX_DEPTH = 32  # nested objects and arrays; a real spec needs about 7
MAX_INT_DIGITS = 12
MAX_VALUES = 100_000  # keys and values; more would have pydantic hold an error for each (7 GB at 4M)
MAX_ALIAS_NODES = 10_000  # nodes all YAML aliases together may stand for (a "billion laughs" is 10**9)
TOO_DEEP = f"(spec): nested deeper than {MAX_DEPTH} levels"
TOO_MANY = f"(spec): more than {MAX_VALUES} values"
_TOO_LARGE = f"too large (more than {MAX_BYTES // 2**20} MB)"


def read_document(path: Path) -> Any:
    """Read JSON (or YAML for .yaml/.yml) from `path`; problems carry line and column where known."""
    text = _decode(path, _read_bounded(path))
    try:
        if path.suffix.lower() in {".yaml", ".yml"}:
            return _load_yaml(path, text)
        return _load_json(path, text)
    except _Refused as exc:
        where = f"{path}:{exc.mark.line + 1}:{exc.mark.column + 1}" if exc.mark else str(path)
        raise SpecError([f"{where}: {exc.message}"]) from None


class _Refused(Exception):
    """A value or construct the reader does not accept; `mark` places it in a YAML file."""

    def __init__(self, message: str, mark: Any = None) -> None:  # yaml.error.Mark (or libyaml's)
        super().__init__(message)
        self.message = message
        self.mark = mark


def _read_bounded(path: Path) -> bytes:
    """The bytes of the regular file at `path`; past MAX_BYTES it is refused, never read whole."""
    try:
        kind = _not_regular(os.stat(path).st_mode)
        if kind:
            raise SpecError([f"{path}: not a regular file ({kind})"])
        # O_NONBLOCK: a FIFO swapped in after the stat still cannot make open() wait for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        raise SpecError([f"{path}: no such file"]) from None
    except OSError as exc:
        raise SpecError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    try:
        info = os.fstat(fd)
        kind = _not_regular(info.st_mode)
        if kind:
            raise SpecError([f"{path}: not a regular file ({kind})"])
        if info.st_size > MAX_BYTES:
            raise SpecError([f"{path}: {_TOO_LARGE}"])
        chunks: list[bytes] = []
        left = MAX_BYTES + 1  # the one byte more tells a file that grew (or never ends) from one that fits
        while left > 0 and (chunk := os.read(fd, min(left, 2**20))):
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise SpecError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    finally:
        os.close(fd)
    if left <= 0:
        raise SpecError([f"{path}: {_TOO_LARGE}"])
    return b"".join(chunks)


def _not_regular(mode: int) -> str:
    """What a non-regular file is ('a FIFO', …), or '' for a regular file."""
    if stat.S_ISREG(mode):
        return ""
    kinds = [
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ]
    return next((name for test, name in kinds if test(mode)), "of an unknown kind")


def _decode(path: Path, data: bytes) -> str:
    """`data` as UTF-8 text; a NUL or an invalid byte is refused with its line and column."""
    nul = data.find(b"\0")
    if nul >= 0:
        raise SpecError([f"{_at(path, data, nul)}: not UTF-8 text: NUL byte"])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = _at(path, data, exc.start)
        raise SpecError([f"{where}: not UTF-8 text: invalid byte 0x{data[exc.start]:02x}"]) from None


def _at(path: Path, data: bytes, offset: int) -> str:
    """`path:line:column` of a byte offset (the column counts bytes)."""
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return f"{path}:{line}:{column}"


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # brackets inside do not nest
# openers become +1 and closers -1 (as signed bytes), every other byte is dropped
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def _load_json(path: Path, text: str) -> Any:
    outside = _JSON_STRING.sub("", text)  # the text outside strings: its brackets, commas and colons
    if outside.count(",") + outside.count(":") > MAX_VALUES:
        raise SpecError([TOO_MANY])
    if _json_too_deep(outside):
        raise SpecError([TOO_DEEP])
    try:
        return json.loads(
            text,
            object_pairs_hook=_no_duplicate_keys,
            parse_int=_json_int,
            parse_float=_json_float,
            parse_constant=_json_constant,
        )
    except json.JSONDecodeError as exc:
        raise SpecError([f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}"]) from None
    except RecursionError:  # the depth scan rules it out; kept so it can never be an internal error
        raise SpecError([TOO_DEEP]) from None


def _json_too_deep(outside: str) -> bool:
    """Whether brackets in JSON text without its strings nest past MAX_DEPTH (json.loads would recurse)."""
    # UTF-8 never puts an ASCII byte inside a longer character, so bytes are safe to filter
    steps = array("b", outside.encode("utf-8").translate(_STEPS, _NOT_BRACKET))
    # the running sum of +1/-1 is the depth; filter, accumulate and next stay in C and stop early
    return next(filter(MAX_DEPTH.__lt__, accumulate(steps)), None) is not None


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(f"duplicate key {shorten(key)} in one object")
        out[key] = value
    return out


def _json_int(text: str) -> int:
    # checked before int(): a 5,000-digit number would fail on Python's int_max_str_digits
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _Refused(f"integer {shorten(text)} has more than {MAX_INT_DIGITS} digits")
    return int(text)


def _json_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999
        raise _Refused(f"number {shorten(text)} is not allowed (numbers must be finite)")
    return value


def _json_constant(name: str) -> float:
    raise _Refused(f"number {shorten(name)} is not allowed (numbers must be finite)")


def _load_yaml(path: Path, text: str) -> Any:
    try:
        loader = _SpecLoader(text)  # PyYAML's reader refuses unprintable characters already here
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        # PyYAML's problems may quote the input (an undefined alias): one short line
        raise SpecError([f"{where}: invalid YAML: {_one_line(exc.problem or exc.context)}"]) from None
    except yaml.reader.ReaderError as exc:
        at = exc.position
        before = text.encode()[:at].decode(errors="ignore") if _BYTE_OFFSETS else text[:at]
        line, column = before.count("\n") + 1, len(before) - before.rfind("\n")
        problem = f"character #x{exc.character:04x} is not allowed"
        raise SpecError([f"{path}:{line}:{column}: invalid YAML: {problem}"]) from None
    except yaml.YAMLError as exc:
        raise SpecError([f"{path}: invalid YAML: {_one_line(str(exc))}"]) from None


def _one_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines() or ["syntax error"]
    return lines[0] if len(lines[0]) <= 2 * ECHO_LIMIT else lines[0][: 2 * ECHO_LIMIT] + "…"


_YAML_TAG = "tag:yaml.org,2002:"

try:
    from yaml._yaml import CParser as _Parser  # libyaml scans and parses in C, five times faster

    _BYTE_OFFSETS = True  # where libyaml's reader errors are, in bytes (marks count characters)
except ImportError:  # PyYAML built without libyaml: the same events, from Python
    _BYTE_OFFSETS = False

    class _Parser(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)


class _SpecLoader(yaml.composer.Composer, _Parser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
    """`yaml.safe_load` without tags or duplicate keys, with limits on nesting, size and aliases.

    Implicit types (ints, floats, booleans, null, dates) resolve as in `yaml.safe_load`, but
    ints are bounded and floats finite, as in JSON. The structure is checked while composing
    (in Python, here, not in libyaml), before anything is constructed, so an alias bomb stops
    after MAX_ALIAS_NODES nodes.
    """

    def __init__(self, stream: str) -> None:
        _Parser.__init__(self, stream)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)
        self._values = 0
        self._depth = 0  # collections open around the node being composed
        self._alias_nodes = 0
        # id(node) -> (nodes it stands for with its aliases expanded, collections nested in it)
        self._shape: dict[int, tuple[int, int]] = {}

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            shape = self._shape.get(id(node))
            if shape is None:  # the anchored node is still open: the alias is inside it
                raise _Refused(f"alias {shorten(event.anchor)} is inside its own anchor", event.start_mark)
            self._alias_nodes += shape[0]
            if self._alias_nodes > MAX_ALIAS_NODES:
                raise _Refused(f"aliases expand to more than {MAX_ALIAS_NODES} nodes", event.start_mark)
            if self._depth + shape[1] > MAX_DEPTH:
                raise SpecError([TOO_DEEP])
            return node
        # any tag, even !!str: a spec is plain data, and tags are how YAML builds objects
        if isinstance(event, yaml.ScalarEvent | yaml.CollectionStartEvent) and event.tag is not None:
            tag = event.tag
            written = "!!" + tag.removeprefix(_YAML_TAG) if tag.startswith(_YAML_TAG) else tag
            raise _Refused(f"tag {shorten(written)} is not allowed", event.start_mark)
        self._values += 1
        if self._values > MAX_VALUES:
            raise SpecError([TOO_MANY])
        collection = isinstance(event, yaml.CollectionStartEvent)
        self._depth += collection
        if self._depth > MAX_DEPTH:
            raise SpecError([TOO_DEEP])
        node = super().compose_node(parent, index)
        if not collection:
            self._shape[id(node)] = (1, 0)
            return node
        self._depth -= 1
        children: list[yaml.Node] = node.value if isinstance(node, yaml.SequenceNode) else []
        if isinstance(node, yaml.MappingNode):
            _refuse_duplicate_keys(node)
            children = [part for pair in node.value for part in pair]
        shapes = [self._shape[id(child)] for child in children]
        size = 1 + sum(s for s, _ in shapes)
        height = 1 + max((h for _, h in shapes), default=0)
        self._shape[id(node)] = (size, height)
        return node


def _refuse_duplicate_keys(node: yaml.MappingNode) -> None:
    """Refuse a key written twice in one mapping, as in JSON (merge keys `<<` may repeat)."""
    seen: set[tuple[str, str]] = set()
    for key, _ in node.value:
        if isinstance(key, yaml.ScalarNode) and key.tag != _YAML_TAG + "merge":
            if (key.tag, key.value) in seen:
                raise _Refused(f"duplicate key {shorten(key.value)} in one object", key.start_mark)
            seen.add((key.tag, key.value))


def _yaml_int(loader: _SpecLoader, node: yaml.ScalarNode) -> int:
    # the text is checked before int(), as in JSON (sexagesimal 1:30 and 0x1f count their digits)
    if len(re.sub(r"^[-+]?0[xb]|[-+_:]", "", node.value)) > MAX_INT_DIGITS:
        raise _Refused(f"integer {shorten(node.value)} has more than {MAX_INT_DIGITS} digits",
                       node.start_mark)
    value: int = loader.construct_yaml_int(node)
    return value


def _yaml_float(loader: _SpecLoader, node: yaml.ScalarNode) -> float:
    try:
        value: float = loader.construct_yaml_float(node)
    except ValueError:  # the resolver's pattern admits a few texts float() does not
        raise _Refused(f"invalid number {shorten(node.value)}", node.start_mark) from None
    if not math.isfinite(value):  # .inf, .nan, 1.0e+999
        raise _Refused(f"number {shorten(node.value)} is not allowed (numbers must be finite)",
                       node.start_mark)
    return value


def _yaml_timestamp(loader: _SpecLoader, node: yaml.ScalarNode) -> Any:
    try:
        return loader.construct_yaml_timestamp(node)
    except (ValueError, OverflowError):  # shaped like a date but none (2001-13-45)
        raise _Refused(f"invalid date {shorten(node.value)}", node.start_mark) from None


# the stubs want constructors of any Node; these tags resolve on plain scalars only (tags are refused)
for _tag, _construct in (("int", _yaml_int), ("float", _yaml_float), ("timestamp", _yaml_timestamp)):
    yaml.add_constructor(_YAML_TAG + _tag, _construct, Loader=_SpecLoader)  # type: ignore[arg-type]
