"""The README's configuration reference is the one generated from the schema (so it stays true)."""

from __future__ import annotations

from pathlib import Path

from edge.config.reference import reference_markdown

ROOT = Path(__file__).resolve().parents[2]


def test_readme_configuration_reference_matches_the_schema() -> None:
    readme = ROOT.joinpath("README.md").read_text(encoding="utf-8")
    assert reference_markdown() in readme, "README is stale: run .venv/bin/python scripts/update-readme.py"


def test_every_config_key_has_a_description() -> None:
    rows = [line for line in reference_markdown().splitlines() if line.startswith("| `")]
    assert rows
    assert all(not line.rstrip().endswith("|  |") for line in rows)
