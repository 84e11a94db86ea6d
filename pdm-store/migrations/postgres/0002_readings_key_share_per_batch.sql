-- Readings lose their per-row foreign key to sensors. The key's trigger ran for every inserted
-- row, taking a KEY SHARE lock on the sensor row each time: half of the insert cost, and
-- concurrent writers locking the same sensor rows pile up multixacts. Writes now lock each
-- distinct sensor of a batch once (SELECT ... FOR KEY SHARE, in the write's transaction), which
-- gives the same guarantee: a sensor cannot be deleted while a write of its readings is in
-- flight, and a write that starts after the delete finds the sensor gone and fails.
ALTER TABLE readings DROP CONSTRAINT IF EXISTS readings_sensor_id_fkey;

-- What ON DELETE CASCADE did: a deleted sensor (directly, or with its machine) takes its
-- readings along.
CREATE OR REPLACE FUNCTION pdm_delete_sensor_readings() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM readings WHERE sensor_id = OLD.id;
    RETURN OLD;
END
$$;

CREATE TRIGGER sensors_delete_readings
    BEFORE DELETE ON sensors
    FOR EACH ROW EXECUTE FUNCTION pdm_delete_sensor_readings();
