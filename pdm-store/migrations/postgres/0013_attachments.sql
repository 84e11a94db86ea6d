-- Attachments (issue 12) on a work order or an alarm (exactly one of the two), optionally on one
-- of its comments; deleted with their owner. The bytes are in a file named `stored_as` under the
-- server's attachments directory, never by a name the client sent.
CREATE TABLE attachments (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    work_order_id    BIGINT REFERENCES work_orders (id) ON DELETE CASCADE,
    alarm_id         BIGINT REFERENCES alarms (id) ON DELETE CASCADE,
    comment_id       BIGINT REFERENCES comments (id) ON DELETE CASCADE,
    name             TEXT    NOT NULL,
    media_type       TEXT    NOT NULL,
    size             BIGINT  NOT NULL CHECK (size > 0),
    sha256           TEXT    NOT NULL,
    stored_as        TEXT    NOT NULL UNIQUE,
    uploader         TEXT    NOT NULL,
    uploader_user_id BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    CHECK ((work_order_id IS NULL) <> (alarm_id IS NULL))
);

CREATE INDEX attachments_work_order ON attachments (work_order_id, id);
CREATE INDEX attachments_alarm ON attachments (alarm_id, id);
CREATE INDEX attachments_comment ON attachments (comment_id);
