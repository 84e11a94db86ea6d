-- Work orders (issue 12): the maintenance work that follows alarms. A work order belongs to
-- one machine (deleted with it), links alarms of that machine, and keeps every change as an
-- event. `version` increases with every change: a write names the version it read and is
-- refused when another write came first. Codes of findings come from `work_order_codes`
-- (kind `failure_mode`, `cause` or `remedy`); a retired code stays on old work orders.
CREATE TABLE work_orders (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    machine_id     BIGINT  NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    title          TEXT    NOT NULL,
    description    TEXT    NOT NULL,
    priority       TEXT    NOT NULL,
    -- 0 low .. 3 urgent, for sorting by priority.
    priority_rank  SMALLINT NOT NULL,
    status         TEXT    NOT NULL,
    assignee_id    BIGINT REFERENCES users (id) ON DELETE SET NULL,
    due_at         TIMESTAMPTZ,
    created_by     TEXT    NOT NULL,
    failure_mode   TEXT,
    cause          TEXT,
    remedy         TEXT,
    label          TEXT,
    time_spent_min BIGINT  NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    resolved_at    TIMESTAMPTZ,
    closed_at      TIMESTAMPTZ,
    version        BIGINT  NOT NULL
);

CREATE INDEX work_orders_machine ON work_orders (machine_id, id);
CREATE INDEX work_orders_status ON work_orders (status, id);
CREATE INDEX work_orders_assignee ON work_orders (assignee_id, id);

CREATE TABLE work_order_alarms (
    work_order_id BIGINT  NOT NULL REFERENCES work_orders (id) ON DELETE CASCADE,
    alarm_id      BIGINT  NOT NULL REFERENCES alarms (id) ON DELETE CASCADE,
    PRIMARY KEY (work_order_id, alarm_id)
);

CREATE INDEX work_order_alarms_alarm ON work_order_alarms (alarm_id);

-- `changes` is JSON: `{"field": {"from": ..., "to": ...}}`, or the fields of a new one.
CREATE TABLE work_order_events (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    work_order_id BIGINT  NOT NULL REFERENCES work_orders (id) ON DELETE CASCADE,
    at            TIMESTAMPTZ NOT NULL,
    actor         TEXT    NOT NULL,
    action        TEXT    NOT NULL,
    changes       TEXT    NOT NULL,
    version       BIGINT  NOT NULL
);

CREATE INDEX work_order_events_order ON work_order_events (work_order_id, id);

CREATE TABLE work_order_codes (
    kind        TEXT COLLATE "C" NOT NULL,
    code        TEXT COLLATE "C" NOT NULL,
    description TEXT    NOT NULL,
    active      BOOLEAN NOT NULL,
    PRIMARY KEY (kind, code)
);
