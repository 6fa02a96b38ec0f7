"""Loading an untrusted spec is bounded: every hostile file ends in one clean line, fast and small.

Each case runs `cloudcast validate PATH` in-process and pins what the user sees: exit 1, the
exact problem line(s), no traceback, under 5 s, and under 300 MB at tracemalloc's peak (in a
second run: tracemalloc makes Python several times slower).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cloudcast.errors import SpecError
from cloudcast.spec import load_spec
from cloudcast.spec.paths import shorten

# a hang (a FIFO opened for reading waits for a writer) fails the test instead of the run
pytestmark = pytest.mark.timeout(60)

Cli = Callable[..., Any]
LAB = {"name": "t", "sites": [{"name": "lab", "provider": "lab", "nodes": [{"name": "a"}]}]}
ONE = "cloudcast: error: the spec has 1 problem"
DIGITS = "1" * 5000
CUT = repr("1" * 80) + "…"  # what a 5,000-digit number is cut to in a message


def refused(cli: Cli, path: Path, *, traced: bool = True) -> list[str]:
    """stderr lines of `cloudcast validate PATH`, after checking it failed cleanly, fast and small."""
    start = time.monotonic()
    res = cli("validate", str(path))
    elapsed = time.monotonic() - start
    assert res.code == 1, res.err
    assert "Traceback" not in res.err and "internal error" not in res.err, res.err
    assert elapsed < 5, f"took {elapsed:.1f} s"
    if traced:
        tracemalloc.start()
        try:
            again = cli("validate", str(path))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert again.err == res.err
        assert peak < 300 * 2**20, f"peak {peak / 2**20:.0f} MB"
    lines: list[str] = res.err.splitlines()
    return lines


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


# --- what is read: regular files only, at most 10 MB ------------------------------------------


def test_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path, cli: Cli) -> None:
    fifo = tmp_path / "spec.json"
    os.mkfifo(fifo)
    assert refused(cli, fifo) == [f"{fifo}: not a regular file (a FIFO)", ONE]


def test_dev_zero_is_refused(cli: Cli) -> None:
    assert refused(cli, Path("/dev/zero")) == ["/dev/zero: not a regular file (a character device)", ONE]


def test_directory_is_refused(tmp_path: Path, cli: Cli) -> None:
    folder = tmp_path / "spec.json"
    folder.mkdir()
    assert refused(cli, folder) == [f"{folder}: not a regular file (a directory)", ONE]


def test_socket_is_refused(tmp_path: Path, cli: Cli) -> None:
    path = tmp_path / "spec.json"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        assert refused(cli, path) == [f"{path}: not a regular file (a socket)", ONE]


def test_file_over_10_mb_is_refused(tmp_path: Path, cli: Cli) -> None:
    path = tmp_path / "spec.json"
    with path.open("wb") as f:
        f.truncate(11 * 2**20)  # sparse: the size alone refuses it
    assert refused(cli, path) == [f"{path}: too large (more than 10 MB)", ONE]


def test_nul_byte_is_refused(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path / "spec.json", b'{"name": "t",\n "x": "a\x00b"}')
    assert refused(cli, path) == [f"{path}:2:9: not UTF-8 text: NUL byte", ONE]


def test_yaml_control_character_is_refused(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path / "spec.yaml", "name: t\ndescription: é\x01\n")
    assert refused(cli, path) == [f"{path}:2:15: invalid YAML: character #x0001 is not allowed", ONE]


def test_invalid_utf8_is_refused(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path / "spec.yaml", b"name: t\ndescription: caf\xe9\n")
    assert refused(cli, path) == [f"{path}:2:17: not UTF-8 text: invalid byte 0xe9", ONE]


# --- YAML: no tags, no duplicate keys, an alias budget ---------------------------------------

LOL_BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 10)}]\n" for a, b in zip("abcdefghi", "bcdefghij", strict=True)
)


def test_yaml_alias_bomb_stops_fast(tmp_path: Path, cli: Cli) -> None:
    # 10 levels of 10: ten billion "lol"s if the aliases were expanded
    path = write(tmp_path / "spec.yaml", LOL_BOMB)
    assert refused(cli, path) == [f"{path}:4:36: aliases expand to more than 10000 nodes", ONE]


def test_yaml_alias_inside_its_own_anchor(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path / "spec.yaml", "name: t\nsites: &s [*s]\n")
    assert refused(cli, path) == [f"{path}:2:12: alias 's' is inside its own anchor", ONE]


def test_yaml_duplicate_key(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path / "spec.yaml", "name: t\nsites: []\nname: u\n")
    assert refused(cli, path) == [f"{path}:3:1: duplicate key 'name' in one object", ONE]


def test_json_duplicate_key_is_cut(tmp_path: Path, cli: Cli) -> None:
    key = "k" * 1000
    path = write(tmp_path / "spec.json", f'{{"{key}": 1, "{key}": 2}}')
    assert refused(cli, path) == [f"{path}: duplicate key {'k' * 80!r}… in one object", ONE]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("!!python/object/apply:os.system ['touch {marker}']", "!!python/object/apply:os.system"),
        ("!!binary aGVsbG8=", "!!binary"),
        ("!custom x", "!custom"),
        ("!!str t", "!!str"),
    ],
)
def test_yaml_tags_are_refused(tmp_path: Path, cli: Cli, value: str, shown: str) -> None:
    marker = tmp_path / "ran"
    path = write(tmp_path / "spec.yaml", f"name: {value.format(marker=marker)}\nsites: []\n")
    assert refused(cli, path) == [f"{path}:1:7: tag {shown!r} is not allowed", ONE]
    assert not marker.exists()


def test_yaml_anchors_and_merge_keys_still_load(tmp_path: Path) -> None:
    path = write(
        tmp_path / "spec.yaml",
        "name: t\nsites:\n  - name: lab\n    provider: lab\n"
        "    nodes: [&a {name: a, behind_nat: true}, {<<: *a, name: b}, {<<: *a, name: c, behind_nat: false}]\n",
    )
    spec = load_spec(path)
    assert [(n.name, n.behind_nat) for _, n in spec.all_nodes()] == [("a", True), ("b", True), ("c", False)]


# --- nesting and numbers, in both formats -----------------------------------------------------


def test_json_100000_deep_is_one_line(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path / "spec.json", "[" * 100_000)
    assert refused(cli, path) == ["(spec): nested deeper than 32 levels", ONE]


def test_json_33_deep_is_refused_and_brackets_in_strings_do_not_count(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path / "spec.json", '{"a":' * 33 + "1" + "}" * 33)
    assert refused(cli, path) == ["(spec): nested deeper than 32 levels", ONE]
    doc = dict(LAB, description="[{" * 1000)
    assert load_spec(write(tmp_path / "ok.json", json.dumps(doc))).description == "[{" * 1000


def test_yaml_100000_deep_is_one_line(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path / "spec.yaml", "[" * 100_000)
    assert refused(cli, path) == ["(spec): nested deeper than 32 levels", ONE]


def test_yaml_block_nesting_and_deep_aliases_are_refused(tmp_path: Path, cli: Cli) -> None:
    block = write(tmp_path / "block.yaml", "".join("  " * i + "a:\n" for i in range(40)))
    assert refused(cli, block) == ["(spec): nested deeper than 32 levels", ONE]
    # each half is 20 deep; the alias puts one inside the other
    half = "[" * 20 + "]" * 20
    aliased = write(tmp_path / "alias.yaml", f"a: &a {half}\nb: {'[' * 20}*a{']' * 20}\n")
    assert refused(cli, aliased) == ["(spec): nested deeper than 32 levels", ONE]


def test_json_5000_digit_integer(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path / "spec.json", json.dumps(LAB)[:-1] + f', "network": {{"port": {DIGITS}}}}}')
    assert refused(cli, path) == [f"{path}: integer {CUT} has more than 12 digits", ONE]


def test_yaml_5000_digit_integer(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path / "spec.yaml", f"name: t\nnetwork:\n  port: {DIGITS}\n")
    assert refused(cli, path) == [f"{path}:3:9: integer {CUT} has more than 12 digits", ONE]


@pytest.mark.parametrize(
    ("name", "text", "where", "shown"),
    [
        ("spec.json", '{"network": {"mtu": NaN}}', "", "NaN"),
        ("spec.json", '{"network": {"mtu": -Infinity}}', "", "-Infinity"),
        ("spec.json", '{"network": {"mtu": 1e999}}', "", "1e999"),
        ("spec.yaml", "network:\n  mtu: .nan\n", ":2:8", ".nan"),
        ("spec.yaml", "network:\n  mtu: -.inf\n", ":2:8", "-.inf"),
    ],
)
def test_non_finite_numbers(tmp_path: Path, cli: Cli, name: str, text: str, where: str, shown: str) -> None:
    path = write(tmp_path / name, text)
    assert refused(cli, path) == [f"{path}{where}: number {shown!r} is not allowed (numbers must be finite)", ONE]


def test_yaml_impossible_date(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path / "spec.yaml", "name: t\ndescription: 2001-13-45\n")
    assert refused(cli, path) == [f"{path}:2:14: invalid date '2001-13-45'", ONE]


def test_json_with_more_than_100000_values(tmp_path: Path, cli: Cli) -> None:
    # pydantic would hold an error for each: 4 million of them took 7 GB
    path = write(tmp_path / "spec.json", json.dumps(dict(LAB, sites=[1] * 100_000)))
    assert refused(cli, path) == ["(spec): more than 100000 values", ONE]


def test_yaml_with_more_than_100000_values(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path / "spec.yaml", "name: t\nsites: [" + "1, " * 100_000 + "]\n")
    # untraced: 100,000 nodes take tracemalloc 10 s (the YAML composer is Python)
    assert refused(cli, path, traced=False) == ["(spec): more than 100000 values", ONE]


def test_pure_python_yaml_parser_has_the_same_bounds(tmp_path: Path) -> None:
    # PyYAML built without libyaml parses in Python: the bounds do not depend on the C parser
    cases = {
        "bomb.yaml": (LOL_BOMB, "bomb.yaml:4:36: aliases expand to more than 10000 nodes"),
        "tag.yaml": ("a: !!binary aGVsbG8=\n", "tag.yaml:1:4: tag '!!binary' is not allowed"),
        "dup.yaml": ("a: 1\na: 2\n", "dup.yaml:2:1: duplicate key 'a' in one object"),
        "deep.yaml": ("[" * 100_000, "(spec): nested deeper than 32 levels"),
        "ctl.yaml": ("a: é\x01\n", "ctl.yaml:1:5: invalid YAML: character #x0001 is not allowed"),
    }
    for name, (text, _) in cases.items():
        write(tmp_path / name, text)
    script = (
        "import sys; sys.modules['yaml._yaml'] = None\n"  # as if libyaml were not there
        "from pathlib import Path\n"
        "from cloudcast.errors import SpecError\n"
        "from cloudcast.spec.reader import read_document, _SpecLoader\n"
        "assert 'CParser' not in str(_SpecLoader.__mro__)\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        read_document(Path(name))\n"
        "    except SpecError as exc:\n"
        "        print(*exc.problems)\n"
    )
    res = subprocess.run([sys.executable, "-c", script, *cases], cwd=tmp_path, capture_output=True,
                         text=True, timeout=30, check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [line for _, line in cases.values()]


# --- the report is bounded --------------------------------------------------------------------


def test_100_kb_name_is_cut_in_the_message(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path / "spec.json", json.dumps(dict(LAB, name="x" * 100_000)))
    expected = f"name: string should have at most 63 characters ({'x' * 80!r}…)"
    assert refused(cli, path) == [expected, ONE]


def test_100_kb_unknown_key_is_cut_in_the_path(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path / "spec.json", json.dumps(dict(LAB, **{"y" * 100_000: 1})))
    lines = refused(cli, path)
    assert lines[0].startswith("y" * 80 + "…: unknown key; known keys: $schema, name, ")
    assert lines[1:] == [ONE]


def test_3000_duplicate_names_print_20_lines_and_a_count(tmp_path: Path, cli: Cli) -> None:
    doc = dict(LAB, sites=[{"name": "lab", "provider": "lab", "nodes": [{"name": "n"}] * 3000}])
    path = write(tmp_path / "spec.json", json.dumps(doc))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    count = len(info.value.problems)  # programs still get every problem
    assert count >= 2999
    lines = refused(cli, path)
    assert len(lines) == 22
    assert lines[0] == "sites[0].nodes[1].name: duplicate node name 'n' (also sites[0].nodes[0].name)"
    assert lines[-2:] == [f"and {count - 20} more problems", f"cloudcast: error: the spec has {count} problems"]


def test_report_cuts_overlong_lines_and_counts_the_rest() -> None:
    err = SpecError(["x" * 1000, *(f"p{i}" for i in range(21))])
    lines = err.report()
    assert lines[0] == "x" * 400 + "…"
    assert lines[1:20] == [f"p{i}" for i in range(19)]
    assert lines[20:] == ["and 2 more problems"]
    assert SpecError(["a", "b"]).report() == ["a", "b"]


def test_shorten() -> None:
    assert shorten("abc") == "'abc'"
    assert shorten("a" * 81) == repr("a" * 80) + "…"
    assert shorten(None) == "None"
    assert shorten(list(range(100))) == repr(list(range(100)))[:80] + "…"
