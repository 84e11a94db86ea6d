-- Comments (issue 12) on a work order or an alarm (exactly one of the two), deleted with it;
-- each edit keeps the text it replaced in `comment_edits`.
CREATE TABLE comments (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    work_order_id  BIGINT REFERENCES work_orders (id) ON DELETE CASCADE,
    alarm_id       BIGINT REFERENCES alarms (id) ON DELETE CASCADE,
    author         TEXT    NOT NULL,
    author_user_id BIGINT REFERENCES users (id) ON DELETE SET NULL,
    body           TEXT    NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    edited_at      TIMESTAMPTZ,
    CHECK ((work_order_id IS NULL) <> (alarm_id IS NULL))
);

CREATE INDEX comments_work_order ON comments (work_order_id, id);
CREATE INDEX comments_alarm ON comments (alarm_id, id);

CREATE TABLE comment_edits (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    comment_id BIGINT  NOT NULL REFERENCES comments (id) ON DELETE CASCADE,
    at         TIMESTAMPTZ NOT NULL,
    previous   TEXT    NOT NULL
);

CREATE INDEX comment_edits_comment ON comment_edits (comment_id, id);
