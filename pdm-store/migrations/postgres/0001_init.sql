-- pdm schema v1 for PostgreSQL (TimescaleDB when available). Keys are the public identifiers;
-- bigint ids stay internal so that readings, the largest table by far, carry 8 bytes per row
-- instead of two strings. Keys use the "C" collation so that ordering and uniqueness are
-- bytewise, exactly as on SQLite and in Rust, whatever the database's locale.

CREATE TABLE machines (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key         TEXT COLLATE "C" NOT NULL UNIQUE,
    name        TEXT        NOT NULL,
    kind        TEXT,
    description TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE sensors (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    machine_id BIGINT      NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    key        TEXT COLLATE "C" NOT NULL,
    unit       TEXT,
    min_value  DOUBLE PRECISION,
    max_value  DOUBLE PRECISION,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (machine_id, key)
);

-- The primary key is the idempotency key of writes and the index of every range scan.
CREATE TABLE readings (
    sensor_id BIGINT           NOT NULL REFERENCES sensors (id) ON DELETE CASCADE,
    ts        TIMESTAMPTZ      NOT NULL,
    value     DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (sensor_id, ts)
);

CREATE TABLE dead_letters (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at  TIMESTAMPTZ NOT NULL,
    origin       TEXT        NOT NULL,
    channel      TEXT        NOT NULL,
    machine      TEXT COLLATE "C",
    kind         TEXT        NOT NULL,
    reason       TEXT        NOT NULL,
    payload_head BYTEA       NOT NULL
);

-- Operators list dead letters of one machine, newest first.
CREATE INDEX dead_letters_machine ON dead_letters (machine, id);

-- Readings become a hypertable (chunked by time) when TimescaleDB can be installed. The
-- extension may be listed as available yet fail to load (it must be in
-- shared_preload_libraries), so failure falls back to the plain table instead of failing the
-- migration.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS timescaledb;
            PERFORM create_hypertable('readings', 'ts', if_not_exists => TRUE);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'timescaledb is available but could not be enabled (%); readings stay a plain table', SQLERRM;
        END;
    END IF;
END
$$;
