-- Predictions of the live path (issue 9): what a machine's active model said about each row.

-- The primary key is the idempotency key of writes (a row scored again after a restart is
-- stored once) and the index of every range scan of one machine. Deleting a machine deletes its
-- predictions; deleting a model (which only happens with its machine today) deletes the
-- predictions it made, so that no prediction names a missing model. Unlike readings, the
-- foreign keys stay: there is one prediction per machine and sample period, not one per sensor
-- and reading. `contributions` is a JSON array: [{"sensor":"temperature","share":0.8}, ...].
CREATE TABLE predictions (
    machine_id    BIGINT           NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    ts            TIMESTAMPTZ      NOT NULL,
    model_id      BIGINT           NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    score         DOUBLE PRECISION NOT NULL,
    threshold     DOUBLE PRECISION NOT NULL,
    anomalous     BOOLEAN          NOT NULL,
    health        DOUBLE PRECISION,
    rul_s         DOUBLE PRECISION,
    contributions TEXT             NOT NULL,
    PRIMARY KEY (machine_id, ts)
);

-- The foreign key's delete check: deleting a model looks its predictions up by model.
CREATE INDEX predictions_model ON predictions (model_id);

-- Like readings (0001), a hypertable when TimescaleDB is installed; a plain table otherwise.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        BEGIN
            PERFORM create_hypertable('predictions', 'ts', if_not_exists => TRUE);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'timescaledb is installed but predictions could not become a hypertable (%); they stay a plain table', SQLERRM;
        END;
    END IF;
END
$$;
