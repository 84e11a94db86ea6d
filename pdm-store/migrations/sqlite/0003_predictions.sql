-- Predictions of the live path (issue 9): what a machine's active model said about each row.

-- The primary key is the idempotency key of writes (a row scored again after a restart is
-- stored once) and, clustered (WITHOUT ROWID), the index of every range scan of one machine.
-- Deleting a machine deletes its predictions; deleting a model (which only happens with its
-- machine today) deletes the predictions it made, so that no prediction names a missing model.
-- `contributions` is a JSON array: [{"sensor":"temperature","share":0.8}, ...].
CREATE TABLE predictions (
    machine_id    INTEGER NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    ts            INTEGER NOT NULL,
    model_id      INTEGER NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    score         REAL    NOT NULL,
    threshold     REAL    NOT NULL,
    anomalous     INTEGER NOT NULL CHECK (anomalous IN (0, 1)),
    health        REAL,
    rul_s         REAL,
    contributions TEXT    NOT NULL,
    PRIMARY KEY (machine_id, ts)
) STRICT, WITHOUT ROWID;

-- The foreign key's delete check: deleting a model looks its predictions up by model.
CREATE INDEX predictions_model ON predictions (model_id);
