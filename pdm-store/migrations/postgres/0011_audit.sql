-- The audit log (issue 12): who changed what, from where, when, with what outcome; sign-ins and
-- failed sign-ins. Append-only: only retention deletes. `fields` is a JSON array of the names of
-- the fields sent (never their values).
CREATE TABLE audit_log (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL,
    actor       TEXT COLLATE "C" NOT NULL,
    role        TEXT,
    action      TEXT    NOT NULL,
    target      TEXT COLLATE "C",
    fields      TEXT    NOT NULL,
    client_addr TEXT,
    status      INTEGER NOT NULL
);

CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_target ON audit_log (target, id);
