"""Literal strings for Terraform's JSON syntax, where a string that Terraform evaluates is a template.

Evaluated strings (module arguments, provider settings, output values) and the keys of their
objects are templates: `${...}` interpolates and `%{...}` runs a directive. Strings Terraform
reads without evaluating (backend settings, descriptions, `source`, `alias`) are literal as they
are; escaping them would change them.
"""

from __future__ import annotations

from typing import Any


def tf_literal(text: str) -> str:
    """`text` as a template that evaluates to exactly `text` (`${` -> `$${`, `%{` -> `%%{`)."""
    if "{" not in text:  # most strings: nothing to escape, and no two scans to find that out
        return text
    return text.replace("${", "$${").replace("%{", "%%{")


def tf_literals(value: Any) -> Any:
    """JSON data with every string in it, and every object key, made literal by `tf_literal`."""
    if isinstance(value, str):
        return tf_literal(value)
    if isinstance(value, dict):
        return {tf_literal(str(k)): tf_literals(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [v if type(v) is str and "{" not in v else tf_literals(v) for v in value]
    return value
