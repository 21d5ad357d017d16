"""What the centre and the node share about software releases (the TUF repository's layout, the announcement).

The repository (``edge/central/release.py`` writes it, ``edge/node/update.py`` reads it with python-tuf's
ngclient) holds two kinds of targets:

- ``releases/edge-anpr-<version>.tar``: a bundle (``anpr.release/1``: ``release.json``, wheels, models);
- rollout pointers ``rollout/all.json``, ``rollout/group/<name>.json``, ``rollout/<site>/<camera>.json``
  (``anpr.rollout/1``: which release that scope runs). A node takes the most specific one it finds:
  :func:`scopes` gives the order.

A release is announced on the control channel (kind ``release``, an ``anpr.ctl/1`` manifest like any push) so a
node looks at once instead of at its next periodic check; the announcement is only a hint: the node installs what
the TUF repository, verified from its pinned root, says, whatever the announcement claimed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from edge.files import canonical_json
from edge.fleet.payload import PayloadError, compress, expand
from edge.fleet.topics import GROUP, check_slug, parse_target

RELEASE_FORMAT = "anpr.release/1"
ROLLOUT_FORMAT = "anpr.rollout/1"
NOTE_FORMAT = "anpr.release-note/1"
RELEASE_JSON = "release.json"
_VERSION = re.compile(r"^[0-9]+(\.[0-9]+){0,3}([a-z0-9.+-]{0,32})$")


def check_version(text: str) -> str:
    """A release version (``0.2.0``, ``1.0.0rc1``); raises ValueError naming it otherwise."""
    if not _VERSION.fullmatch(text):
        raise ValueError(f"release version {text!r}: expected digits and dots, e.g. 0.2.0 (a suffix like rc1 allowed)")
    return text


def release_path(version: str) -> str:
    """The target path of a release bundle."""
    return f"releases/edge-anpr-{check_version(version)}.tar"


def rollout_path(scope: str) -> str:
    """``all``, ``group/<name>`` or ``<site>/<camera>`` -> the pointer's target path."""
    if scope != "all":
        parse_target(scope)
    return f"rollout/{scope}.json"


def scopes(site: str, camera: str, groups: Sequence[str]) -> list[str]:
    """The rollout scopes of a node, most specific first: itself, its groups (config order), everyone."""
    return [f"{site}/{camera}", *(f"{GROUP}/{check_slug(g, 'group')}" for g in groups), "all"]


def note(version: str) -> bytes:
    """The payload of a release announcement (compressed canonical JSON, as every control payload)."""
    return compress(canonical_json({"format": NOTE_FORMAT, "version": check_version(version)}))


def parse_note(payload: bytes) -> str:
    """The version a release announcement names; PayloadError when it is not one."""
    try:
        doc: Any = json.loads(expand(payload, 4096))
        if not isinstance(doc, dict) or doc.get("format") != NOTE_FORMAT:
            raise PayloadError(f"not an {NOTE_FORMAT} document")
        return check_version(str(doc.get("version")))
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise PayloadError(f"not a release announcement: {exc}") from exc
