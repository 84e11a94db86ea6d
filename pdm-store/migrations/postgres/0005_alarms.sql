-- Alarms (issue 10): rules, alarms (one row per episode), their events and the notifier's
-- outbox. Definitions and states are JSON text owned by pdm-core; the store keeps the bytes.
-- Deleting a machine deletes its rules and alarms, and with them their events and outbox rows.

-- Rules of a machine, or fleet-wide defaults (`machine_id` NULL). A unique constraint over a
-- nullable column lets NULLs repeat, so the two cases have a partial unique index each.
CREATE TABLE alarm_rules (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    machine_id BIGINT REFERENCES machines (id) ON DELETE CASCADE,
    rule_id    TEXT    NOT NULL,
    definition TEXT    NOT NULL,
    enabled    BOOLEAN NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE UNIQUE INDEX alarm_rules_machine ON alarm_rules (machine_id, rule_id)
    WHERE machine_id IS NOT NULL;
CREATE UNIQUE INDEX alarm_rules_fleet ON alarm_rules (rule_id) WHERE machine_id IS NULL;

-- One row per episode (raised .. cleared). `version` grows by one per transition (optimistic
-- concurrency). At most one open alarm per machine and rule, whatever the code does.
CREATE TABLE alarms (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    machine_id BIGINT NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    rule_id       TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    severity      TEXT    NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    opened_at TIMESTAMPTZ NOT NULL,
    closed_at TIMESTAMPTZ,
    state_json    TEXT    NOT NULL,
    last_event_at TIMESTAMPTZ NOT NULL,
    version BIGINT NOT NULL
);

CREATE UNIQUE INDEX alarms_one_open ON alarms (machine_id, rule_id) WHERE closed_at IS NULL;
-- The foreign key's delete check and the listing of one machine's alarms.
CREATE INDEX alarms_machine ON alarms (machine_id, id);

CREATE TABLE alarm_events (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alarm_id BIGINT NOT NULL REFERENCES alarms (id) ON DELETE CASCADE,
    kind     TEXT    NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    actor    TEXT    NOT NULL,
    reason   TEXT    NOT NULL,
    severity TEXT    NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical'))
);

CREATE INDEX alarm_events_alarm ON alarm_events (alarm_id, id);

-- Events awaiting the notifier, written in the transaction of their event.
CREATE TABLE outbox (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id BIGINT NOT NULL REFERENCES alarm_events (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    delivered_at TIMESTAMPTZ
);

CREATE INDEX outbox_event ON outbox (event_id);
CREATE INDEX outbox_pending ON outbox (id) WHERE delivered_at IS NULL;
