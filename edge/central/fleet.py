"""The centre's side of the fleet control channel: keys, signed pushes, and what the nodes applied or refused.

``edge-anpr fleet keygen`` makes the centre's Ed25519 signing key (``fleet-signing.key``, 0600; its public half
``fleet-signing.pub`` is what every node pins) and the fleet hotlist secret (``fleet-hotlist.secret``, 0600) from
which each target's hotlist key is derived (:func:`edge.fleet.payload.target_key`). ``fleet node-keys`` writes one
node's keyring for provisioning. ``fleet hotlist push FILE --to TARGET`` hashes the plain-text list with each
target's key (plate text never leaves the centre), compresses, signs and publishes it as retained QoS 1 messages
(chunks first, the manifest last), and records the push in the central store; ``fleet config push FILE --to
TARGET`` signs a node config the same way (:func:`config_push`); ``fleet status`` lists each node
from that store (fed by the health messages ``listen`` keeps).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.errors import BrokerError, ConfigError
from edge.fleet import payload as fp
from edge.fleet import signing
from edge.fleet.manifest import Manifest, sign_manifest
from edge.fleet.topics import Kind, chunk_topic, manifest_topic
from edge.privacy.hotlist import load_hotlist
from edge.privacy.pseudonym import read_secret

log = logging.getLogger(__name__)

SIGNING_KEY = "fleet-signing.key"
PUBLIC_KEY = "fleet-signing.pub"
SECRET_FILE = "fleet-hotlist.secret"  # noqa: S105 - a file name, not a secret
DEFAULT_EXPIRY = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Push:
    """One target's signed update, ready to publish."""

    manifest: Manifest
    chunks: list[bytes]
    entries: int | None = None

    @property
    def bytes(self) -> int:
        return len(self.manifest.to_bytes()) + sum(len(c) for c in self.chunks)


def keygen(out: Path) -> list[str]:
    """Make the signing key pair and the hotlist secret in ``out``; refuses to overwrite either."""
    import secrets

    out.mkdir(parents=True, exist_ok=True)
    done = []
    if (out / SIGNING_KEY).exists():
        done.append(f"kept the existing signing key {out / SIGNING_KEY}")
    else:
        key = signing.generate_key()
        signing.write_private_key(out / SIGNING_KEY, key)
        (out / PUBLIC_KEY).write_bytes(signing.public_pem(key.public_key()))
        done.append(f"created {out / SIGNING_KEY} (Ed25519, 0600; key id {signing.key_id(key.public_key())}) and "
                    f"{out / PUBLIC_KEY}: install the .pub on every node (provision --fleet-key)")
    if (out / SECRET_FILE).exists():
        done.append(f"kept the existing hotlist secret {out / SECRET_FILE}")
    else:
        from edge.files import write_atomic

        write_atomic(out / SECRET_FILE, secrets.token_bytes(32).hex().encode() + b"\n", mode=0o600)
        done.append(f"created {out / SECRET_FILE} (0600): every target's hotlist key derives from it; never copy it "
                    f"to a node")
    return done


def load_secret(keys: Path) -> bytes:
    return read_secret(keys / SECRET_FILE, what="fleet hotlist secret")


def node_keyring(secret: bytes, site: str, camera: str, groups: list[str]) -> dict[str, bytes]:
    """The hotlist keys a node needs: its own and each of its groups'."""
    targets = [f"{site}/{camera}", *(f"group/{g}" for g in groups)]
    return {t: fp.target_key(secret, t) for t in targets}


def hotlist_push(
    plain_file: Path, *, target: str, version: int, secret: bytes, key: signing.Ed25519PrivateKey, now: datetime,
    expires: datetime, chunk_bytes: int = fp.CHUNK_BYTES,
) -> Push:
    """``plain_file`` (anpr.hotlist/1 with plate text, checksummed) hashed with ``target``'s key, signed."""
    hotlist = load_hotlist(plain_file, now=now, grace=timedelta(0), hash_key=fp.target_key(secret, target))
    data = fp.encode_hotlist(hotlist.hashed_doc())
    return sign_push(key, kind="hotlist", target=target, version=version, data=data, now=now, expires=expires,
                     chunk_bytes=chunk_bytes, entries=len(hotlist))


def config_push(
    config_file: Path, *, target: str, version: int, key: signing.Ed25519PrivateKey, now: datetime,
    expires: datetime, chunk_bytes: int = fp.CHUNK_BYTES,
) -> Push:
    """``config_file`` (a node config, YAML) as it is, compressed and signed. It is checked here against the config
    schema only (a ConfigError names every bad key); each node checks it again as ``check-config`` does, with the
    files it names, and fills in its own identity, certificate paths and pinned keys where the file leaves them out
    (so one file can go to a group)."""
    from edge.config import parse_config
    from edge.config.safe_yaml import read_yaml

    doc = read_yaml(config_file)
    if isinstance(doc, dict) and isinstance(doc.setdefault("node", {}), dict):  # a node fills in its own identity
        site, _, camera = target.partition("/")
        doc["node"].setdefault("site", "group-config" if site == "group" else site)
        doc["node"].setdefault("camera", camera)
    parse_config(doc, origin=str(config_file))
    data = fp.compress(config_file.read_bytes())
    return sign_push(key, kind="config", target=target, version=version, data=data, now=now, expires=expires,
                     chunk_bytes=chunk_bytes)


def sign_push(
    key: signing.Ed25519PrivateKey, *, kind: Kind, target: str, version: int, data: bytes, now: datetime,
    expires: datetime, chunk_bytes: int = fp.CHUNK_BYTES, entries: int | None = None,
) -> Push:
    chunks = fp.split(data, version, chunk_bytes)
    manifest = sign_manifest(key, kind=kind, target=target, version=version, issued=now, expires=expires,
                             payload=data, chunks=len(chunks))
    return Push(manifest, chunks, entries)


# -- publishing ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BrokerOptions:
    host: str = "localhost"
    port: int = 8883
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure_lab_mode: bool = False
    client_id: str = "edge-anpr-fleet"
    prefix: str = "anpr"
    timeout_s: float = 30.0


class ControlPublisher:
    """A short MQTT 5 session that publishes pushes (retained, QoS 1) and waits for every PUBACK (context manager)."""

    def __init__(self, options: BrokerOptions) -> None:
        self._opt = options
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=options.client_id, protocol=paho.MQTTv5)
        self._acks: dict[int, ReasonCode] = {}
        self._cond = threading.Condition()
        self._connected: ReasonCode | None = None

    def __enter__(self) -> ControlPublisher:
        opt, client = self._opt, self._client
        if not opt.insecure_lab_mode:
            if not (opt.ca_file and opt.cert_file and opt.key_file):
                raise ConfigError("--ca-file, --cert-file and --key-file are needed (or --insecure-lab-mode)")
            client.tls_set(ca_certs=opt.ca_file, certfile=opt.cert_file, keyfile=opt.key_file,
                           cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        client.max_inflight_messages_set(20)
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        try:
            client.connect(opt.host, opt.port, keepalive=30)
        except (OSError, ssl.SSLError) as exc:
            raise BrokerError(f"cannot connect to the broker {opt.host}:{opt.port}: {exc}") from exc
        client.loop_start()
        with self._cond:
            self._cond.wait_for(lambda: self._connected is not None, opt.timeout_s)
        if self._connected is None or self._connected.is_failure:
            self.close()
            raise BrokerError(f"the broker {opt.host}:{opt.port} did not accept the connection: {self._connected}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, c: paho.Client, u: object, f: object, rc: ReasonCode, p: object) -> None:
        with self._cond:
            self._connected = rc
            self._cond.notify_all()

    def _on_publish(self, c: paho.Client, u: object, mid: int, rc: ReasonCode, p: Properties | None) -> None:
        with self._cond:
            self._acks[mid] = rc
            self._cond.notify_all()

    def publish(self, push: Push) -> int:
        """Chunks first, the manifest last (a node that sees the manifest can complete as soon as it has them);
        returns the bytes of payload sent. Raises BrokerError when the broker refuses any (an ACL)."""
        m = push.manifest
        messages = [(chunk_topic(self._opt.prefix, m.target, m.kind, i), c) for i, c in enumerate(push.chunks)]
        messages.append((manifest_topic(self._opt.prefix, m.target, m.kind), m.to_bytes()))
        mids = []
        for topic, body in messages:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.UserProperty = ("schema", "anpr.ctl/1")
            info = self._client.publish(topic, body, qos=1, retain=True, properties=props)
            mids.append(info.mid)
        deadline = time.monotonic() + self._opt.timeout_s
        with self._cond:
            self._cond.wait_for(lambda: all(mid in self._acks for mid in mids),
                                max(0.0, deadline - time.monotonic()))
            results = [self._acks.pop(mid, None) for mid in mids]
        refused = [str(r) for r in results if r is None or r.is_failure]
        if refused:
            raise BrokerError(f"the broker did not accept the push of {m.kind} v{m.version} to {m.target}: "
                              f"{refused[0]} (is this the centre's certificate? the ACL lets only it write anpr/ctl)")
        return sum(len(body) for _, body in messages)
