"""Read a spec file (JSON or YAML) into a validated `Spec`, with one line per problem."""

from __future__ import annotations

import difflib
import os
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from cloudcast.errors import SpecError
from cloudcast.spec.check import check
from cloudcast.spec.files import check_files
from cloudcast.spec.models import Spec
from cloudcast.spec.paths import join, shorten
from cloudcast.spec.reader import read_document


def load_spec(path: Path, environ: Mapping[str, str] | None = None) -> Spec:
    """Parse, type-check and cross-check the spec at `path`; raise SpecError listing every problem.

    `environ` gives HOME for `~` in the key paths it checks (the process's by default).
    """
    data = read_document(path)
    spec = parse_spec(data)
    problems = check(spec) + check_files(spec, path.parent, os.environ if environ is None else environ)
    if problems:
        raise SpecError(problems)
    return spec


def parse_spec(data: Any) -> Spec:
    """Validate a decoded document against the models; raise SpecError with one line per error."""
    if not isinstance(data, dict):
        raise SpecError([f"(spec): must be a JSON object, not {type(data).__name__}"])
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecError([format_error(err) for err in exc.errors()]) from None


def format_error(err: Any) -> str:
    """One `path: message (value)` line for a pydantic error dict."""
    loc: tuple[int | str, ...] = tuple(err["loc"])
    path = join(loc)
    kind: str = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        key = str(loc[-1])
        known = _fields_at(loc[:-1])
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"
        return f"{path}: unknown key{hint}"
    if kind == "missing":
        return f"{path}: required"
    if kind == "enum":
        expected = err.get("ctx", {}).get("expected", "")
        what = "provider" if loc and loc[-1] == "provider" else "value"
        return f"{path}: unknown {what} {shorten(value)}; expected {expected}"
    if kind.startswith("cc_"):  # cloudcast's own contracts: the message names the value already
        return f"{path}: {err['msg']}"
    msg = str(err["msg"])
    msg = msg[0].lower() + msg[1:] if msg else msg
    if isinstance(value, dict | list):
        return f"{path}: {msg}"
    return f"{path}: {msg} ({shorten(value)})"


def _fields_at(loc: Sequence[int | str]) -> list[str]:
    """Names of the keys the model at `loc` accepts (aliases as written in JSON)."""
    model: type[BaseModel] | None = Spec
    for part in loc:
        if model is None:
            return []
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        model = _model_of(field.annotation) if field else None
    if model is None:
        return []
    return [f.alias or name for name, f in model.model_fields.items()]


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found:
                return found
    return None
