"""YAML from a file a person (or an attacker) wrote: bounded before it is believed.

``yaml.safe_load`` alone constructs no objects, but it will still read a file of any size, expand a
395-byte alias bomb into a structure whose walk takes gigabytes, recurse until Python gives up on a
5,000-deep nesting, convert a 5,000-digit integer, and let a repeated key silently replace the first.
:func:`read_yaml` refuses each of these with a :class:`ConfigError` naming the file, the line and the limit:

- at most ``MAX_BYTES`` bytes, UTF-8 text (a UTF-16 or binary file is named as such);
- nesting at most ``MAX_DEPTH`` levels, counted on the parser's events before any tree is built;
- at most ``MAX_ALIASES`` aliases, no alias that refers to itself, and at most ``MAX_NODES`` values once every
  alias is expanded;
- integers of at most ``MAX_INT_DIGITS`` digits;
- no key twice in one mapping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from edge.errors import ConfigError

MAX_BYTES = 1_000_000
MAX_DEPTH = 32
MAX_ALIASES = 100
MAX_NODES = 100_000
MAX_INT_DIGITS = 18


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses repeated keys and over-long integers."""

    origin = "<yaml>"

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeLoader names it below
                continue
            if first is not None:
                raise ConfigError(f"{self.origin}: line {key_node.start_mark.line + 1}: key {key!r} appears twice in "
                                  f"one section (first on line {first}); the second would silently replace it")
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: ScalarNode) -> int:
        digits = sum(1 for ch in str(node.value) if ch.isalnum())
        if digits > MAX_INT_DIGITS:
            raise ConfigError(f"{self.origin}: line {node.start_mark.line + 1}: a number of {digits} digits; "
                              f"numbers here have at most {MAX_INT_DIGITS}")
        return int(super().construct_yaml_int(node))


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_yaml_int)


def read_yaml(path: str | Path, what: str = "config file") -> Any:
    """The YAML document in ``path`` (None when it is empty), within the limits above."""
    p = Path(path)
    origin = f"{what} {str(p)!r}"
    try:
        with p.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {origin}: {exc.strerror or exc}") from exc
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"{origin} is larger than {MAX_BYTES:,} bytes; a config is a few kilobytes")
    return parse_yaml(decode(raw, origin), origin)


def decode(raw: bytes, origin: str) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or _utf16_without_bom(raw[:200]):
        raise ConfigError(f"{origin} is UTF-16 text; save it as UTF-8")
    if b"\x00" in raw:
        raise ConfigError(f"{origin} is binary (it holds NUL bytes), not a YAML text file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{origin} is not UTF-8 text (line {line}: byte 0x{raw[exc.start]:02x}); save it as UTF-8"
                          ) from exc


def _utf16_without_bom(sample: bytes) -> bool:
    """ASCII text in UTF-16: every other byte is zero, the rest are not."""
    even, odd = sample[0::2], sample[1::2]
    return len(sample) >= 4 and any(
        all(b == 0 for b in zeros) and all(b != 0 for b in chars) for zeros, chars in ((even, odd), (odd, even))
    )


def parse_yaml(text: str, origin: str = "<yaml>") -> Any:
    try:
        _check_events(text, origin)
        loader = _BoundedLoader(text)
        loader.origin = origin
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _check_size(node, origin)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin} is not valid YAML: {exc}") from exc
    except RecursionError as exc:  # not reached within the limits above; never a traceback all the same
        raise ConfigError(f"{origin} is nested too deeply to read") from exc


def _check_events(text: str, origin: str) -> None:
    depth = aliases = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError(f"{origin}: line {_line(event)}: nested more than {MAX_DEPTH} levels deep")
        elif isinstance(event, CollectionEndEvent):
            depth -= 1
        elif isinstance(event, AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise ConfigError(f"{origin}: line {_line(event)}: more than {MAX_ALIASES} aliases (*name)")


def _line(event: yaml.Event) -> int | str:
    return event.start_mark.line + 1 if event.start_mark is not None else "?"


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_size(root: Node, origin: str) -> None:
    """Count the values the document holds once every alias is expanded (iteratively; shared nodes counted once per
    reference, each computed once)."""
    size: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            total = 1 + sum(size[id(child)] for child in _children(node))
            if total > MAX_NODES:
                raise ConfigError(f"{origin}: line {node.start_mark.line + 1}: expands to more than {MAX_NODES:,} "
                                  "values (aliases repeating aliases)")
            size[key] = total
            open_nodes.discard(key)
            continue
        if key in size:
            continue
        if key in open_nodes:
            raise ConfigError(f"{origin}: line {node.start_mark.line + 1}: an alias refers to the collection it is in")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in size)
