-- edge-anpr central store, SQLite, migration 2: the fleet control channel (pushes, what nodes applied and refused).
CREATE TABLE fleet_pushes (                 -- one row per signed update the centre published
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        text    NOT NULL,           -- hotlist | config
    target      text    NOT NULL,           -- <site>/<camera> or group/<name>
    version     bigint  NOT NULL,
    sha256      text    NOT NULL,
    size        bigint  NOT NULL,           -- payload bytes as sent
    chunks      integer NOT NULL,
    entries     bigint,                     -- hotlist: plates on it
    bytes_sent  bigint  NOT NULL,
    pushed_at   text    NOT NULL,
    expires     text    NOT NULL,
    UNIQUE (kind, target, version)
);
CREATE TABLE fleet_nodes (                  -- each node's groups and refusal count, from its latest health
    site        text   NOT NULL,
    camera      text   NOT NULL,
    groups      text   NOT NULL,            -- JSON array
    refusals    bigint NOT NULL,
    reported_at text   NOT NULL,            -- the health message's time
    PRIMARY KEY (site, camera)
);
CREATE TABLE fleet_applied (                -- the version each node applied, per kind and target
    site        text   NOT NULL,
    camera      text   NOT NULL,
    kind        text   NOT NULL,
    target      text   NOT NULL,
    version     bigint NOT NULL,
    entries     bigint,
    reported_at text   NOT NULL,
    PRIMARY KEY (site, camera, kind, target)
);
CREATE TABLE fleet_refusals (               -- every refusal a node reported, once
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    site        text NOT NULL,
    camera      text NOT NULL,
    kind        text NOT NULL,
    target      text NOT NULL,
    version     bigint,
    reason      text NOT NULL,
    detail      text NOT NULL,
    time        text NOT NULL,              -- when the node refused it
    received_at text NOT NULL,
    UNIQUE (site, camera, time, reason, target)
);
CREATE INDEX fleet_refusals_time ON fleet_refusals (time);
