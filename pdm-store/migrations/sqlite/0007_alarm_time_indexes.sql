-- Indexes for reads by time (issue 10): the EEMUA 191 performance figures
-- (`alarm_events_between`, `alarms_open_at`) read the alarm events of a time range and the
-- alarms opened before an instant, which would otherwise scan every event and every alarm.

CREATE INDEX alarm_events_at ON alarm_events (at, id);
CREATE INDEX alarms_opened ON alarms (opened_at);
