-- System settings (issue 12): one document of what an admin overrode of the server's settings,
-- versioned for compare-and-set.
CREATE TABLE settings (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    doc        TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    updated_by TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
