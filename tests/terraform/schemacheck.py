"""Check Terraform resources and data sources against a provider schema.

The linode/linode and vultr/vultr providers cannot be downloaded where cloudcast is
built, so `terraform validate` cannot check Terraform written for them. This module
does the part of `validate` that matters most for hand-written and generated HCL: it
reads `*.tf` (with python-hcl2) and `*.tf.json` files and checks every `resource` and
`data` block of one provider against that provider's schema, in the shape of
`terraform providers schema -json`:

- the resource/data-source type exists;
- every argument is an attribute or a nested block type of the schema, used with the
  right syntax (`name = ...` for attributes, `name { ... }` for blocks);
- no computed-only attribute is set; deprecated ones are reported;
- every required attribute and every block with `min_items` is present;
- nested blocks recursively: nesting mode (`single`/`group` at most once) and
  `max_items`; `dynamic` blocks are checked through their `content`;
- nested attribute types (`nested_type`, e.g. Linode's `ipv6 = [{ range = "/52" }]`);
- literal values against the attribute type (a list where a string is expected...);
- when the schema file carries `x_annotations` (the fixtures in tests/fixtures/schemas
  do): literal strings against `allowed_values` and `length_between`, and
  `conflicts_with` / `required_with` between arguments of the same block.

Values that are expressions (references, function calls, templates) are unknown here
and pass the value checks. Problems read `file:type.name.path: message`, for example
`main.tf:linode_instance.node.interface[1].ipv4[0].vpcx: unknown argument`.

Use `check_module(module_dir, schema_path, provider)`, or from a shell:
`python tests/terraform/schemacheck.py tf/linode tests/fixtures/schemas/linode.json linode`.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2

__all__ = ["Expr", "check_module", "check_texts", "load_provider_schema"]

# Arguments Terraform itself handles in every resource and data block.
META_ARGUMENTS = frozenset({"count", "for_each", "provider", "depends_on"})
META_BLOCKS = frozenset({"lifecycle", "provisioner", "connection", "precondition", "postcondition"})
ANNOTATION_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class Expr:
    """A value only Terraform can compute (reference, call, template...)."""

    text: str


@dataclass
class Body:
    """The arguments and nested blocks of one block.

    HCL native syntax says which names are blocks; JSON syntax does not, so JSON
    bodies keep their members in `undecided` until the schema says which is which.
    """

    attrs: dict[str, Any] = field(default_factory=dict)
    blocks: dict[str, list[Body]] = field(default_factory=dict)
    dynamic: dict[str, list[Body]] = field(default_factory=dict)
    undecided: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Block:
    """One resource or data block found in a file."""

    file: str
    kind: str  # "resource" or "data"
    type: str
    name: str
    body: Body

    @property
    def address(self) -> str:
        prefix = "data." if self.kind == "data" else ""
        return f"{self.file}:{prefix}{self.type}.{self.name}"


@dataclass(frozen=True)
class ProviderSchema:
    resources: Mapping[str, Any]
    data_sources: Mapping[str, Any]
    resource_annotations: Mapping[str, Mapping[str, Any]]
    data_annotations: Mapping[str, Mapping[str, Any]]


# --- schema -------------------------------------------------------------------


@functools.cache
def _read_json(path: str) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def load_provider_schema(schema_path: str | Path, provider: str) -> ProviderSchema:
    """The schema of `provider` ("linode", or a full "registry.terraform.io/linode/linode")."""
    document = _read_json(str(Path(schema_path).resolve()))
    schemas: Mapping[str, Any] = document.get("provider_schemas", {})
    matches = [
        address for address in schemas if address == provider or address.rsplit("/", 1)[-1] == provider
    ]
    if len(matches) != 1:
        raise ValueError(f"{schema_path}: expected one provider named {provider!r}, found {sorted(schemas)}")
    schema = schemas[matches[0]]
    annotations = document.get("x_annotations", {})
    return ProviderSchema(
        resources=schema.get("resource_schemas", {}),
        data_sources=schema.get("data_source_schemas", {}),
        resource_annotations=annotations.get("resource_schemas", {}),
        data_annotations=annotations.get("data_source_schemas", {}),
    )


# --- reading HCL and JSON -------------------------------------------------------

_HCL_OPTIONS = hcl2.SerializationOptions(with_comments=False, explicit_blocks=True)


def _unquote(label: str) -> str:
    if len(label) >= 2 and label[0] == label[-1] == '"':
        return label[1:-1]
    return label


def _hcl_value(value: Any) -> Any:
    """python-hcl2's serialization of a value -> a literal or an `Expr`."""
    if isinstance(value, str):
        if len(value) >= 2 and value[0] == value[-1] == '"':
            inner = value[1:-1]
            if "${" in inner or "%{" in inner or inner.startswith("<<"):
                return Expr(value)
            try:
                decoded: Any = json.loads(value)
            except json.JSONDecodeError:
                return inner
            return decoded if isinstance(decoded, str) else inner
        return Expr(value)
    if isinstance(value, list):
        return [_hcl_value(v) for v in value]
    if isinstance(value, dict):
        return {_unquote(k): _hcl_value(v) for k, v in value.items() if not k.startswith("__")}
    return value  # None, bool, int, float


def _is_hcl_block_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) > 0
        and all(isinstance(v, dict) and v.get("__is_block__") is True for v in value)
    )


def _hcl_body(raw: Mapping[str, Any]) -> Body:
    body = Body()
    for key, value in raw.items():
        if key.startswith("__"):
            continue
        if key == "dynamic" and isinstance(value, list):
            # dynamic "name" { ... } -> [{'"name"': {..., "__is_block__": True}}]
            for entry in value:
                for label, dyn in entry.items():
                    if label.startswith("__"):
                        continue
                    contents = dyn.get("content", [])
                    content_bodies = [_hcl_body(c) for c in contents] if contents else [Body()]
                    body.dynamic.setdefault(_unquote(label), []).extend(content_bodies)
        elif _is_hcl_block_list(value):
            body.blocks.setdefault(key, []).extend(_hcl_body(v) for v in value)
        else:
            body.attrs[key] = _hcl_value(value)
    return body


def _json_value(value: Any) -> Any:
    if isinstance(value, str):
        return Expr(value) if ("${" in value or "%{" in value) else value
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items() if k != "//"}
    return value


def _json_body(raw: Mapping[str, Any]) -> Body:
    body = Body()
    for key, value in raw.items():
        if key == "//":
            continue
        if key == "dynamic" and isinstance(value, dict):
            for label, dyns in value.items():
                for dyn in dyns if isinstance(dyns, list) else [dyns]:
                    content = dyn.get("content", {}) if isinstance(dyn, dict) else {}
                    contents = content if isinstance(content, list) else [content]
                    body.dynamic.setdefault(label, []).extend(_json_body(c) for c in contents)
        else:
            body.undecided[key] = value
    return body


def _json_block_bodies(value: Any) -> list[Body] | None:
    """A JSON member used as a block: one object or a list of objects."""
    if isinstance(value, dict):
        return [_json_body(value)]
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return [_json_body(v) for v in value]
    return None


def _blocks_in_hcl(file: str, text: str) -> Iterator[Block]:
    document = hcl2.loads(text, serialization_options=_HCL_OPTIONS)
    for kind in ("resource", "data"):
        for entry in document.get(kind, []):
            for rtype, named in entry.items():
                if rtype.startswith("__"):
                    continue
                for rname, raw in named.items():
                    if rname.startswith("__"):
                        continue
                    yield Block(file, kind, _unquote(rtype), _unquote(rname), _hcl_body(raw))


def _blocks_in_json(file: str, text: str) -> Iterator[Block]:
    document = json.loads(text)
    for kind in ("resource", "data"):
        sections = document.get(kind, [])
        for section in sections if isinstance(sections, list) else [sections]:
            for rtype, named in section.items():
                for rname, raws in named.items():
                    for raw in raws if isinstance(raws, list) else [raws]:
                        yield Block(file, kind, rtype, rname, _json_body(raw))


# --- checking -------------------------------------------------------------------


def _type_name(type_: Any) -> str:
    return type_ if isinstance(type_, str) else json.dumps(type_)


def _check_type(value: Any, type_: Any, where: str, problems: list[str]) -> None:
    """Literal `value` against a cty type in schema JSON form."""
    if value is None or isinstance(value, Expr) or type_ == "dynamic":
        return
    mismatch = f"{where}: expected {_type_name(type_)}, got {json.dumps(value, default=str)}"
    if type_ == "string":
        if isinstance(value, list | dict):
            problems.append(mismatch)
    elif type_ == "number":
        if isinstance(value, bool | list | dict):
            problems.append(mismatch)
        elif isinstance(value, str):
            try:
                float(value)
            except ValueError:
                problems.append(mismatch)
    elif type_ == "bool":
        if not isinstance(value, bool) and value not in ("true", "false"):
            problems.append(mismatch)
    elif isinstance(type_, list) and type_[0] in ("list", "set"):
        if not isinstance(value, list):
            problems.append(mismatch)
        else:
            for i, item in enumerate(value):
                _check_type(item, type_[1], f"{where}[{i}]", problems)
    elif isinstance(type_, list) and type_[0] == "map":
        if not isinstance(value, dict):
            problems.append(mismatch)
        else:
            for key, item in value.items():
                _check_type(item, type_[1], f"{where}.{key}", problems)
    elif isinstance(type_, list) and type_[0] == "object":
        if not isinstance(value, dict):
            problems.append(mismatch)
        else:
            for key, item in value.items():
                if key in type_[1]:
                    _check_type(item, type_[1][key], f"{where}.{key}", problems)
                else:
                    problems.append(f"{where}.{key}: unknown object attribute")
    elif (
        isinstance(type_, list)
        and type_[0] == "tuple"
        and (not isinstance(value, list) or len(value) != len(type_[1]))
    ):
        problems.append(mismatch)


@dataclass(frozen=True)
class _Context:
    annotations: Mapping[str, Any]
    problems: list[str]


def _check_annotations(ctx: _Context, schema_path: str, name: str, value: Any, where: str) -> None:
    """allowed_values / length_between of one literal argument."""
    notes = ctx.annotations.get(f"{schema_path}{name}")
    if not isinstance(notes, Mapping) or not isinstance(value, str):
        return
    allowed = notes.get("allowed_values")
    if isinstance(allowed, list) and allowed:
        ignore_case = bool(notes.get("allowed_values_ignore_case"))
        candidates = [str(a) for a in allowed]
        ok = value.lower() in (c.lower() for c in candidates) if ignore_case else value in candidates
        if not ok:
            ctx.problems.append(f"{where}: {value!r} is not one of {candidates}")
    bounds = notes.get("length_between")
    if isinstance(bounds, list) and len(bounds) == 2 and not bounds[0] <= len(value) <= bounds[1]:
        ctx.problems.append(f"{where}: length {len(value)} is outside {bounds[0]}..{bounds[1]}")


def _check_relations(ctx: _Context, schema_path: str, present: set[str], where: str) -> None:
    """conflicts_with / required_with between arguments of one block."""
    for name in sorted(present):
        notes = ctx.annotations.get(f"{schema_path}{name}")
        if not isinstance(notes, Mapping):
            continue
        for other in notes.get("conflicts_with", []) or []:
            if isinstance(other, str) and ANNOTATION_PATH.match(other) and other in present:
                ctx.problems.append(f"{where}.{name}: conflicts with {other}")
        for other in notes.get("required_with", []) or []:
            if isinstance(other, str) and ANNOTATION_PATH.match(other) and other not in present:
                ctx.problems.append(f"{where}.{name}: requires {other} to be set")


def _check_nested_attribute(
    ctx: _Context, value: Any, nested: Mapping[str, Any], schema_path: str, where: str
) -> None:
    """An attribute with `nested_type`: objects whose keys are nested attributes."""
    if value is None or isinstance(value, Expr):
        return
    mode = nested.get("nesting_mode", "single")
    objects: list[tuple[int | str | None, Any]]
    if mode in ("list", "set"):
        if not isinstance(value, list):
            ctx.problems.append(
                f"{where}: expected a list of objects (`{where.rsplit('.', 1)[-1]} = [{{...}}]`)"
            )
            return
        objects = list(enumerate(value))
    elif mode == "map":
        if not isinstance(value, dict):
            ctx.problems.append(f"{where}: expected a map of objects")
            return
        objects = list(value.items())
    else:
        objects = [(None, value)]
    for key, obj in objects:
        here = where if key is None else f"{where}[{json.dumps(key)}]"
        if isinstance(obj, Expr) or obj is None:
            continue
        if not isinstance(obj, dict):
            ctx.problems.append(f"{here}: expected an object, got {json.dumps(obj, default=str)}")
            continue
        _check_attributes(ctx, obj, nested.get("attributes", {}), schema_path, here)
        _check_relations(ctx, schema_path, set(obj), here)


def _check_attributes(
    ctx: _Context,
    attrs: Mapping[str, Any],
    schema_attrs: Mapping[str, Any],
    schema_path: str,
    where: str,
    block_types: Mapping[str, Any] | None = None,
) -> None:
    for name, value in attrs.items():
        here = f"{where}.{name}"
        attr = schema_attrs.get(name)
        if attr is None:
            if block_types is not None and name in block_types:
                ctx.problems.append(f"{here}: is a block; write `{name} {{ ... }}`, not `{name} = ...`")
            else:
                ctx.problems.append(f"{here}: unknown argument")
            continue
        if attr.get("computed") and not attr.get("optional") and not attr.get("required"):
            ctx.problems.append(f"{here}: computed-only attribute; it cannot be set")
            continue
        if attr.get("deprecated"):
            note = ctx.annotations.get(f"{schema_path}{name}")
            message = note.get("deprecated_message") if isinstance(note, Mapping) else None
            ctx.problems.append(f"{here}: deprecated" + (f" ({message})" if message else ""))
        if "nested_type" in attr:
            _check_nested_attribute(ctx, value, attr["nested_type"], f"{schema_path}{name}.", here)
        else:
            _check_type(value, attr.get("type", "dynamic"), here, ctx.problems)
            _check_annotations(ctx, schema_path, name, value, here)
    for name, attr in schema_attrs.items():
        if attr.get("required") and name not in attrs:
            ctx.problems.append(f"{where}: missing required argument {name!r}")


def _decide_json_members(body: Body, block: Mapping[str, Any], where: str, ctx: _Context) -> None:
    """JSON syntax: sort undecided members into attributes and blocks by the schema."""
    block_types: Mapping[str, Any] = block.get("block_types", {})
    for name, value in body.undecided.items():
        if name in block_types:
            bodies = _json_block_bodies(value)
            if bodies is None:
                ctx.problems.append(f"{where}.{name}: a block must be an object or a list of objects")
            else:
                body.blocks.setdefault(name, []).extend(bodies)
        else:
            body.attrs[name] = _json_value(value)
    body.undecided.clear()


def _check_body(
    ctx: _Context, body: Body, block: Mapping[str, Any], schema_path: str, where: str, top: bool
) -> None:
    _decide_json_members(body, block, where, ctx)
    meta = META_ARGUMENTS | META_BLOCKS if top else frozenset()
    attrs = {k: v for k, v in body.attrs.items() if k not in meta}
    blocks = {k: v for k, v in body.blocks.items() if k not in meta}
    schema_attrs: Mapping[str, Any] = block.get("attributes", {})
    block_types: Mapping[str, Any] = block.get("block_types", {})

    _check_attributes(ctx, attrs, schema_attrs, schema_path, where, block_types)
    _check_relations(ctx, schema_path, set(attrs) | set(blocks) | set(body.dynamic), where)

    for name in sorted(set(blocks) | set(body.dynamic)):
        static = blocks.get(name, [])
        dynamic = body.dynamic.get(name, [])
        if name not in block_types:
            attr = schema_attrs.get(name)
            if attr is not None and "nested_type" in attr:
                mode = attr["nested_type"].get("nesting_mode")
                shape = "[{ ... }]" if mode in ("list", "set") else "{ ... }"
                ctx.problems.append(
                    f"{where}.{name}: is a nested attribute; write `{name} = {shape}`, not a block"
                )
            elif attr is not None:
                ctx.problems.append(f"{where}.{name}: is an attribute; write `{name} = ...`, not a block")
            else:
                ctx.problems.append(f"{where}.{name}: unknown block type")
            continue
        spec = block_types[name]
        mode = spec.get("nesting_mode", "list")
        max_items = spec.get("max_items")
        if mode in ("single", "group") and len(static) + len(dynamic) > 1:
            ctx.problems.append(f"{where}.{name}: at most one block allowed (nesting {mode})")
        elif max_items is not None and not dynamic and len(static) > max_items:
            ctx.problems.append(f"{where}.{name}: {len(static)} blocks, at most {max_items} allowed")
        for i, child in enumerate(static):
            label = f"{where}.{name}[{i}]" if mode not in ("single", "group") else f"{where}.{name}"
            _check_body(ctx, child, spec["block"], f"{schema_path}{name}.", label, top=False)
        for i, child in enumerate(dynamic):
            label = f"{where}.dynamic.{name}[{i}].content"
            _check_body(ctx, child, spec["block"], f"{schema_path}{name}.", label, top=False)

    for name, spec in block_types.items():
        min_items = spec.get("min_items") or 0
        if min_items > 0 and name not in blocks and name not in body.dynamic:
            ctx.problems.append(f"{where}: missing required block {name!r} (at least {min_items})")


def _check_block(schema: ProviderSchema, blk: Block) -> list[str]:
    if blk.kind == "data":
        schemas, annotations = schema.data_sources, schema.data_annotations
    else:
        schemas, annotations = schema.resources, schema.resource_annotations
    if blk.type not in schemas:
        kind = "data source" if blk.kind == "data" else "resource type"
        return [f"{blk.address}: unknown {kind} {blk.type!r}"]
    ctx = _Context(annotations=annotations.get(blk.type, {}), problems=[])
    _check_body(ctx, blk.body, schemas[blk.type]["block"], "", blk.address, top=True)
    return ctx.problems


def _belongs_to(rtype: str, provider: str) -> bool:
    short = provider.rsplit("/", 1)[-1]
    return rtype == short or rtype.startswith(f"{short}_")


def check_texts(files: Mapping[str, str], schema_path: str | Path, provider: str) -> list[str]:
    """Check Terraform sources given as {file name: text} (`.tf` or `.tf.json`)."""
    schema = load_provider_schema(schema_path, provider)
    problems: list[str] = []
    for file, text in files.items():
        try:
            blocks = list(
                _blocks_in_json(file, text) if file.endswith(".json") else _blocks_in_hcl(file, text)
            )
        except Exception as error:  # python-hcl2 raises lark errors of many kinds
            problems.append(f"{file}: cannot parse: {str(error).strip().splitlines()[0]}")
            continue
        for blk in blocks:
            if _belongs_to(blk.type, provider):
                problems.extend(_check_block(schema, blk))
    return problems


def check_module(module_dir: str | Path, schema_path: str | Path, provider: str) -> list[str]:
    """Check every resource/data block of `provider` in a module's `*.tf` and `*.tf.json`."""
    directory = Path(module_dir)
    paths = sorted(directory.glob("*.tf")) + sorted(directory.glob("*.tf.json"))
    if not paths:
        return [f"{directory}: no *.tf or *.tf.json files"]
    return check_texts({p.name: p.read_text(encoding="utf-8") for p in paths}, schema_path, provider)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: schemacheck.py MODULE_DIR SCHEMA_JSON PROVIDER", file=sys.stderr)
        return 2
    problems = check_module(argv[0], argv[1], argv[2])
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
