"""`edge-anpr fleet`: keys, a hotlist push from the command line, and `fleet status` from the central store that
`listen` fills from the nodes' health (a real Mosquitto with the example TLS and ACL)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.broker import MosquittoBroker, Subscriber, TlsFiles
from support.pki import OPENSSL, TestPki, tls_listener_lines

from edge.central.fleet import BrokerOptions, ControlPublisher, hotlist_push, load_secret
from edge.central.fleet_bench import SimulatedNode
from edge.central.listen import ListenOptions, ListenTls, run_listen
from edge.central.store import parse_store
from edge.cli import main
from edge.config.model import MqttConfig, TlsConfig
from edge.fleet.signing import load_private_key
from edge.privacy.hotlist import write_hotlist

pytestmark = [pytest.mark.integration, pytest.mark.skipif(OPENSSL is None, reason="openssl needed")]


def _status(store: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    capsys.readouterr()
    assert main(["fleet", "status", "--store", str(store), "--json"]) == 0
    return list(json.loads(capsys.readouterr().out))


def test_push_from_the_command_line_shows_applied_and_refused_in_fleet_status(
    mosquitto_factory: Callable[..., MosquittoBroker], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys, store = tmp_path / "keys", tmp_path / "central.sqlite"
    assert main(["fleet", "keygen", "--out", str(keys)]) == 0
    assert main(["fleet", "node-keys", "--keys", str(keys), "--site", "site1", "--camera", "cam1", "--group", "west",
                 "--out", str(tmp_path / "cam1.keys")]) == 0
    assert main(["fleet", "node-keys", "--keys", str(keys), "--site", "site1", "--camera", "cam2",
                 "--out", str(tmp_path / "cam2.keys")]) == 0
    pki = TestPki(tmp_path / "pki")
    lines = tls_listener_lines(pki, tmp_path)
    acl = tmp_path / "acl"
    acl.write_text(acl.read_text().replace("user central\n", "user site1/cam1\ntopic read anpr/ctl/group/west/#\n\n"
                                           "user central\n", 1))
    broker = mosquitto_factory(listener_lines=lines)
    central, fleet_id = pki.issue("central", "central"), pki.issue("fleet", "fleet")
    stop = threading.Event()
    listener = threading.Thread(target=run_listen, kwargs={"stop": stop, "options": ListenOptions(
        "localhost", broker.port, parse_store(str(store)), client_id="central", retention=None,
        tls=ListenTls(pki.ca_file, central.cert_file, central.key_file))}, daemon=True)
    listener.start()
    sims = []
    try:
        for cam, groups in (("cam1", ("west",)), ("cam2", ())):
            pair = pki.issue(cam, f"site1/{cam}")
            mqtt = MqttConfig(host="localhost", port=broker.port,
                              tls=TlsConfig(ca_file=pki.ca_file, cert_file=pair.cert_file, key_file=pair.key_file))
            sim = SimulatedNode("site1", cam, tmp_path / cam, mqtt=mqtt, public_key=keys / "fleet-signing.pub",
                                keyring=tmp_path / f"{cam}.keys", groups=groups, report_health=True)
            sims.append(sim.__enter__())
        assert all(s.publisher.wait_connected(10) for s in sims)
        time.sleep(0.5)
        plain = tmp_path / "list.json"
        write_hotlist(plain, ["AB12CDE", "XY51ZZZ"], list_id="op", valid_until=datetime.now(UTC) + timedelta(days=1))
        broker_args = ["--host", "localhost", "--port", str(broker.port), "--ca-file", pki.ca_file,
                       "--cert-file", fleet_id.cert_file, "--key-file", fleet_id.key_file]
        assert main(["fleet", "hotlist", "push", str(plain), "--to", "west", "--to", "site1/cam2", "--keys", str(keys),
                     "--store", str(store), *broker_args]) == 0
        assert "pushed hotlist version 1 to group/west: 2 plates" in capsys.readouterr().out
        assert main(["fleet", "hotlist", "push", str(plain), "--to", "west", "--version", "1", "--keys", str(keys),
                     "--store", str(store), *broker_args]) == 2, "the centre refuses to reuse a version"

        def applied() -> bool:
            rows = {r["node"]: r for r in _status(store, capsys)}
            return (rows.get("site1/cam1", {}).get("applied") == {"hotlist:group/west": {"version": 1, "entries": 2}}
                    and rows.get("site1/cam2", {}).get("applied") == {"hotlist:site1/cam2": {"version": 1,
                                                                                              "entries": 2}})
        deadline = time.monotonic() + 15
        while not applied() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert applied(), _status(store, capsys)
        assert all(r["pending"] == [] for r in _status(store, capsys))

        now = datetime.now(UTC)  # an expired manifest, published by the centre's identity: refused, and reported
        stale = hotlist_push(plain, target="site1/cam2", version=2, secret=load_secret(keys),
                             key=load_private_key(keys / "fleet-signing.key"), now=now, expires=now - timedelta(1))
        with ControlPublisher(BrokerOptions(host="localhost", port=broker.port, ca_file=pki.ca_file,
                                            cert_file=fleet_id.cert_file, key_file=fleet_id.key_file)) as pub:
            pub.publish(stale)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            cam2 = {r["node"]: r for r in _status(store, capsys)}["site1/cam2"]
            if cam2["refused"]:
                break
            time.sleep(0.2)
        assert [(r["reason"], r["version"]) for r in cam2["refused"]] == [("expired", 2)]
        assert cam2["refusals"] == 1
        capsys.readouterr()
        assert main(["fleet", "status", "--store", str(store)]) == 0
        table = capsys.readouterr().out
        assert "site1/cam2" in table and "hotlist site1/cam2 v2: expired" in table
    finally:
        for sim in sims:
            sim.__exit__(None, None, None)
        stop.set()
        listener.join(10)


def test_config_push_from_the_command_line_is_schema_checked_signed_and_retained_for_the_node(
    mosquitto_factory: Callable[..., MosquittoBroker], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge.central.store.fleet import last_version, open_db
    from edge.fleet.manifest import verify_manifest
    from edge.fleet.signing import load_public_keys

    keys, store = tmp_path / "keys", tmp_path / "central.sqlite"
    assert main(["fleet", "keygen", "--out", str(keys)]) == 0
    pki = TestPki(tmp_path / "pki")
    broker = mosquitto_factory(listener_lines=tls_listener_lines(pki, tmp_path))
    fleet_id, cam1 = pki.issue("fleet", "fleet"), pki.issue("cam1", "site1/cam1")
    push = ["fleet", "config", "push", "--keys", str(keys), "--store", str(store), "--host", "localhost", "--port",
            str(broker.port), "--ca-file", pki.ca_file, "--cert-file", fleet_id.cert_file, "--key-file",
            fleet_id.key_file]
    bad, good = tmp_path / "bad.yaml", tmp_path / "good.yaml"
    bad.write_text("capture: {fps: 0}\n")
    good.write_text("health: {interval_s: 30}\n")  # no identity: each node keeps its own
    capsys.readouterr()
    assert main([*push, str(bad), "--to", "site1/cam1"]) == 2
    assert "capture.fps = 0" in capsys.readouterr().err, "the centre names the bad key"
    assert main([*push, str(good), "--to", "all"]) == 2, "only release announcements go to every node"
    assert main([*push, str(good), "--to", "site1/cam1"]) == 0
    assert "pushed config version 1 to site1/cam1:" in capsys.readouterr().out
    assert main([*push, str(good), "--to", "site1/cam1", "--version", "1"]) == 2, "a version is never reused"
    node = Subscriber("localhost", broker.port, "anpr/ctl/site1/cam1/#",  # the node comes online after the push
                      tls=TlsFiles(pki.ca_file, cam1.cert_file, cam1.key_file)).start()
    try:
        got = node.wait_for(2, 10)
    finally:
        node.stop()
    manifest = next(m for m in got if m.topic == "anpr/ctl/site1/cam1/config")
    assert all(m.retain for m in got) and {m.topic for m in got} == {"anpr/ctl/site1/cam1/config",
                                                         "anpr/ctl/site1/cam1/config/data/0"}
    verified = verify_manifest(manifest.payload, keys=load_public_keys(str(keys / "fleet-signing.pub")),
                               target="site1/cam1", kind="config", applied_version=0, now=datetime.now(UTC),
                               max_size=1_000_000)
    assert getattr(verified, "version", None) == 1, verified
    db = open_db(str(store))
    try:
        assert last_version(db, "config", "site1/cam1") == 1, "recorded once: the refused pushes are not"
    finally:
        db.close()
