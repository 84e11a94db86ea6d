//! [`SensorStore`] on both backends, and the sensor ids the write path caches.

use std::collections::HashMap;

use async_trait::async_trait;
use pdm_core::{
    MachineKey, NewSensor, Sensor, SensorKey, SensorStore, SensorUpdate, StoreError, StoreResult,
    Timestamp,
};

use super::ENSURE_ATTEMPTS;
use crate::common::{self, LoadSensorIds};
use crate::error::{db, is_foreign_key_violation, is_unique_violation};
use crate::sql::{Arg, Backend, Cols, On, SqlStore};

/// The columns [`sensor`] decodes, from `first` on: `key, unit, min_value, max_value,
/// created_at`.
fn columns<B: Backend>() -> String {
    format!(
        "key, unit, min_value, max_value, {}",
        B::millis("created_at")
    )
}

/// A sensor of `machine` with its id from `id` and [`columns`].
fn sensor_with_id(row: &impl Cols, machine: &MachineKey) -> StoreResult<(i64, Sensor)> {
    Ok((row.int(0)?, sensor(row, machine.clone(), 1)?))
}

/// A sensor of `machine` from [`columns`] starting at column `first`.
fn sensor(row: &impl Cols, machine: MachineKey, first: usize) -> StoreResult<Sensor> {
    Ok(Sensor {
        machine,
        key: common::key(row.text(first)?)?,
        unit: row.opt_text(first + 1)?,
        min: row.opt_real(first + 2)?,
        max: row.opt_real(first + 3)?,
        created_at: Timestamp::from_millis(row.int(first + 4)?),
    })
}

impl<B: Backend> SqlStore<B> {
    /// Remembers the id of a sensor this store registered, for the write path.
    fn cache_sensor(&self, (id, sensor): (i64, Sensor)) -> Sensor {
        self.ids.put(&sensor.machine, &sensor.key, id);
        sensor
    }

    /// [`StoreError::NotFound`] unless the sensor is registered.
    pub(crate) async fn check_sensor(
        &self,
        machine: &MachineKey,
        sensor: &SensorKey,
    ) -> StoreResult<()> {
        self.reader()
            .fetch_optional(
                "SELECT 1 FROM sensors s JOIN machines m ON m.id = s.machine_id \
                 WHERE m.key = $1 AND s.key = $2",
                &[Arg::Text(machine.as_str()), Arg::Text(sensor.as_str())],
            )
            .await
            .map_err(db)?
            .map(|_| ())
            .ok_or_else(|| common::sensor_not_found(machine, sensor))
    }
}

impl<B: Backend> LoadSensorIds for SqlStore<B> {
    async fn load_sensor_ids(&self, machine: &MachineKey) -> StoreResult<HashMap<SensorKey, i64>> {
        let rows = self
            .reader()
            .fetch_all(
                "SELECT s.key, s.id FROM sensors s JOIN machines m ON m.id = s.machine_id \
                 WHERE m.key = $1",
                &[Arg::Text(machine.as_str())],
            )
            .await
            .map_err(db)?;
        let mut out = HashMap::with_capacity(rows.len());
        for row in rows {
            out.insert(common::key(row.text(0)?)?, row.int(1)?);
        }
        Ok(out)
    }
}

#[async_trait]
impl<B: Backend> SensorStore for SqlStore<B> {
    async fn create_sensor(&self, machine: &MachineKey, s: &NewSensor) -> StoreResult<Sensor> {
        common::check_sensor_range(s.min, s.max)?;
        let sql = format!(
            "INSERT INTO sensors (machine_id, key, unit, min_value, max_value) \
             SELECT id, $2, $3, $4, $5 FROM machines WHERE key = $1 \
             RETURNING id, {}",
            columns::<B>()
        );
        let args = [
            Arg::Text(machine.as_str()),
            Arg::Text(s.key.as_str()),
            Arg::OptText(s.unit.as_deref()),
            Arg::OptReal(s.min),
            Arg::OptReal(s.max),
        ];
        let row = self
            .writer()
            .fetch_optional(&sql, &args)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!(
                        "sensor '{}' of machine '{machine}' already exists",
                        s.key
                    ))
                } else {
                    db(e)
                }
            })?
            .ok_or_else(|| common::machine_not_found(machine))?;
        Ok(self.cache_sensor(sensor_with_id(&row, machine)?))
    }

    async fn ensure_sensor(&self, machine: &MachineKey, key: &SensorKey) -> StoreResult<Sensor> {
        let insert_machine =
            "INSERT INTO machines (key, name) VALUES ($1, $1) ON CONFLICT (key) DO NOTHING";
        let insert = format!(
            "INSERT INTO sensors (machine_id, key) VALUES ($1, $2) \
             ON CONFLICT (machine_id, key) DO NOTHING RETURNING id, {}",
            columns::<B>()
        );
        let select = format!(
            "SELECT id, {} FROM sensors WHERE machine_id = $1 AND key = $2",
            columns::<B>()
        );
        // Which row vanished on the last attempt, to name it when every attempt fails.
        let mut machine_vanished = false;
        for _ in 0..ENSURE_ATTEMPTS {
            // One write transaction per attempt: the machine and the sensor are registered
            // together or not at all. A transaction dropped without commit rolls back.
            let mut tx = self.db.begin_write().await.map_err(db)?;
            let registered = {
                let mut on: On<'_, B::Db> = On::Conn(&mut *tx);
                on.execute(insert_machine, &[Arg::Text(machine.as_str())])
                    .await
                    .map_err(db)?;
                // A separate statement: under READ COMMITTED (PostgreSQL) it sees a row committed
                // by a concurrent insert that made ours do nothing.
                let machine_row = on
                    .fetch_optional(
                        "SELECT id FROM machines WHERE key = $1",
                        &[Arg::Text(machine.as_str())],
                    )
                    .await
                    .map_err(db)?;
                let Some(machine_row) = machine_row else {
                    machine_vanished = true;
                    continue;
                };
                machine_vanished = false;
                let args = [Arg::Int(machine_row.int(0)?), Arg::Text(key.as_str())];
                let row = match on.fetch_optional(&insert, &args).await {
                    Ok(Some(row)) => row,
                    Ok(None) => match on.fetch_optional(&select, &args).await.map_err(db)? {
                        Some(row) => row,
                        None => continue,
                    },
                    // The machine was deleted between the two statements: start over.
                    Err(e) if is_foreign_key_violation(&e) => continue,
                    Err(e) => return Err(db(e)),
                };
                sensor_with_id(&row, machine)?
            };
            tx.commit().await.map_err(db)?;
            return Ok(self.cache_sensor(registered));
        }
        Err(if machine_vanished {
            common::machine_not_found(machine)
        } else {
            common::sensor_not_found(machine, key)
        })
    }

    async fn get_sensor(&self, machine: &MachineKey, key: &SensorKey) -> StoreResult<Sensor> {
        let sql = format!(
            "SELECT {} FROM sensors \
             WHERE machine_id = (SELECT id FROM machines WHERE key = $1) AND key = $2",
            columns::<B>()
        );
        let row = self
            .reader()
            .fetch_optional(
                &sql,
                &[Arg::Text(machine.as_str()), Arg::Text(key.as_str())],
            )
            .await
            .map_err(db)?
            .ok_or_else(|| common::sensor_not_found(machine, key))?;
        sensor(&row, machine.clone(), 0)
    }

    async fn list_sensors(&self, machine: &MachineKey) -> StoreResult<Vec<Sensor>> {
        let sql = format!(
            "SELECT {} FROM sensors \
             WHERE machine_id = (SELECT id FROM machines WHERE key = $1) ORDER BY key",
            columns::<B>()
        );
        let rows = self
            .reader()
            .fetch_all(&sql, &[Arg::Text(machine.as_str())])
            .await
            .map_err(db)?;
        if rows.is_empty() && !self.machine_exists(machine).await? {
            return Err(common::machine_not_found(machine));
        }
        rows.iter().map(|r| sensor(r, machine.clone(), 0)).collect()
    }

    async fn list_all_sensors(&self) -> StoreResult<Vec<Sensor>> {
        let sql = format!(
            "SELECT m.key, s.key, s.unit, s.min_value, s.max_value, {} \
             FROM sensors s JOIN machines m ON m.id = s.machine_id ORDER BY m.key, s.key",
            B::millis("s.created_at")
        );
        let rows = self.reader().fetch_all(&sql, &[]).await.map_err(db)?;
        rows.iter()
            .map(|r| sensor(r, common::key(r.text(0)?)?, 1))
            .collect()
    }

    async fn update_sensor(
        &self,
        machine: &MachineKey,
        key: &SensorKey,
        u: &SensorUpdate,
    ) -> StoreResult<Sensor> {
        common::check_sensor_range(u.min.flatten(), None)?;
        common::check_sensor_range(None, u.max.flatten())?;
        // A flag per optional field tells "leave as is" from "set to NULL".
        let sql = format!(
            "UPDATE sensors SET \
                 unit = CASE WHEN $3 THEN CAST($4 AS TEXT) ELSE unit END, \
                 min_value = CASE WHEN $5 THEN CAST($6 AS DOUBLE PRECISION) ELSE min_value END, \
                 max_value = CASE WHEN $7 THEN CAST($8 AS DOUBLE PRECISION) ELSE max_value END \
             WHERE machine_id = (SELECT id FROM machines WHERE key = $1) AND key = $2 \
             RETURNING {}",
            columns::<B>()
        );
        let args = [
            Arg::Text(machine.as_str()),
            Arg::Text(key.as_str()),
            Arg::Flag(u.unit.is_some()),
            Arg::OptText(u.unit.as_ref().and_then(|x| x.as_deref())),
            Arg::Flag(u.min.is_some()),
            Arg::OptReal(u.min.flatten()),
            Arg::Flag(u.max.is_some()),
            Arg::OptReal(u.max.flatten()),
        ];
        let row = self
            .writer()
            .fetch_optional(&sql, &args)
            .await
            .map_err(db)?
            .ok_or_else(|| common::sensor_not_found(machine, key))?;
        sensor(&row, machine.clone(), 0)
    }

    async fn delete_sensor(&self, machine: &MachineKey, key: &SensorKey) -> StoreResult<()> {
        let deleted = self
            .writer()
            .execute(
                "DELETE FROM sensors \
                 WHERE machine_id = (SELECT id FROM machines WHERE key = $1) AND key = $2",
                &[Arg::Text(machine.as_str()), Arg::Text(key.as_str())],
            )
            .await
            .map_err(db)?;
        self.ids.forget_sensor(machine, key);
        if deleted == 0 {
            return Err(common::sensor_not_found(machine, key));
        }
        Ok(())
    }
}
