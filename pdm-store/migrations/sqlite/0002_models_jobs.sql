-- The model registry and background jobs (issue 9).

-- Trained models of a machine. The file comes last: listing reads the columns before it and
-- its length (from the record header) without loading the file itself.
CREATE TABLE models (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    machine_id   INTEGER NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    version      INTEGER NOT NULL,
    kind         TEXT    NOT NULL,
    created_at   INTEGER NOT NULL
        DEFAULT (CAST(round((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)),
    trained_from INTEGER NOT NULL,
    trained_to   INTEGER NOT NULL,
    parameters   TEXT    NOT NULL,
    metrics      TEXT    NOT NULL,
    status       TEXT    NOT NULL DEFAULT 'candidate'
        CHECK (status IN ('candidate', 'active', 'retired')),
    activated_by TEXT,
    activated_at INTEGER,
    bytes        BLOB    NOT NULL,
    UNIQUE (machine_id, version)
) STRICT;

-- One active model per machine, whatever the code above does.
CREATE UNIQUE INDEX models_one_active ON models (machine_id) WHERE status = 'active';

-- Background jobs. `machine` is the key as given, deliberately not a foreign key: a job's
-- record outlives a deleted machine.
CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL,
    machine     TEXT,
    params      TEXT    NOT NULL,
    status      TEXT    NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    progress    REAL    NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 1),
    message     TEXT,
    result      TEXT,
    worker      TEXT,
    created_at  INTEGER NOT NULL
        DEFAULT (CAST(round((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)),
    started_at  INTEGER,
    finished_at INTEGER
) STRICT;

-- Claiming takes the oldest queued job; start-up recovery finds a worker's running jobs.
CREATE INDEX jobs_queued ON jobs (id) WHERE status = 'queued';
CREATE INDEX jobs_running ON jobs (worker) WHERE status = 'running';
-- Listing one machine's jobs, newest first.
CREATE INDEX jobs_machine ON jobs (machine, id);
