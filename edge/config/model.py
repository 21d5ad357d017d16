"""The configuration schema: one frozen pydantic model per section, unknown keys refused.

pydantic is used (rather than hand-written checks) because it gives, for free, the key path,
the offending value and the allowed values in every error, and a description per field that
``edge-anpr check-config --explain`` and the README reference are generated from.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edge.config.camera import ExposureConfig, OverviewConfig, check_size
from edge.config.times import check_time
from edge.read.countries import COUNTRIES

_SLUG = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False, allow_inf_nan=False)


class NodeConfig(_Section):
    site: str = Field(pattern=_SLUG, description="Site id, used in MQTT topics (lowercase, digits, - and _).")
    camera: str = Field(pattern=_SLUG, description="Camera id at the site, used in MQTT topics.")
    state_dir: str = Field(
        "/var/lib/edge-anpr", description="Directory for the outbox and audit log (systemd StateDirectory)."
    )


class CaptureConfig(_Section):
    source: Literal["picamera", "video", "images", "stream"] = Field(
        "picamera", description="Where frames come from: the Pi camera, a video file, an image folder or a URL."
    )
    path: str | None = Field(None, description="Video file, image folder, or stream URL (not for picamera).")
    main_size: tuple[int, int] = Field((1920, 1080), description="Full-resolution stream size (width, height).")
    lores_size: tuple[int, int] = Field((640, 360), description="Detection stream size (width, height).")
    fps: float = Field(25.0, gt=0, le=240, description="Camera frame rate; image folders are timed at this rate.")
    start_time: datetime | None = Field(
        None, description="UTC time of the first frame of a replay (ISO 8601, in the years 2000 to 2099). Default: the "
        "file's sidecar or mtime."
    )
    realtime: bool = Field(False, description="Replay at the recording's rate, dropping frames like a live camera.")
    queue_size: int = Field(4, ge=1, le=256, description="Frames held between capture and detection.")
    max_pixels: int = Field(
        40_000_000, ge=1024, le=500_000_000,
        description="Largest frame (width x height) a source may deliver; bigger images and videos are refused "
        "before they are decoded.",
    )
    camera_index: int = Field(0, ge=0, le=7, description="picamera2 camera index of the plate camera.")
    overview: OverviewConfig | None = Field(
        None, description="A second camera for the overview image (none: the plate camera's own frame)."
    )
    exposure: ExposureConfig = Field(
        default_factory=ExposureConfig, description="The plate camera's exposure: day and night profiles."
    )

    @field_validator("start_time")
    @classmethod
    def _start_in_range(cls, v: datetime | None) -> datetime | None:
        return None if v is None else check_time(v, "the time")

    @field_validator("main_size", "lores_size")
    @classmethod
    def _positive_size(cls, v: tuple[int, int]) -> tuple[int, int]:
        return check_size(v)

    @model_validator(mode="after")
    def _path_needed(self) -> CaptureConfig:
        if self.source != "picamera" and not self.path:
            raise ValueError(f"capture.path is required when capture.source is {self.source!r}")
        if self.lores_size[0] > self.main_size[0] or self.lores_size[1] > self.main_size[1]:
            raise ValueError(f"lores_size {list(self.lores_size)} must not exceed main_size {list(self.main_size)}")
        if self.main_size[0] * self.main_size[1] > self.max_pixels:
            raise ValueError(f"main_size {list(self.main_size)} is more than capture.max_pixels ({self.max_pixels})")
        ov = self.overview
        if ov is not None and ov.source == self.source == "picamera" and ov.camera_index == self.camera_index:
            raise ValueError(f"capture.overview.camera_index {ov.camera_index} is the plate camera's "
                             f"(capture.camera_index): give the overview camera the other connector's index")
        return self


class DetectConfig(_Section):
    backend: Literal["contour", "edges", "wpod"] = Field(
        "edges",
        description="Plate detector backend: edges (rows of characters; real plates), contour (clean, bright plates), "
        "wpod (the WPOD-NET model; real plates, slower).",
    )
    every_n_frames: int = Field(1, ge=1, le=30, description="Run detection on every n-th frame.")
    workers: int = Field(
        0, ge=0, le=8,
        description="Threads that detect and read frames, each with its own reader (15 MB each after the first); "
        "0: one per core the node may use, at most 4. A replay gives the same reads every time with the same number.",
    )
    min_plate_width: int = Field(24, ge=8, le=2000, description="Smallest plate width (lores pixels) to consider.")
    min_confidence: float = Field(0.3, ge=0.0, le=1.0, description="Detections below this score are ignored.")
    second_look: Literal["none", "wpod"] = Field(
        "wpod",
        description="Detector that looks again when no box of the backend read as an allowed plate "
        "(wpod: small, dark and slanted plates; none: never).",
    )
    second_look_every: int = Field(
        10, ge=1, le=1000,
        description="Look again on at most one detected frame in this many (still images: every one).",
    )
    fine_look: bool = Field(
        True,
        description="Look for small plates (characters of 5-16 pixels, and yellow rear plates) on the full image "
        "shrunk to twice the detection stream, when no box read as an allowed plate.",
    )
    fine_look_every: int = Field(
        2, ge=1, le=1000,
        description="Take the fine look on at most one detected frame in this many (still images: every one).",
    )
    model: str = Field(
        "models/wpod_net.tflite",
        description="Detector model file (.tflite, listed in the manifest); used by wpod (backend or second look).",
    )
    manifest: str = Field("models/manifest.json", description="Model manifest with the expected sha256 of each file.")
    threads: int = Field(1, ge=1, le=16, description="Inference threads for the detector model (wpod).")
    scale: float = Field(
        1.0, gt=0.0, le=4.0,
        description="wpod: the lores image is enlarged by this factor for the model (small plates; costs time).",
    )
    wpod_bands: int = Field(
        2, ge=1, le=8,
        description="wpod: the model looks at the image in this many overlapping horizontal bands, one after another. "
        "Its memory is about 110 MB for a 640x360 image in one band, 80 MB in two and 70 MB in three; a look takes "
        "about 1.3 times as long in two as in one, 1.45 times in three.",
    )


class ReadConfig(_Section):
    model: str = Field(
        "models/ppocr_rec_plate.tflite",
        description="OCR model file (.tflite), listed in the manifest; its task picks the reader (PP-OCR or CTC).",
    )
    manifest: str = Field("models/manifest.json", description="Model manifest with the expected sha256 of each file.")
    threads: int = Field(1, ge=1, le=16, description="Inference threads for the OCR model.")
    min_confidence: float = Field(0.5, ge=0.0, le=1.0, description="Reads below this character confidence are dropped.")
    formats: tuple[str, ...] = Field(
        ("uk_current", "uk_prefix", "uk_suffix", "uk_dateless", "uk_northern_ireland", "uk_diplomatic", "ie"),
        description="Registration formats accepted, by name from the formats files; [all] for every known one. "
        "The default: every UK format and the Republic of Ireland's (ie).",
    )
    formats_file: str | None = Field(None, description="YAML file of extra formats (other countries).")
    country: tuple[str, ...] = Field(
        (),
        description="Countries whose current formats the node reads, by code (es, or a list: [fr, be]); their "
        "formats come first, then those named in read.formats, which a config with a country leaves out unless it "
        "names them. gb is the default (UK and Irish) formats; see the README for the codes.",
    )
    format_guided: bool = Field(
        True,
        description="Decode the OCR's frames to the likeliest reading that fits an allowed format (false: greedy).",
    )
    maybe_every: int = Field(
        4, ge=1, le=1000,
        description="A crop that only may be a plate (light characters on dark, too few characters, an odd "
        "background), where such a crop read as no plate in the last frames, is read on at most one detected frame "
        "in this many; a crop that looks like a plate is read on every one (still images: every crop).",
    )
    publish_unfitted: bool = Field(
        False,
        description="Also publish passes whose read fits none of read.formats (format 'none'); by default only "
        "reads that fit are published. Counted in health either way.",
    )
    fit_min_ratio: float = Field(
        0.05, ge=0.0, le=1.0,
        description="A read is not bent into a format: where the model is sure of a character (probability at "
        "least 0.5), a format's character it scored below this share of it (default 1/20) refuses the decoder's "
        "fit, and a fit by position (a look-alike: 5 -> S) stands only where some read of the vehicle scored it "
        "at this share or more (O/0 and I/1, which the UK font draws alike, always fit). 0: any fit goes.",
    )

    @model_validator(mode="before")
    @classmethod
    def _country_replaces_default_formats(cls, data: object) -> object:
        """A config that names a country and no formats reads that country's formats alone."""
        if isinstance(data, dict) and data.get("country") and "formats" not in data:
            return {**data, "formats": ()}
        return data

    @field_validator("country", mode="before")
    @classmethod
    def _known_countries(cls, v: object) -> object:
        codes = (v,) if isinstance(v, (str, bool)) else v
        if not isinstance(codes, (list, tuple)):
            return v  # the type check names it
        codes = tuple(c.lower() if isinstance(c, str) else c for c in codes)
        unknown = [c for c in codes if c not in COUNTRIES]
        if unknown:
            hint = " (YAML reads a bare no as false: write Norway's code in quotes, 'no')" \
                if any(isinstance(c, bool) for c in unknown) else ""
            raise ValueError(f"unknown country code {', '.join(repr(c) for c in unknown)}; "
                             f"valid: {', '.join(sorted(COUNTRIES))}{hint}")
        if len(set(codes)) != len(codes):
            raise ValueError(f"countries {list(codes)} name a country twice")
        return codes


class ZoneConfig(_Section):
    name: str = Field(pattern=_SLUG, description="Zone name, reported with each pass (e.g. lane-1).")
    kind: Literal["lane", "exclude"] = Field(
        "lane", description="lane: tags passes seen in it; exclude: sightings inside are dropped."
    )
    polygon: tuple[tuple[float, float], ...] = Field(
        description="Corners as [x, y] shares of the frame width and height (0..1), at least 3."
    )

    @field_validator("polygon")
    @classmethod
    def _valid_polygon(cls, v: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
        if len(v) < 3:
            raise ValueError(f"polygon has {len(v)} corners; a zone needs at least 3")
        bad = [list(p) for p in v if not (0.0 <= p[0] <= 1.0 and 0.0 <= p[1] <= 1.0)]
        if bad:
            raise ValueError(f"polygon corners {bad} are outside 0..1 (shares of the frame width and height)")
        return v


class TrackConfig(_Section):
    max_gap_s: float = Field(1.0, gt=0, le=60, description="A track ends when unseen for this long.")
    max_delay_s: float = Field(5.0, gt=0, le=600, description="Publish a pass at most this long after first seen.")
    min_sightings: int = Field(2, ge=1, le=100, description="Sightings a track needs before it is a pass.")
    repeat_gap_s: float = Field(
        30.0, ge=0, le=86400, description="The same plate seen again after this gap is a new pass."
    )
    match_iou: float = Field(0.1, ge=0.0, le=1.0, description="Least box overlap for a sighting to join a track.")
    max_jump: float = Field(
        2.0, gt=0, le=20, description="Farthest a sighting may be from a track's predicted box, in plate widths."
    )
    exit_gap_s: float = Field(
        0.3, gt=0, le=60, description="A track whose predicted box has left the frame ends when unseen this long."
    )
    min_chars: int = Field(2, ge=1, le=10, description="A pass's voted read needs at least this many characters.")
    min_confidence: float = Field(
        0.3, ge=0.0, le=1.0, description="Least voted confidence (weakest character) for a track to be a pass."
    )
    wary_formats: tuple[str, ...] = Field(
        ("uk_dateless",),
        description="Formats so loose that a fragment of another plate fits them: a pass of one of these, or of 3 "
        "characters or fewer, needs track.wary_sightings sightings and track.min_sightings reads of it from a crop "
        "that is a whole plate.",
    )
    wary_sightings: int = Field(
        4, ge=1, le=100, description="Sightings a wary pass (see track.wary_formats) needs."
    )
    preview_after_s: float | None = Field(
        None, gt=0, le=600, description="Send an early preview read this long after first seen (None: no preview)."
    )
    zones: tuple[ZoneConfig, ...] = Field(
        (), description="Lanes or areas (polygons); a pass is tagged with its lane, exclude zones drop sightings."
    )

    @model_validator(mode="after")
    def _unique_zones(self) -> TrackConfig:
        names = [z.name for z in self.zones]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"track.zones names must be unique; repeated: {dupes}")
        return self


class RetentionConfig(_Section):
    non_hit_reads_s: float = Field(
        86_400.0, ge=0, le=31 * 86_400, description="Longest a read that hit no hotlist is kept on the node."
    )
    hit_reads_s: float = Field(31 * 86_400.0, ge=0, le=366 * 86_400, description="Longest a hotlist hit is kept.")
    images_s: float = Field(86_400.0, ge=0, le=31 * 86_400, description="Longest an image is kept on the node.")
    logs_s: float = Field(31 * 86_400.0, ge=0, le=366 * 86_400, description="Longest an audit entry is kept.")
    purge_interval_s: float = Field(300.0, ge=1, le=86_400, description="Seconds between purges (also at start).")


class PrivacyConfig(_Section):
    fields: tuple[
        Literal["plate", "time", "seq", "site", "camera", "confidence", "format", "direction", "zone", "first_seen",
                "last_seen", "sightings"],
        ...,
    ] = Field(
        ("plate", "time", "seq", "site", "camera", "confidence", "format"),
        description="Allow-list of fields a read may carry. Nothing else is ever published.",
    )
    plate_mode: Literal["plain", "pseudonymised", "hotlist_only"] = Field(
        "plain", description="Plate text as read, a keyed hash of it, or nothing unless a hotlist hit."
    )
    pseudonym_key_file: str | None = Field(None, description="Key file for pseudonymised mode.")
    image: Literal["none", "plate_patch", "redacted_overview"] = Field(
        "none", description="Image that may accompany a read."
    )
    image_when: Literal["always", "hotlist_hit"] = Field("always", description="When the image may be sent.")
    face_model: str = Field(
        "models/centerface.tflite",
        description="Face detector used to redact every image that may leave (CenterFace; BlazeFace also accepted).",
    )
    face_check_model: str = Field(
        "models/face_detection_full_range.tflite",
        description="Independent second-pass detector (BlazeFace) over every redacted image; a face it still "
        "finds is redacted too, or the image is dropped.",
    )
    face_threshold: float = Field(
        0.15, gt=0.0, lt=1.0, description="Face score above which a region is redacted (lower: more faces, more "
        "false regions; boxes under 20 px need at least 0.35)."
    )
    face_night_threshold: float = Field(
        0.07, description="Face score above which a region is redacted in a grey (infrared, night) frame, where "
        "faces score lower; never stricter than face_threshold (between 0 and 1, exclusive)."
    )
    redact_cabin: bool = Field(
        False, description="Also redact the windscreen and front side windows above each plate, never the plate "
        "(second line of defence)."
    )
    redaction_margin: float = Field(
        0.5, ge=0.0, le=2.0, description="Extra margin around each face box, as a share of its size, every side."
    )
    jpeg_quality: int = Field(80, ge=30, le=95, description="JPEG quality of published images.")
    pseudonym_rotation: Literal["daily", "weekly", "monthly"] = Field(
        "daily", description="How often the pseudonym key changes (UTC periods, derived from the key file)."
    )
    hit_image: Literal["none", "plate_patch", "redacted_overview"] = Field(
        "none", description="Image a hotlist hit may carry when it is more than `image` (that read only)."
    )
    hotlist_file: str | None = Field(None, description="Checksummed or signed hotlist file (JSON, anpr.hotlist/1).")
    hotlist_key_file: str | None = Field(
        None, description="Key for hashing hotlist plates; needed for pre-hashed entries. Default: a random key."
    )
    hotlist_signing_key_file: str | None = Field(
        None, description="HMAC key the hotlist must be signed with; when set, unsigned files are refused."
    )
    hotlist_grace_s: float = Field(
        86_400.0, ge=0, le=86_400, description="A hotlist expires this long after its valid_until."
    )
    hotlist_confusables: int = Field(
        1, ge=0, le=3, description="Confusable characters (O/0, I/1, S/5, B/8, Z/2) a hotlist match may differ by."
    )
    audit_file: str = Field(
        "audit.jsonl", description="Hash-chained log of what left the node (relative to node.state_dir)."
    )
    retention: RetentionConfig = Field(RetentionConfig(), description="Longest each class of data is kept.")

    @property
    def images_may_leave(self) -> bool:
        """Whether any read may carry an image (then the face model must load, or no image leaves)."""
        return self.image != "none" or self.hit_image != "none"

    @field_validator("face_night_threshold")
    @classmethod
    def _night_threshold_in_range(cls, v: float) -> float:
        if not 0.0 < v < 1.0:
            raise ValueError(f"{v} is not a score: it must be between 0 and 1 (exclusive), e.g. 0.07")
        return v

    @field_validator("audit_file")
    @classmethod
    def _inside_state_dir(cls, v: str) -> str:
        parts = v.replace("\\", "/").split("/")
        if not v or v.startswith("/") or ".." in parts or v.startswith("~"):
            raise ValueError(f"the audit log must be a file inside node.state_dir, given relative to it "
                             f"(e.g. audit.jsonl), not {v!r}")
        return v

    @model_validator(mode="after")
    def _minimum_fields(self) -> PrivacyConfig:
        missing = {"time", "seq", "site", "camera"} - set(self.fields)
        if missing:
            raise ValueError(f"privacy.fields must include {sorted(missing)} (the minimum of a read)")
        if self.plate_mode == "pseudonymised" and not self.pseudonym_key_file:
            raise ValueError("privacy.pseudonym_key_file is required when privacy.plate_mode is 'pseudonymised'")
        hit_driven = self.image_when == "hotlist_hit" or self.hit_image != "none"
        if (self.plate_mode == "hotlist_only" or hit_driven) and not self.hotlist_file:
            raise ValueError(
                "privacy.hotlist_file is required when privacy.plate_mode is 'hotlist_only', "
                "privacy.image_when is 'hotlist_hit' or privacy.hit_image is not 'none'"
            )
        return self


class OutboxConfig(_Section):
    max_bytes: int = Field(200_000_000, ge=1_000_000, le=1_000_000_000_000,
                           description="Outbox size bound; oldest reads go first.")
    max_age_s: float = Field(86_400.0, gt=0, le=366 * 86_400,
                             description="Reads older than this are dropped (and counted).")


class TlsConfig(_Section):
    ca_file: str = Field(description="CA certificate that signed the broker's certificate.")
    cert_file: str = Field(description="This node's client certificate.")
    key_file: str = Field(description="This node's private key (must not be readable by others).")


class MqttConfig(_Section):
    host: str = Field("localhost", min_length=1, description="Broker host name (checked against its certificate).")
    port: int = Field(8883, ge=1, le=65535, description="Broker port (8883 for TLS, 1883 plain).")
    topic_prefix: str = Field("anpr", pattern=r"^[a-z0-9_-]+$", description="First level of every topic.")
    client_id: str | None = Field(None, description="Fixed MQTT client id. Default: <site>-<camera>.")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keep-alive interval.")
    tls: TlsConfig | None = Field(None, description="TLS with a client certificate (required unless lab mode).")
    insecure_lab_mode: bool = Field(False, description="Plain TCP without TLS. For a lab bench only.")
    username: str | None = Field(None, description="Username, if the broker uses passwords instead of certificates.")
    password_file: str | None = Field(None, description="File holding the password (never the password itself).")

    @model_validator(mode="after")
    def _secure_unless_lab(self) -> MqttConfig:
        if self.tls is None and not self.insecure_lab_mode:
            raise ValueError("mqtt.tls is required (or set mqtt.insecure_lab_mode: true on a lab bench)")
        if self.password_file and not self.username:
            raise ValueError("mqtt.password_file needs mqtt.username")
        return self


class HealthConfig(_Section):
    interval_s: float = Field(60.0, ge=1, le=86400, description="Seconds between retained health messages.")


class ClockConfig(_Section):
    max_offset_ms: float = Field(
        1000.0, gt=0, le=10_000,
        description="Reads are treated as unsynchronised when the clock is off by more than this (SI 2022/71: 10 s).",
    )
    on_unsynced: Literal["flag", "hold"] = Field(
        "flag", description="flag: publish reads with clock_unsynced: true; hold: keep them until the clock is synced."
    )
    check_interval_s: float = Field(10.0, ge=1, le=3600, description="Seconds between clock synchronisation checks.")
    max_held: int = Field(10_000, ge=1, le=1_000_000, description="Most reads held while unsynced (oldest dropped).")


class FleetConfig(_Section):
    public_key_file: str = Field(
        description="The centre's Ed25519 public key(s) (PEM; several blocks for rotation), installed by provision: "
        "control messages signed by any other key are refused."
    )
    groups: tuple[str, ...] = Field(
        (), max_length=16,
        description="Groups this node belongs to (lowercase, digits, - and _): it also takes what the centre sends "
        "to anpr/ctl/group/<name>/...",
    )
    hotlist_keys_file: str | None = Field(
        None, description="This node's hotlist keyring (its own key and its groups', from edge-anpr fleet node-keys); "
        "without it pushed hotlists are refused.",
    )
    max_payload_bytes: int = Field(
        16_000_000, ge=1024, le=256_000_000, description="Largest pushed payload (as sent, compressed) the node takes."
    )
    config_startup_s: float = Field(
        120.0, ge=1, le=3600,
        description="How long a pushed config may take to come back healthy (started, connected, health published) "
        "after its restart; past it, or after 3 starts that did not, the node rolls back to its last good config.",
    )

    @field_validator("groups")
    @classmethod
    def _group_names(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        import re

        for name in v:
            if not re.fullmatch(_SLUG, name):
                raise ValueError(f"group {name!r}: lowercase letters, digits, - and _ only, at most 63 characters")
        if len(set(v)) != len(v):
            raise ValueError(f"groups {list(v)} name a group twice")
        return v


class UpdateConfig(_Section):
    url: str = Field(
        pattern=r"^https://[^\s]+$",
        description="The centre's release repository (TUF; metadata/ and targets/ under it), over HTTPS only.",
    )
    root_file: str = Field(
        description="The repository's root metadata pinned at provisioning (1.root.json): every update is verified "
        "from it; later roots (key rotations) are fetched and checked against it.",
    )
    install_root: str = Field(
        "/opt/edge-anpr", description="Holds releases/<version> (each with its venv and models), current and stable."
    )
    ca_file: str | None = Field(None, description="CA of the repository's server (default: mqtt.tls.ca_file).")
    cert_file: str | None = Field(None, description="Client certificate for the server (default: mqtt.tls.cert_file).")
    key_file: str | None = Field(None, description="Its private key (default: mqtt.tls.key_file).")
    startup_s: float = Field(
        180.0, ge=1, le=3600, description="How long a new release may take to report healthy after its restart."
    )
    healthy_s: float = Field(
        300.0, ge=0, le=86400, description="How long a new release must run healthy before it is confirmed."
    )
    min_free_mb: int = Field(
        200, ge=0, le=1_000_000, description="Free space to leave besides three times the bundle (download, unpack, "
        "venv); less refuses the update (reason disk)."
    )
    installer: Literal["pip", "unpack"] = Field(
        "pip", description="pip: a venv per release, installed offline from the bundle's wheels only; unpack: a venv "
        "with the system's site packages and the package wheel unpacked into it (tests, OS-packaged deployments).",
    )
    restart_command: tuple[str, ...] = Field(
        ("systemctl", "restart", "edge-anpr.service"), min_length=1, description="How the node's service is restarted."
    )
    selftest_user: str | None = Field(
        "edge-anpr", pattern=r"^[a-z_][a-z0-9_-]{0,31}$", description="The new release's selftest runs as this user, "
        "in a transient systemd service (systemd-run) that may write only node.state_dir, as the node itself runs; "
        "none: in the updater's own process and sandbox (tests, systems without systemd).",
    )


class Config(_Section):
    node: NodeConfig
    capture: CaptureConfig = CaptureConfig()
    detect: DetectConfig = DetectConfig()
    read: ReadConfig = ReadConfig()
    track: TrackConfig = TrackConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    outbox: OutboxConfig = OutboxConfig()
    mqtt: MqttConfig | None = Field(None, description="Broker to publish to; without it reads stay in the outbox.")
    health: HealthConfig = HealthConfig()
    clock: ClockConfig = ClockConfig()
    fleet: FleetConfig | None = Field(
        None, description="Control channel from the centre (signed hotlist and config pushes); without it the node "
        "takes none.",
    )
    update: UpdateConfig | None = Field(
        None, description="Over-the-air releases (signed with TUF; edge-anpr update); without it the node takes none.",
    )

    @model_validator(mode="after")
    def _fleet_site(self) -> Config:
        if self.fleet is not None and self.node.site == "group":
            raise ValueError("node.site 'group' is reserved by the control topics (anpr/ctl/group/<name>/...)")
        return self
