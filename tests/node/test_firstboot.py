"""``edge-anpr firstboot``: one card image, many units. A unit takes its identity from edge-anpr-node.yaml on a
(fake) boot partition, consumes the file, and leaves a bad file in place with the reason beside it."""

from __future__ import annotations

import json
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from support.broker import MosquittoBroker
from support.field import run_cli
from support.pki import TestPki, tls_listener_lines

from edge.config import load_config
from edge.node.firstboot import DONE_FILE, ERROR_FILE, IDENTITY_FILE
from edge.node.selftest import probe_broker

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = str(ROOT / "config" / "example.yaml")


def _indent(pem: str) -> str:
    return "".join(f"  {line}\n" for line in pem.strip().splitlines())


def _identity(boot: Path, **fields: str) -> Path:
    boot.mkdir(parents=True, exist_ok=True)
    text = ""
    for key, value in fields.items():
        text += f"{key}: |\n{_indent(value)}" if "\n" in value else f"{key}: {value}\n"
    path = boot / IDENTITY_FILE
    path.write_text(text)
    return path


def _firstboot(boot: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return run_cli("firstboot", "--boot", str(boot), "--out", str(out), "--template", TEMPLATE)


def _openssl(*args: str) -> str:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=True).stdout


def test_without_an_identity_file_first_boot_does_nothing(tmp_path: Path) -> None:
    (tmp_path / "boot").mkdir()
    done = _firstboot(tmp_path / "boot", tmp_path / "etc")
    assert done.returncode == 0, done.stderr
    assert "nothing to do" in done.stdout
    assert not (tmp_path / "etc").exists()


def test_a_unit_without_a_key_makes_its_own_and_leaves_the_csr_on_the_boot_partition(tmp_path: Path) -> None:
    pki = TestPki(tmp_path / "pki")
    boot, out = tmp_path / "boot", tmp_path / "etc"
    identity = _identity(boot, site="depot-north", camera="gate1", broker="mqtt.example.net:8884",
                         ca=Path(pki.ca_file).read_text())
    done = _firstboot(boot, out)
    assert done.returncode == 0, done.stderr
    config = load_config(out / "config.yaml")
    assert (config.node.site, config.node.camera) == ("depot-north", "gate1")
    assert config.mqtt is not None and (config.mqtt.host, config.mqtt.port) == ("mqtt.example.net", 8884)
    assert stat.S_IMODE((out / "tls" / "node.key").stat().st_mode) == 0o600
    assert (out / "tls" / "ca.crt").read_text() == Path(pki.ca_file).read_text()
    csr = boot / "edge-anpr-depot-north-gate1.csr"
    assert csr.read_bytes() == (out / "tls" / "node.csr").read_bytes()
    assert "CN = depot-north/gate1" in _openssl("req", "-in", str(csr), "-noout", "-subject")
    assert not identity.exists()  # consumed
    assert "removed" in (boot / DONE_FILE).read_text()

    # the CSR comes back signed: a file with only the certificate installs it for the key the unit kept
    key_before = (out / "tls" / "node.key").read_bytes()
    crt = tmp_path / "signed.crt"
    _openssl("x509", "-req", "-in", str(csr), "-CA", pki.ca_file, "-CAkey", str(pki.root / "ca.key"),
             "-set_serial", "9", "-days", "2", "-out", str(crt))
    _identity(boot, site="depot-north", camera="gate1", cert=crt.read_text())
    again = _firstboot(boot, out)
    assert again.returncode == 0, again.stderr
    assert (out / "tls" / "node.crt").read_text() == crt.read_text()
    assert (out / "tls" / "node.key").read_bytes() == key_before
    assert not (boot / IDENTITY_FILE).exists()


def test_a_bad_identity_file_is_left_in_place_with_the_reason_and_nothing_changes(tmp_path: Path) -> None:
    boot, out = tmp_path / "boot", tmp_path / "etc"
    identity = _identity(boot, site="Depot North", camera="gate1", broker="b")
    done = _firstboot(boot, out)
    assert done.returncode == 2
    assert identity.exists()
    assert "lowercase letters, digits" in (boot / ERROR_FILE).read_text()
    assert not out.exists()
    identity.write_text("site: s1\ncamera: c1\nbroker: b\ncolour: blue\n")
    assert _firstboot(boot, out).returncode == 2
    assert "unknown keys ['colour']" in (boot / ERROR_FILE).read_text()
    identity.write_text("site: s1\ncamera: c1\nbroker: b\n")  # fixed: the next boot takes it
    assert _firstboot(boot, out).returncode == 0
    assert not (boot / ERROR_FILE).exists() and not identity.exists()


def test_a_certificate_for_another_unit_or_key_is_refused(tmp_path: Path) -> None:
    pki = TestPki(tmp_path / "pki")
    boot, out = tmp_path / "boot", tmp_path / "etc"
    other = pki.issue("other", "site1/cam2")
    _identity(boot, site="site1", camera="cam1", broker="b", ca=Path(pki.ca_file).read_text(),
              key=Path(other.key_file).read_text(), cert=Path(other.cert_file).read_text())
    assert _firstboot(boot, out).returncode == 2
    assert "CN is 'site1/cam2', but this unit is 'site1/cam1'" in (boot / ERROR_FILE).read_text()
    mine, theirs = pki.issue("mine", "site1/cam1"), pki.issue("theirs", "site1/cam1")
    _identity(boot, site="site1", camera="cam1", broker="b", key=Path(mine.key_file).read_text(),
              cert=Path(theirs.cert_file).read_text())
    assert _firstboot(boot, out).returncode == 2
    assert "not for this unit's key" in (boot / ERROR_FILE).read_text()
    assert not out.exists()


@pytest.mark.integration
def test_a_unit_given_its_key_and_certificate_is_accepted_by_the_broker(
    mosquitto_factory: Callable[..., MosquittoBroker], tmp_path: Path
) -> None:
    pki = TestPki(tmp_path / "pki")
    broker = mosquitto_factory(listener_lines=tls_listener_lines(pki, tmp_path))
    issued = pki.issue("unit7", "site1/cam7")
    boot, out = tmp_path / "boot", tmp_path / "etc"
    identity = _identity(boot, site="site1", camera="cam7", broker=f"localhost:{broker.port}",
                         ca=Path(pki.ca_file).read_text(), key=Path(issued.key_file).read_text(),
                         cert=Path(issued.cert_file).read_text())
    done = _firstboot(boot, out)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not identity.exists()
    assert not list(boot.glob("*.csr"))  # the key came with the file: no CSR to send
    assert (out / "tls" / "node.key").read_text() == Path(issued.key_file).read_text()
    assert stat.S_IMODE((out / "tls" / "node.key").stat().st_mode) == 0o600
    check = probe_broker(load_config(out / "config.yaml"), 10)
    assert check.status == "pass", check


def test_update_url_and_root_on_the_boot_partition_pin_the_root_and_write_the_update_section(tmp_path: Path) -> None:
    from edge.central import release as rel

    keys = tmp_path / "keys"
    repo = rel.ReleaseRepo.init(tmp_path / "repo", root_signer=rel.make_key(keys / "root.key"),
                                online_signer=rel.make_key(keys / "online.key"), now=rel.utc_now())
    root_text = (repo.meta_dir / "1.root.json").read_text()
    boot, out = tmp_path / "boot", tmp_path / "etc"
    identity = _identity(boot, site="s1", camera="c1", broker="b", update_url="https://releases.example.net/repo",
                         update_root=root_text)
    done = _firstboot(boot, out)
    assert done.returncode == 0, done.stdout + done.stderr
    config = load_config(out / "config.yaml")
    assert config.update is not None and config.update.url == "https://releases.example.net/repo"
    assert json.loads(Path(config.update.root_file).read_text()) == json.loads(root_text)
    assert not identity.exists()

    # a root that is not signed by its own keys is refused: the file stays, nothing changes
    forged = json.loads(root_text)
    forged["signed"]["version"] = 2
    _identity(boot, site="s1", camera="c1", broker="b", update_url="https://releases.example.net/repo",
              update_root=json.dumps(forged, indent=1))
    before = (out / "config.yaml").read_bytes()
    assert _firstboot(boot, out).returncode == 2
    assert "update_root: not TUF root metadata signed by its own keys" in (boot / ERROR_FILE).read_text()
    assert (out / "config.yaml").read_bytes() == before
    _identity(boot, site="s1", camera="c1", broker="b", update_url="https://releases.example.net/repo")
    assert _firstboot(boot, out).returncode == 2
    assert "update_url and update_root go together" in (boot / ERROR_FILE).read_text()
