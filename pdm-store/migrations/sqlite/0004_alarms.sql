-- Alarms (issue 10): rules, alarms (one row per episode), their events and the notifier's
-- outbox. Definitions and states are JSON text owned by pdm-core; the store keeps the bytes.
-- Deleting a machine deletes its rules and alarms, and with them their events and outbox rows.

-- Rules of a machine, or fleet-wide defaults (`machine_id` NULL). A unique constraint over a
-- nullable column lets NULLs repeat, so the two cases have a partial unique index each.
CREATE TABLE alarm_rules (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    machine_id INTEGER REFERENCES machines (id) ON DELETE CASCADE,
    rule_id    TEXT    NOT NULL,
    definition TEXT    NOT NULL,
    enabled    INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE UNIQUE INDEX alarm_rules_machine ON alarm_rules (machine_id, rule_id)
    WHERE machine_id IS NOT NULL;
CREATE UNIQUE INDEX alarm_rules_fleet ON alarm_rules (rule_id) WHERE machine_id IS NULL;

-- One row per episode (raised .. cleared). `version` grows by one per transition (optimistic
-- concurrency). At most one open alarm per machine and rule, whatever the code does.
CREATE TABLE alarms (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    machine_id    INTEGER NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    rule_id       TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    severity      TEXT    NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    opened_at     INTEGER NOT NULL,
    closed_at     INTEGER,
    state_json    TEXT    NOT NULL,
    last_event_at INTEGER NOT NULL,
    version       INTEGER NOT NULL
) STRICT;

CREATE UNIQUE INDEX alarms_one_open ON alarms (machine_id, rule_id) WHERE closed_at IS NULL;
-- The foreign key's delete check and the listing of one machine's alarms.
CREATE INDEX alarms_machine ON alarms (machine_id, id);

CREATE TABLE alarm_events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    alarm_id INTEGER NOT NULL REFERENCES alarms (id) ON DELETE CASCADE,
    kind     TEXT    NOT NULL,
    at       INTEGER NOT NULL,
    actor    TEXT    NOT NULL,
    reason   TEXT    NOT NULL,
    severity TEXT    NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical'))
) STRICT;

CREATE INDEX alarm_events_alarm ON alarm_events (alarm_id, id);

-- Events awaiting the notifier, written in the transaction of their event.
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     INTEGER NOT NULL REFERENCES alarm_events (id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    delivered_at INTEGER
) STRICT;

CREATE INDEX outbox_event ON outbox (event_id);
CREATE INDEX outbox_pending ON outbox (id) WHERE delivered_at IS NULL;
