-- Comments (issue 12) on a work order or an alarm (exactly one of the two), deleted with it;
-- each edit keeps the text it replaced in `comment_edits`.
CREATE TABLE comments (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    work_order_id  INTEGER REFERENCES work_orders (id) ON DELETE CASCADE,
    alarm_id       INTEGER REFERENCES alarms (id) ON DELETE CASCADE,
    author         TEXT    NOT NULL,
    author_user_id INTEGER REFERENCES users (id) ON DELETE SET NULL,
    body           TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    edited_at      INTEGER,
    CHECK ((work_order_id IS NULL) <> (alarm_id IS NULL))
) STRICT;

CREATE INDEX comments_work_order ON comments (work_order_id, id);
CREATE INDEX comments_alarm ON comments (alarm_id, id);

CREATE TABLE comment_edits (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    comment_id INTEGER NOT NULL REFERENCES comments (id) ON DELETE CASCADE,
    at         INTEGER NOT NULL,
    previous   TEXT    NOT NULL
) STRICT;

CREATE INDEX comment_edits_comment ON comment_edits (comment_id, id);
