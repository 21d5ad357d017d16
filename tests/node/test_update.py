"""Over-the-air updates end to end with real parts: a TUF repository made by the central code (python-tuf), served
over HTTPS on loopback with client certificates required, and a node updating a temporary install root (real venvs,
real wheels unpacked into them, the new release's own code as its selftest)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from support.pki import OPENSSL, CertPair, TestPki
from support.releases import Healthy, ProbeSelfTest, Restarts, https_server, make_models, make_wheel, now_utc
from tuf.api.metadata import Metadata, Targets

from edge.central import release as rel
from edge.central.release_cli import configure_parser
from edge.central.release_cli import main as release_main
from edge.node.update import Identity, NodeUpdater, Outcome, Timing
from edge.node.update_fetch import ReleaseClient, TlsFetcher, TlsOptions
from edge.node.update_state import health_fields, is_complete, linked_version, read_state
from edge.publish.schema import Schemas

pytestmark = pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[TestPki, CertPair, CertPair]:
    p = TestPki(tmp_path_factory.mktemp("pki"))
    return p, p.issue("repo", "localhost", server=True), p.issue("node", "site1/cam1")


@dataclass
class Env:
    tmp: Path
    repo: rel.ReleaseRepo
    root_key: rel.CryptoSigner
    online: rel.CryptoSigner
    url: str
    served: object
    tls: TlsOptions
    root: Path

    @property
    def pinned(self) -> Path:
        return self.repo.meta_dir / "1.root.json"

    def bundle(self, version: str, *, fail: bool = False) -> Path:
        wheel = make_wheel(self.tmp / "wheels" / version, version, fail=fail)
        return rel.build_bundle(self.tmp / "dist", wheel=wheel, models=make_models(self.tmp / "models"), now=now_utc())

    def publish(self, version: str, *scopes: str, fail: bool = False, signer: rel.CryptoSigner | None = None) -> None:
        self.repo.add_release(self.bundle(version, fail=fail))
        for scope in scopes:
            self.repo.set_rollout(scope, version, now_utc())
        self.repo.commit(signer or self.online, now_utc())

    def updater(self, *, selftest: ProbeSelfTest | None = None, health: Healthy | None = None,
                restarts: Restarts | None = None) -> NodeUpdater:
        fetcher = TlsFetcher(self.tls)
        client = ReleaseClient(url=self.url, pinned_root=self.pinned, cache=self.root / "tuf", fetcher=fetcher)
        return NodeUpdater(self.root, client, Identity("site1", "cam1", ("canary",)),
                           restarter=restarts or Restarts(), selftest=selftest or ProbeSelfTest(),
                           probe=lambda: health or Healthy(), installer="unpack",
                           timing=Timing(startup_s=0.2, healthy_s=0.05, poll_s=0.01),
                           fetched=lambda: fetcher.bytes_received)


@pytest.fixture
def env(tmp_path: Path, pki: tuple[TestPki, CertPair, CertPair]) -> Iterator[Env]:
    ca, server, node = pki
    root_key, online = rel.make_key(tmp_path / "keys" / "root.key"), rel.make_key(tmp_path / "keys" / "online.key")
    repo = rel.ReleaseRepo.init(tmp_path / "repo", root_signer=root_key, online_signer=online, now=now_utc())
    with https_server(repo.path, cert=server.cert_file, key=server.key_file, ca=ca.ca_file) as (url, served):
        e = Env(tmp_path, repo, root_key, online, url, served, TlsOptions(ca.ca_file, node.cert_file, node.key_file),
                tmp_path / "opt")
        e.publish("0.1.0", "all")
        first = e.updater().run()
        assert (first.action, first.version) == ("updated", "0.1.0"), first
        yield e


def _unchanged(env: Env, out: Outcome, reason: str) -> None:
    assert out.action == "refused", out
    assert out.detail.startswith(reason), out.detail
    assert linked_version(env.root, "current") == "0.1.0"
    state = read_state(env.root)
    assert state.step == "idle" and state.refused is not None and state.refused.reason == reason
    assert health_fields(env.root)["refused"]["reason"] == reason
    _valid_health(env.root)


def _valid_health(root: Path) -> None:
    Schemas().validate("health", {"schema": "anpr.health/1", "site": "site1", "camera": "cam1",
                                  "time": "2026-12-08T09:00:00.000Z", "update": health_fields(root)})


def test_a_good_release_is_applied_confirmed_and_a_withdrawal_goes_back(env: Env) -> None:
    env.publish("0.2.0", "group/canary")
    selftest, restarts = ProbeSelfTest(), Restarts()
    out = env.updater(selftest=selftest, restarts=restarts).run()
    assert (out.action, out.version) == ("updated", "0.2.0"), out
    assert selftest.ran == ["0.2.0"]  # the new release's own installed code ran
    assert restarts.count == 1
    assert linked_version(env.root, "current") == linked_version(env.root, "stable") == "0.2.0"
    assert is_complete(env.root, "0.1.0")  # the previous release stays
    assert health_fields(env.root) == {"running": "0.2.0", "confirmed": "0.2.0"}
    assert env.updater().run().action == "none"

    env.repo.withdraw("0.2.0", now_utc())
    env.repo.commit(env.online, now_utc())
    back = env.updater().run()
    assert (back.action, back.version) == ("updated", "0.1.0"), back
    assert linked_version(env.root, "current") == "0.1.0"


def test_a_node_outside_the_staged_group_keeps_its_release(env: Env) -> None:
    env.publish("0.2.0", "group/other")
    assert env.updater().run().action == "none"
    env.repo.set_rollout("all", "0.2.0", now_utc())
    env.repo.commit(env.online, now_utc())
    assert env.updater().run().version == "0.2.0"


def test_a_release_whose_selftest_fails_is_rolled_back_and_not_retried(env: Env) -> None:
    env.publish("0.2.0", "all", fail=True)
    restarts = Restarts()
    out = env.updater(restarts=restarts).run()
    assert (out.action, out.version) == ("rolled_back", "0.1.0"), out
    assert linked_version(env.root, "current") == "0.1.0" and restarts.count == 2
    assert not (env.root / "releases" / "0.2.0").exists()
    failed = health_fields(env.root)["failed"]
    assert failed["version"] == "0.2.0" and failed["reason"] == "selftest_failed"
    _valid_health(env.root)
    again = env.updater().run()
    assert again.action == "none" and "failed here before" in again.detail


def test_a_release_that_does_not_run_healthy_is_rolled_back(env: Env) -> None:
    env.publish("0.2.0", "all")
    out = env.updater(health=Healthy("no frame for 60 s")).run()
    assert out.action == "rolled_back" and "no frame" in out.detail
    assert read_state(env.root).failed.reason == "unhealthy"  # type: ignore[union-attr]


def test_expired_metadata_is_refused(env: Env) -> None:
    env.repo.add_release(env.bundle("0.2.0"))
    env.repo.set_rollout("all", "0.2.0", now_utc())
    env.repo.commit(env.online, now_utc() - timedelta(days=5))  # timestamp valid 2 days from then
    _unchanged(env, env.updater().run(), "expired")


def test_older_metadata_served_again_is_refused(env: Env) -> None:
    old = (env.repo.meta_dir / "timestamp.json").read_bytes()
    env.publish("0.2.0", "group/other")
    assert env.updater().run().action == "none"  # the node has now seen the newer timestamp
    (env.repo.meta_dir / "timestamp.json").write_bytes(old)
    _unchanged(env, env.updater().run(), "rollback")


def test_a_target_with_the_wrong_hash_is_refused(env: Env) -> None:
    env.publish("0.2.0", "all")
    info = env.repo.releases()["0.2.0"]
    stored = env.repo.targets_dir / "releases" / f"{info.hashes['sha256']}.edge-anpr-0.2.0.tar"
    data = bytearray(stored.read_bytes())
    data[100] ^= 0xFF
    stored.write_bytes(bytes(data))
    _unchanged(env, env.updater().run(), "sha_mismatch")
    assert not (env.root / "releases" / "0.2.0").exists()


def test_a_truncated_download_is_refused(env: Env) -> None:
    env.publish("0.2.0", "all")
    env.served.truncate.add("edge-anpr-0.2.0.tar")  # type: ignore[attr-defined]
    _unchanged(env, env.updater().run(), "truncated")


def test_metadata_signed_by_a_key_not_in_root_is_refused(env: Env) -> None:
    env.repo.add_release(env.bundle("0.2.0"))
    env.repo.set_rollout("all", "0.2.0", now_utc())
    forged = rel.make_key(env.tmp / "keys" / "forged.key")
    with pytest.raises(rel.ReleaseError, match="not the one root"):
        env.repo.commit(forged, now_utc())  # the central side refuses it already
    targets: Metadata[Targets] = env.repo.targets
    targets.signed.version += 1
    targets.signatures.clear()
    targets.sign(forged)
    rel._write(env.repo.meta_dir / f"{targets.signed.version}.targets.json", targets)
    env.repo._snapshot_and_timestamp(env.online, now_utc())
    _unchanged(env, env.updater().run(), "bad_signature")


def test_rotated_keys_reach_nodes_that_pinned_the_first_root(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    configure_parser(parser)
    new_key = env.tmp / "keys" / "online2.key"
    args = parser.parse_args(["rotate-key", "--repo", str(env.repo.path), "--root-key", str(env.tmp / "keys/root.key"),
                              "--new-online-key", str(new_key)])
    assert release_main(args) == 0
    repo = rel.ReleaseRepo.open(env.repo.path)
    assert repo.root.signed.version == 2
    with pytest.raises(rel.ReleaseError, match="rotated away"):
        repo.commit(env.online, now_utc())
    env.repo = repo
    env.publish("0.2.0", "all", signer=rel.load_signer(new_key))
    out = env.updater().run()  # pinned: 1.root.json; follows 2.root.json by itself
    assert (out.action, out.version) == ("updated", "0.2.0"), out
    assert json.loads((env.root / "tuf" / "metadata" / "root.json").read_text())["signed"]["version"] == 2


def test_disk_space_is_checked_before_download(env: Env) -> None:
    env.publish("0.2.0", "all")
    updater = env.updater()
    updater._timing = Timing(min_free_mb=10**9)
    _unchanged(env, updater.run(), "disk")


def test_the_cli_cuts_stages_and_withdraws(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    configure_parser(parser)
    online = str(env.tmp / "keys" / "online.key")
    repo = str(env.repo.path)

    def cli(*argv: str) -> str:
        assert release_main(parser.parse_args(list(argv))) == 0
        return capsys.readouterr().out

    wheel = make_wheel(env.tmp / "w", "0.3.0")
    out = cli("build", "--wheel", str(wheel), "--models", str(make_models(env.tmp / "m")), "--out", str(env.tmp / "d"))
    bundle = out.split()[0]
    assert "published 0.3.0" in cli("publish", bundle, "--repo", repo, "--online-key", online, "--to", "group/canary")
    assert "all -> 0.3.0" in cli("rollout", "0.3.0", "--to", "all", "--repo", repo, "--online-key", online)
    status = json.loads(cli("status", "--repo", repo, "--json"))
    assert status["rollout"] == {"all": "0.3.0", "group/canary": "0.3.0"}
    lines = cli("withdraw", "0.3.0", "--repo", repo, "--online-key", online)
    assert "all: 0.3.0 -> 0.1.0" in lines
    status = json.loads(cli("status", "--repo", repo, "--json"))
    assert "0.3.0" not in status["releases"] and status["rollout"]["all"] == "0.1.0"
    shutil.rmtree(env.tmp / "d")
