"""The publisher refuses unsafe or broken security settings before it opens a socket."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from support.reads import lab_mqtt, node_config, outbox_config

from edge.clock import SystemClock
from edge.config.model import MqttConfig, TlsConfig
from edge.errors import ConfigError
from edge.outbox.store import Outbox
from edge.publish.mqtt import MqttPublisher, check_key_file
from edge.publish.topics import Topics, all_nodes


def test_key_file_mode_is_checked(tmp_path: Path) -> None:
    key = tmp_path / "node.key"
    key.write_text("k")
    key.chmod(0o600)
    check_key_file(str(key))
    key.chmod(0o640)
    with pytest.raises(ConfigError, match=r"mode 0640.*chmod 600"):
        check_key_file(str(key))
    with pytest.raises(ConfigError, match="cannot read"):
        check_key_file(str(tmp_path / "missing.key"))


def test_missing_ca_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    key = tmp_path / "k"
    key.write_text("k")
    key.chmod(0o600)
    tls = TlsConfig(ca_file=str(tmp_path / "nope-ca.crt"), cert_file=str(key), key_file=str(key))
    with Outbox(tmp_path / "o.sqlite", outbox_config(), SystemClock()) as box:
        pub = MqttPublisher(MqttConfig(host="127.0.0.1", port=1, tls=tls), node_config(), box, SystemClock(), "1")
        with pytest.raises(ConfigError, match=r"nope-ca\.crt"), pub:
            pass


def test_lab_mode_is_logged_loudly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with Outbox(tmp_path / "o.sqlite", outbox_config(), SystemClock()) as box, caplog.at_level(
        logging.WARNING
    ), MqttPublisher(lab_mqtt("127.0.0.1", 1), node_config(), box, SystemClock(), "1") as pub:
        assert not pub.connected
    assert "INSECURE LAB MODE" in caplog.text


def test_a_missing_password_file_is_refused_naming_the_key(tmp_path: Path) -> None:
    cfg = lab_mqtt("127.0.0.1", 1, username="node", password_file=str(tmp_path / "missing"))
    with Outbox(tmp_path / "o.sqlite", outbox_config(), SystemClock()) as box:
        pub = MqttPublisher(cfg, node_config(), box, SystemClock(), "1")
        with pytest.raises(ConfigError, match="password_file"), pub:
            pass


def test_topic_layout() -> None:
    t = Topics("anpr", "depot-north", "gate1")
    assert (t.reads, t.status, t.health, t.hotlist) == (
        "anpr/depot-north/gate1/reads", "anpr/depot-north/gate1/status", "anpr/depot-north/gate1/health",
        "anpr/depot-north/gate1/hotlist",
    )
    assert t.for_kind("read") == t.reads
    assert t.for_kind("image") is None
    assert t.owns("anpr/depot-north/gate1/health")
    assert not t.owns("anpr/depot-north/gate2/reads")
    assert all_nodes("anpr", "reads") == "anpr/+/+/reads"
