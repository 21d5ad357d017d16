"""``edge-anpr provision``: a valid site config from the template, a private key only its owner can read, and a
CSR whose CN the broker ACL expects; once signed, the node's certificate is accepted by a real TLS broker."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support.broker import MosquittoBroker
from support.field import run_cli
from support.pki import TestPki, tls_listener_lines

from edge.config import load_config
from edge.errors import ConfigError
from edge.node.provision import set_in_section
from edge.node.selftest import probe_broker

ROOT = Path(__file__).resolve().parents[2]


def _openssl(*args: str) -> str:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=True).stdout


def _provision(out: Path, *extra: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    args = ["provision", "--out", str(out), *extra]
    if stdin is None:
        return run_cli(*args)
    return subprocess.run([sys.executable, "-m", "edge", *args], cwd=ROOT, input=stdin, capture_output=True,
                          text=True, timeout=60, check=False)


def test_flags_give_a_valid_config_a_0600_key_and_a_csr_for_site_slash_camera(tmp_path: Path) -> None:
    out = tmp_path / "etc"
    done = _provision(out, "--site", "depot-north", "--camera", "gate1", "--broker", "mqtt.example.net:8884",
                      "--no-input")
    assert done.returncode == 0, done.stderr
    config = load_config(out / "config.yaml")
    assert (config.node.site, config.node.camera) == ("depot-north", "gate1")
    assert config.mqtt is not None
    assert (config.mqtt.host, config.mqtt.port) == ("mqtt.example.net", 8884)
    assert config.mqtt.tls is not None
    assert config.mqtt.tls.key_file == str(out / "tls" / "node.key")
    key, csr = out / "tls" / "node.key", out / "tls" / "node.csr"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "config.yaml").stat().st_mode) == 0o640
    assert "CN = depot-north/gate1" in _openssl("req", "-in", str(csr), "-noout", "-subject")
    assert _openssl("pkey", "-in", str(key), "-pubout") == _openssl("req", "-in", str(csr), "-noout", "-pubkey")
    assert "TLS Web Client Authentication" in _openssl("req", "-in", str(csr), "-noout", "-text")
    text = (out / "config.yaml").read_text()
    assert "# mode 0600: the node refuses a key readable by others" in text  # the template's comments are kept


def test_missing_values_are_asked_for(tmp_path: Path) -> None:
    out = tmp_path / "etc"
    done = _provision(out, stdin="site7\ncam2\nbroker.local\n")
    assert done.returncode == 0, done.stderr
    config = load_config(out / "config.yaml")
    assert (config.node.site, config.node.camera) == ("site7", "cam2")
    assert config.mqtt is not None
    assert config.mqtt.port == 8883


def test_a_bad_site_id_is_refused_with_the_rule(tmp_path: Path) -> None:
    done = _provision(tmp_path / "etc", "--site", "Depot North", "--camera", "c1", "--broker", "b", "--no-input")
    assert done.returncode == 2
    assert "lowercase letters, digits" in done.stderr
    assert not (tmp_path / "etc").exists()


def test_missing_flag_without_input_names_it(tmp_path: Path) -> None:
    done = _provision(tmp_path / "etc", "--site", "s1", "--broker", "b", "--no-input")
    assert done.returncode == 2
    assert "missing --camera" in done.stderr


def test_an_existing_config_needs_force_and_the_key_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "etc"
    flags = ("--site", "s1", "--camera", "c1", "--broker", "b", "--no-input")
    assert _provision(out, *flags).returncode == 0
    key = (out / "tls" / "node.key").read_bytes()
    again = _provision(out, *flags)
    assert again.returncode == 2
    assert "--force" in again.stderr
    forced = _provision(out, *flags, "--force")
    assert forced.returncode == 0, forced.stderr
    assert "kept the existing key" in forced.stdout
    assert (out / "tls" / "node.key").read_bytes() == key


def test_set_in_section_only_touches_its_section() -> None:
    text = "node:\n  site: a   # id\nmqtt:\n  host: h\n  port: 1\nother:\n  site: keep\n"
    out = set_in_section(text, "node", "site", "b")
    assert out == "node:\n  site: b   # id\nmqtt:\n  host: h\n  port: 1\nother:\n  site: keep\n"
    with pytest.raises(ConfigError, match="no 'camera:' line"):
        set_in_section(text, "node", "camera", "x")


@pytest.mark.integration
def test_a_provisioned_node_signed_by_the_ca_is_accepted_by_the_broker(
    mosquitto_factory: Callable[..., MosquittoBroker], tmp_path: Path
) -> None:
    pki = TestPki(tmp_path / "pki")
    broker = mosquitto_factory(listener_lines=tls_listener_lines(pki, tmp_path))
    out = tmp_path / "etc"
    done = _provision(out, "--site", "site1", "--camera", "cam1", "--broker", f"localhost:{broker.port}",
                      "--ca", pki.ca_file, "--no-input")
    assert done.returncode == 0, done.stderr
    tls = out / "tls"
    ext = tmp_path / "client.ext"
    ext.write_text("extendedKeyUsage=clientAuth\n")
    _openssl("x509", "-req", "-in", str(tls / "node.csr"), "-CA", pki.ca_file, "-CAkey", str(pki.root / "ca.key"),
             "-set_serial", "77", "-days", "2", "-out", str(tls / "node.crt"), "-extfile", str(ext))
    check = probe_broker(load_config(out / "config.yaml"), 10)
    assert check.status == "pass", check


def _release_repo(tmp: Path) -> Path:
    """A release repository as ``edge-anpr fleet release init-repo`` makes it; its metadata folder."""
    from edge.central import release as rel

    keys = tmp / "keys"
    repo = rel.ReleaseRepo.init(tmp / "repo", root_signer=rel.make_key(keys / "root.key"),
                                online_signer=rel.make_key(keys / "online.key"), now=rel.utc_now())
    return repo.meta_dir


def test_update_root_and_url_pin_the_root_and_write_the_update_section(tmp_path: Path) -> None:
    meta, out = _release_repo(tmp_path), tmp_path / "etc"
    done = _provision(out, "--site", "s1", "--camera", "c1", "--broker", "b", "--no-input",
                      "--update-root", str(meta / "1.root.json"), "--update-url", "https://releases.example.net/repo")
    assert done.returncode == 0, done.stderr
    assert "pinned the release repository's root (version 1)" in done.stdout
    config = load_config(out / "config.yaml")
    assert config.update is not None
    assert config.update.url == "https://releases.example.net/repo"
    assert config.update.root_file == str(out / "update" / "root.json")
    pinned = out / "update" / "root.json"
    assert pinned.read_bytes() == (meta / "1.root.json").read_bytes()
    assert stat.S_IMODE(pinned.stat().st_mode) == 0o644  # public metadata; root's on a unit, not the service user's


def test_an_update_root_that_is_not_a_self_signed_root_or_a_lone_flag_is_refused_and_nothing_written(
    tmp_path: Path,
) -> None:
    meta, out = _release_repo(tmp_path), tmp_path / "etc"
    flags = ("--site", "s1", "--camera", "c1", "--broker", "b", "--no-input")
    url = ("--update-url", "https://releases.example.net/repo")
    targets = _provision(out, *flags, "--update-root", str(meta / "1.targets.json"), *url)
    assert targets.returncode == 2
    assert "this is targets metadata, not root" in targets.stderr
    forged = tmp_path / "forged.root.json"
    doc = json.loads((meta / "1.root.json").read_text())
    doc["signed"]["expires"] = "2099-01-01T00:00:00Z"  # changed after signing
    forged.write_text(json.dumps(doc))
    refused = _provision(out, *flags, "--update-root", str(forged), *url)
    assert refused.returncode == 2
    assert "not TUF root metadata signed by its own keys" in refused.stderr
    lone = _provision(out, *flags, *url)
    assert lone.returncode == 2 and "--update-root and --update-url go together" in lone.stderr
    plain = _provision(out, *flags, "--update-root", str(meta / "1.root.json"), "--update-url", "http://r.example")
    assert plain.returncode == 2 and "must be https://" in plain.stderr
    assert not out.exists()
