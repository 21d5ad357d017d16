"""Read the YAML file and turn validation failures into one message a field engineer can act on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from edge.config.model import Config
from edge.config.safe_yaml import read_yaml
from edge.errors import ConfigError


def load_config(path: str | Path) -> Config:
    """Load and validate a config file; raise :class:`ConfigError` naming every bad key (and refusing a file that
    is too big, not UTF-8, too deep, an alias bomb, or that repeats a key: ``edge.config.safe_yaml``)."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"config file {str(p)!r} is a directory")
    return parse_config(read_yaml(p), origin=str(p))


def parse_config(data: object, *, origin: str = "<config>") -> Config:
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: the top level must be a mapping of sections, got {type(data).__name__}")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(err) for err in exc.errors()]
        raise ConfigError(f"{origin}: invalid configuration\n" + "\n".join(f"  - {line}" for line in lines)) from exc


def _describe(err: Any) -> str:
    loc = tuple(str(part) for part in err["loc"])
    key = ".".join(loc) or "<top level>"
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        return f"{key}: unknown key (allowed here: {', '.join(allowed)})"
    if err["type"] == "missing":
        return f"{key}: required key is missing"
    value = err.get("input")
    shown = repr(value) if not isinstance(value, dict) else "{...}"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "literal_error":
        msg = msg.replace("Input should be", "allowed values are")
    return f"{key} = {shown}: {msg}"


def _allowed_keys(loc: tuple[str, ...]) -> list[str]:
    model: type[BaseModel] = Config
    for part in loc:
        field = model.model_fields.get(part)
        if field is None:
            return []
        inner = model_of(field.annotation)
        if inner is None:
            return []
        model = inner
    return sorted(model.model_fields)


def model_of(annotation: Any) -> type[BaseModel] | None:
    """The config section class inside a field's annotation (``X``, ``X | None``, ``tuple[X, ...]``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = model_of(arg)
        if found is not None:
            return found
    return None
