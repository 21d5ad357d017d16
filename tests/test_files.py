"""State files: atomic writes, and no symbolic link is ever followed (edge/files.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge.errors import StateError
from edge.files import open_nofollow, refuse_link, write_atomic


def _link(tmp_path: Path) -> tuple[Path, Path]:
    target = tmp_path / "elsewhere.txt"
    target.write_text("someone else's file\n")
    target.chmod(0o644)
    link = tmp_path / "state.file"
    link.symlink_to(target)
    return link, target


def test_a_link_is_refused_naming_it_and_a_plain_or_absent_file_is_not(tmp_path: Path) -> None:
    link, target = _link(tmp_path)
    with pytest.raises(StateError, match=r"state.file' is a symbolic link \(to '.*elsewhere.txt'\)"):
        refuse_link(link)
    refuse_link(target)
    refuse_link(tmp_path / "absent")


def test_opening_through_a_link_is_refused_and_leaves_its_target_alone(tmp_path: Path) -> None:
    link, target = _link(tmp_path)
    with pytest.raises(StateError, match="symbolic link"):
        open_nofollow(link, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    assert target.read_text() == "someone else's file\n"
    assert target.stat().st_mode & 0o777 == 0o644
    os.close(open_nofollow(tmp_path / "new.file", os.O_WRONLY | os.O_CREAT))


def test_an_atomic_write_replaces_a_link_and_never_writes_through_it(tmp_path: Path) -> None:
    link, target = _link(tmp_path)
    write_atomic(link, b"mine\n")
    assert not link.is_symlink() and link.read_bytes() == b"mine\n"
    assert target.read_text() == "someone else's file\n"
