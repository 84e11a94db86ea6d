-- Webhooks (issue 10): endpoints, one delivery per outbox row and matching endpoint, and the
-- log of every attempt. `outbox.delivered_at` marks a row fanned out into its deliveries.
-- Deleting an endpoint deletes its deliveries; deleting a machine deletes its alarms' outbox
-- rows and with them their deliveries.

CREATE TABLE webhooks (
    id                         INTEGER PRIMARY KEY AUTOINCREMENT,
    url                        TEXT    NOT NULL,
    description                TEXT,
    secret                     TEXT    NOT NULL,
    previous_secret            TEXT,
    previous_secret_expires_at INTEGER,
    filter                     TEXT    NOT NULL,
    enabled                    INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    disabled_reason            TEXT,
    failing_since              INTEGER,
    created_at                 INTEGER NOT NULL,
    updated_at                 INTEGER NOT NULL
) STRICT;

-- `message_id` is the `webhook-id` header of every attempt. One delivery per endpoint and
-- outbox row, whatever the dispatcher does (fan-out is idempotent).
CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id      INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    outbox_id       INTEGER REFERENCES outbox (id) ON DELETE CASCADE,
    message_id      TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    alarm_id        INTEGER,
    payload         TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER,
    claimed_until   INTEGER,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL
) STRICT;

CREATE UNIQUE INDEX webhook_deliveries_once ON webhook_deliveries (webhook_id, outbox_id);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
-- The order of one alarm's events to one endpoint.
CREATE INDEX webhook_deliveries_alarm ON webhook_deliveries (webhook_id, alarm_id, id)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_outbox ON webhook_deliveries (outbox_id);

CREATE TABLE webhook_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id INTEGER NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    status_code INTEGER,
    duration_ms INTEGER NOT NULL,
    error       TEXT
) STRICT;

CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);
