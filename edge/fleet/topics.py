"""Control topics: ``<prefix>/ctl/<site>/<camera>/<kind>`` for one node, ``<prefix>/ctl/group/<name>/<kind>`` for a
group, and the payload's chunks under ``.../<kind>/data/<index>``. All are retained, QoS 1, written only by the
centre (config/mosquitto/acl.example); a node reads its own and its groups'.

A target is written ``<site>/<camera>`` or ``group/<name>``; the site name ``group`` is therefore reserved. The group
``all`` is every node, for release announcements only (``<prefix>/ctl/group/all/release``): each node reads it
beside its own groups', whatever its config says; hotlists and configs go to named groups and nodes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Kind = Literal["hotlist", "config", "release"]
KINDS: tuple[Kind, ...] = ("hotlist", "config", "release")
GROUP = "group"
EVERYONE = "group/all"  # the target of a release announcement to every node
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def check_slug(value: str, what: str) -> str:
    if not _SLUG.fullmatch(value):
        raise ValueError(f"{what} {value!r}: lowercase letters, digits, - and _ only, starting with a letter or "
                         "digit, at most 63 characters")
    return value


def parse_target(text: str) -> str:
    """``group/<name>`` or ``<site>/<camera>``, checked; raises ValueError naming what is wrong."""
    parts = text.strip().split("/")
    if len(parts) != 2:
        raise ValueError(f"target {text!r}: expected SITE/CAMERA or group/NAME")
    check_slug(parts[0], "site")
    check_slug(parts[1], "group name" if parts[0] == GROUP else "camera")
    return "/".join(parts)


def node_target(site: str, camera: str) -> str:
    return f"{site}/{camera}"


def group_target(name: str) -> str:
    return f"{GROUP}/{name}"


def is_group(target: str) -> bool:
    return target.startswith(f"{GROUP}/")


@dataclass(frozen=True, slots=True)
class ControlTopic:
    """What a control topic names: the target, the kind, and the chunk index for a data message (else None)."""

    target: str
    kind: Kind
    chunk: int | None = None


def manifest_topic(prefix: str, target: str, kind: Kind) -> str:
    return f"{prefix}/ctl/{target}/{kind}"


def chunk_topic(prefix: str, target: str, kind: Kind, index: int) -> str:
    return f"{prefix}/ctl/{target}/{kind}/data/{index}"


def node_subscriptions(prefix: str, site: str, camera: str, groups: Sequence[str]) -> list[str]:
    """The filters a node subscribes to: its own control topics, each of its groups', and the release announcements
    to everyone."""
    return [f"{prefix}/ctl/{node_target(site, camera)}/#", *(f"{prefix}/ctl/{group_target(g)}/#" for g in groups),
            f"{prefix}/ctl/{EVERYONE}/release/#"]


def parse_topic(prefix: str, topic: str) -> ControlTopic | None:
    """The control topic's parts, or None when ``topic`` is not a control topic of this layout."""
    levels = topic.split("/")
    if len(levels) not in (5, 7) or levels[0] != prefix or levels[1] != "ctl":
        return None
    try:
        target = parse_target(f"{levels[2]}/{levels[3]}")
    except ValueError:
        return None
    kind = levels[4]
    if kind not in KINDS:
        return None
    if len(levels) == 5:
        return ControlTopic(target, kind)
    if levels[5] != "data" or not levels[6].isdigit() or len(levels[6]) > 6:
        return None
    return ControlTopic(target, kind, int(levels[6]))
