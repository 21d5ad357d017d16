-- edge-anpr central store, PostgreSQL, migration 1: reads, images, node status and health, dead letters.
-- Times are timestamptz (UTC in, UTC out). Every read is stored once: its id is the primary key.

CREATE TABLE reads (
    id             text PRIMARY KEY,          -- <site>.<camera>.<seq>.<8 hex>, unique and stable
    site           text NOT NULL,
    camera         text NOT NULL,
    seq            bigint NOT NULL,           -- per node, increasing
    time           timestamptz NOT NULL,      -- when the vehicle passed (the node's UTC clock)
    plate          text,                      -- normalised plate (plain mode)
    plate_hash     text,                      -- HMAC-SHA256 of the plate (pseudonymised mode)
    key_id         text,                      -- which pseudonym key made plate_hash
    confidence     real,
    format         text,
    direction      text,                      -- approaching | receding
    zone           text,
    first_seen     timestamptz,
    last_seen      timestamptz,
    sightings      integer,
    hotlist_hit    boolean NOT NULL DEFAULT false,
    clock_unsynced boolean NOT NULL DEFAULT false,
    topic          text NOT NULL,
    received_at    timestamptz NOT NULL
);
CREATE INDEX reads_plate_time ON reads (plate, time) WHERE plate IS NOT NULL;
CREATE INDEX reads_plate_hash_time ON reads (plate_hash, time) WHERE plate_hash IS NOT NULL;
CREATE INDEX reads_site_time ON reads (site, time);
CREATE INDEX reads_time ON reads (time);

-- An image is a file under the image folder (path relative to it); the row describes and finds it.
CREATE TABLE images (
    read_id       text PRIMARY KEY REFERENCES reads (id) ON DELETE CASCADE,
    time          timestamptz NOT NULL,       -- the read's time (retention of the images class)
    kind          text NOT NULL,              -- plate_patch | redacted_overview
    content_type  text NOT NULL,
    width         integer NOT NULL,
    height        integer NOT NULL,
    bytes         integer NOT NULL,
    sha256        text NOT NULL,
    path          text NOT NULL,
    detector      text NOT NULL,              -- the node's redaction record
    model_sha256  text NOT NULL,
    threshold     real NOT NULL,
    regions       integer NOT NULL,
    received_at   timestamptz NOT NULL
);
CREATE INDEX images_time ON images (time);

CREATE TABLE node_status (                  -- the latest status of each node
    site        text NOT NULL,
    camera      text NOT NULL,
    state       text NOT NULL,                -- online | offline
    time        timestamptz NOT NULL,
    software    text NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (site, camera)
);
CREATE TABLE status_history (
    id          bigserial PRIMARY KEY,
    site        text NOT NULL,
    camera      text NOT NULL,
    state       text NOT NULL,
    time        timestamptz NOT NULL,
    software    text NOT NULL,
    received_at timestamptz NOT NULL,
    UNIQUE (site, camera, time, state)        -- a retained message delivered again is not a new event
);
CREATE INDEX status_history_time ON status_history (time);

CREATE TABLE node_health (                  -- the latest health of each node
    site         text NOT NULL,
    camera       text NOT NULL,
    time         timestamptz NOT NULL,
    outbox_depth bigint,
    clock_synced boolean,
    disk_free_mb double precision,
    document     jsonb NOT NULL,              -- the whole anpr.health/1 message
    received_at  timestamptz NOT NULL,
    PRIMARY KEY (site, camera)
);
CREATE TABLE health_history (
    id           bigserial PRIMARY KEY,
    site         text NOT NULL,
    camera       text NOT NULL,
    time         timestamptz NOT NULL,
    outbox_depth bigint,
    clock_synced boolean,
    disk_free_mb double precision,
    document     jsonb NOT NULL,
    received_at  timestamptz NOT NULL,
    UNIQUE (site, camera, time)
);
CREATE INDEX health_history_time ON health_history (time);

CREATE TABLE dead_letters (                 -- messages that could not be stored as what they claim to be
    id             bigserial PRIMARY KEY,
    received_at    timestamptz NOT NULL,
    topic          text NOT NULL,
    reason         text NOT NULL,
    payload        bytea NOT NULL,            -- the first 64 KiB as received
    payload_bytes  integer NOT NULL,
    payload_sha256 text NOT NULL
);
CREATE INDEX dead_letters_received_at ON dead_letters (received_at);
