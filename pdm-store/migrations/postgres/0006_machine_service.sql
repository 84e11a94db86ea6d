-- Machines out of service (issue 10): in maintenance, their alarms are suppressed until they
-- are put back in service. A row while out of service; deleted when back in service.
CREATE TABLE machine_service (
    machine_id BIGINT PRIMARY KEY REFERENCES machines (id) ON DELETE CASCADE,
    since      TIMESTAMPTZ NOT NULL,
    by_actor   TEXT NOT NULL,
    reason     TEXT NOT NULL
);
