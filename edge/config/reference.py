"""The configuration reference (a Markdown table per section), generated from the schema's descriptions.

``python -m edge.config.reference`` prints it; the README's reference is this output.
"""

from __future__ import annotations

from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from edge.config.loader import model_of
from edge.config.model import Config


def reference_markdown() -> str:
    lines: list[str] = []
    _section(Config, "", lines)
    return "\n".join(lines) + "\n"


def _section(model: type[BaseModel], prefix: str, lines: list[str]) -> None:
    rows: list[str] = []
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, field in model.model_fields.items():
        inner = model_of(field.annotation)
        key = f"{prefix}{name}"
        if inner is not None:
            nested.append((key, inner))
            if prefix:  # a sub-section inside a section: list it too
                rows.append(f"| `{key}` | section | {'required' if field.is_required() else 'optional'} | "
                            f"{field.description or ''} |")
            continue
        default = "required" if field.is_required() else _show(field.default)
        rows.append(f"| `{key}` | {_type(field.annotation)} | {default} | {field.description or ''} |")
    if rows:
        lines += [f"#### `{prefix.rstrip('.') or 'top level'}`", "", "| key | type | default | meaning |",
                  "|---|---|---|---|", *rows, ""]
    for key, inner in nested:
        _section(inner, f"{key}.", lines)


def _show(value: Any) -> str:
    if value is PydanticUndefined:
        return "required"
    if isinstance(value, tuple):
        return "`[" + ", ".join(str(v) for v in value) + "]`"
    return f"`{value}`" if value is not None else "none"


def _type(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return "list of " + _type(args[0])
    if origin is tuple:
        return "[" + ", ".join(_type(a) for a in args) + "]"
    if origin in (Union, UnionType):
        return " or ".join("none" if a is type(None) else _type(a) for a in args)
    return getattr(annotation, "__name__", str(annotation))


if __name__ == "__main__":
    print(reference_markdown(), end="")
