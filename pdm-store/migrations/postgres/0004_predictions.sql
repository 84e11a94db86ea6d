-- Predictions of the live path (issue 9): what a machine's active model said about each row.

-- The primary key is the idempotency key of writes (a row scored again after a restart is
-- stored once) and the index of every range scan of one machine. Deleting a machine deletes its
-- predictions. `model_id` is not a foreign key: models are deleted only with their machine
-- (whose predictions go with it), the write checks the batch's few models once instead of
-- every row, and the index a foreign key's delete check needs would cost an index insert per
-- prediction on the live path (the write path of every scored row). `contributions` is a JSON array: [{"sensor":"temperature","share":0.8}, ...].
CREATE TABLE predictions (
    machine_id    BIGINT           NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    ts            TIMESTAMPTZ      NOT NULL,
    model_id      BIGINT           NOT NULL,
    score         DOUBLE PRECISION NOT NULL,
    threshold     DOUBLE PRECISION NOT NULL,
    anomalous     BOOLEAN          NOT NULL,
    health        DOUBLE PRECISION,
    rul_s         DOUBLE PRECISION,
    contributions TEXT             NOT NULL,
    PRIMARY KEY (machine_id, ts)
);

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
