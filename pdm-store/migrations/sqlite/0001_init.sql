-- pdm schema v1 for SQLite. Keys are the public identifiers; integer ids stay internal so that
-- readings, the largest table by far, carry 8 bytes per row instead of two strings.
-- AUTOINCREMENT keeps ids from being reused after a delete: a stale cached id can then only
-- fail a write (foreign key), never attach readings to a different sensor.
-- Timestamps are INTEGER milliseconds since the Unix epoch (UTC), the resolution of pdm.

CREATE TABLE machines (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    key         TEXT    NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    kind        TEXT,
    description TEXT,
    created_at  INTEGER NOT NULL
        DEFAULT (CAST(round((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER))
) STRICT;

CREATE TABLE sensors (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    machine_id INTEGER NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    key        TEXT    NOT NULL,
    unit       TEXT,
    min_value  REAL,
    max_value  REAL,
    created_at INTEGER NOT NULL
        DEFAULT (CAST(round((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)),
    UNIQUE (machine_id, key)
) STRICT;

-- The primary key is the idempotency key of writes and, being clustered (WITHOUT ROWID), the
-- index of every range scan: one B-tree, no separate rowid table.
CREATE TABLE readings (
    sensor_id INTEGER NOT NULL REFERENCES sensors (id) ON DELETE CASCADE,
    ts        INTEGER NOT NULL,
    value     REAL    NOT NULL,
    PRIMARY KEY (sensor_id, ts)
) STRICT, WITHOUT ROWID;

CREATE TABLE dead_letters (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at  INTEGER NOT NULL,
    origin       TEXT    NOT NULL,
    channel      TEXT    NOT NULL,
    machine      TEXT,
    kind         TEXT    NOT NULL,
    reason       TEXT    NOT NULL,
    payload_head BLOB    NOT NULL
) STRICT;

-- Operators list dead letters of one machine, newest first.
CREATE INDEX dead_letters_machine ON dead_letters (machine, id);
