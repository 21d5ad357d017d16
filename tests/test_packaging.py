"""setup.cfg ships every folder of the package (code and data), so building it gives no setuptools warning
about an importable folder left out of ``packages`` (it once warned about edge.schemas)."""

from __future__ import annotations

import configparser
import json
from pathlib import Path

from setuptools import find_namespace_packages

ROOT = Path(__file__).resolve().parents[1]


def test_every_folder_of_the_package_is_in_the_packages_config() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["options"]["packages"].strip() == "find_namespace:"
    find = cfg["options.packages.find"]
    listed = set(find_namespace_packages(
        str(ROOT), include=find["include"].replace(",", " ").split(), exclude=find["exclude"].split()))
    folders = {
        ".".join(d.relative_to(ROOT).parts) for d in (ROOT / "edge").rglob("*")
        if d.is_dir() and d.name != "__pycache__" and any(f.is_file() for f in d.iterdir())
    } | {"edge"}
    assert folders <= listed, f"left out of setup.cfg packages: {sorted(folders - listed)}"
    assert not any("__pycache__" in p for p in listed)


def test_the_schemas_are_package_data() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    data = cfg["options.package_data"]
    assert data["edge.schemas"].strip() == "*.json"
    assert sorted(p.name for p in (ROOT / "edge" / "schemas").glob("*.json"))


def test_the_licence_and_notice_ship_and_name_every_model() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["metadata"]["license"] == "Apache-2.0"
    assert cfg["metadata"]["license_files"].split() == ["LICENSE", "NOTICE"]
    assert "Apache License\n                           Version 2.0, January 2004" in (ROOT / "LICENSE").read_text()
    notice = (ROOT / "NOTICE").read_text()
    manifest = json.loads((ROOT / "models" / "manifest.json").read_text())
    for model in manifest["models"]:
        assert f"models/{model['file']}" in notice, f"NOTICE does not name models/{model['file']}"
