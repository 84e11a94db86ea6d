-- The model registry and background jobs (issue 9).

-- Trained models of a machine. The file is TOASTed out of line when large, so listing (which
-- reads its length, not the file) does not load it.
CREATE TABLE models (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    machine_id   BIGINT      NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    version      BIGINT      NOT NULL,
    kind         TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    trained_from TIMESTAMPTZ NOT NULL,
    trained_to   TIMESTAMPTZ NOT NULL,
    parameters   TEXT        NOT NULL,
    metrics      TEXT        NOT NULL,
    status       TEXT        NOT NULL DEFAULT 'candidate'
        CHECK (status IN ('candidate', 'active', 'retired')),
    activated_by TEXT,
    activated_at TIMESTAMPTZ,
    bytes        BYTEA       NOT NULL,
    UNIQUE (machine_id, version)
);

-- One active model per machine, whatever the code above does.
CREATE UNIQUE INDEX models_one_active ON models (machine_id) WHERE status = 'active';

-- Background jobs. `machine` is the key as given, deliberately not a foreign key: a job's
-- record outlives a deleted machine.
CREATE TABLE jobs (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        TEXT             NOT NULL,
    machine     TEXT COLLATE "C",
    params      TEXT             NOT NULL,
    status      TEXT             NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    progress    DOUBLE PRECISION NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 1),
    message     TEXT,
    result      TEXT,
    worker      TEXT,
    created_at  TIMESTAMPTZ      NOT NULL DEFAULT now(),
    started_at  TIMESTAMPTZ,
    finished_at TIMESTAMPTZ
);

-- Claiming takes the oldest queued job; start-up recovery finds a worker's running jobs.
CREATE INDEX jobs_queued ON jobs (id) WHERE status = 'queued';
CREATE INDEX jobs_running ON jobs (worker) WHERE status = 'running';
-- Listing one machine's jobs, newest first.
CREATE INDEX jobs_machine ON jobs (machine, id);
