//! In-memory map from `(machine, sensor)` keys to the internal sensor ids that readings are
//! stored under, so that a write does not look sensors up in the database. Only writes use it:
//! queries resolve keys in SQL, so they always see the current registration.
//!
//! Filled lazily: on a miss the backend loads every sensor of the machine at once (a machine's
//! sensors usually arrive together). Entries are dropped when this process deletes a sensor or
//! machine; a sensor deleted by another process leaves a stale id behind, which can only make a
//! write fail its foreign key (ids are never reused), and the backend then clears the cache and
//! retries.

use std::collections::HashMap;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use pdm_core::{MachineKey, Reading, SensorKey};

type Map = HashMap<MachineKey, HashMap<SensorKey, i64>>;

#[derive(Debug, Default)]
pub(crate) struct SensorIds {
    map: RwLock<Map>,
}

/// The first reading whose sensor is not cached, and the machines to load.
#[derive(Debug)]
pub(crate) struct Missing {
    pub(crate) machines: Vec<MachineKey>,
    pub(crate) first: (MachineKey, SensorKey),
}

impl Missing {
    /// The error a write fails with when the sensor is not registered at all.
    pub(crate) fn not_registered(&self) -> pdm_core::StoreError {
        let (machine, sensor) = &self.first;
        pdm_core::StoreError::Invalid(format!(
            "sensor '{sensor}' of machine '{machine}' is not registered; register it before \
             writing its readings"
        ))
    }
}

impl SensorIds {
    fn read(&self) -> RwLockReadGuard<'_, Map> {
        // Every update is a single insert or remove, so a panic elsewhere while holding the
        // lock cannot leave the map inconsistent.
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Map> {
        self.map.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The sensor id of every reading, in order, or what is missing.
    pub(crate) fn resolve(&self, readings: &[Reading]) -> Result<Vec<i64>, Missing> {
        let map = self.read();
        let mut ids = Vec::with_capacity(readings.len());
        let mut missing: Option<Missing> = None;
        // Readings come grouped by machine, so remembering the last machine's sensors saves
        // most of the outer lookups.
        let mut last: Option<(&MachineKey, Option<&HashMap<SensorKey, i64>>)> = None;
        for r in readings {
            let sensors = match last {
                Some((m, s)) if m == &r.machine => s,
                _ => {
                    let s = map.get(r.machine.as_str());
                    last = Some((&r.machine, s));
                    s
                }
            };
            match sensors.and_then(|s| s.get(r.sensor.as_str())) {
                Some(&id) => {
                    if missing.is_none() {
                        ids.push(id);
                    }
                }
                None => match &mut missing {
                    None => {
                        missing = Some(Missing {
                            machines: vec![r.machine.clone()],
                            first: (r.machine.clone(), r.sensor.clone()),
                        })
                    }
                    Some(m) => {
                        if !m.machines.contains(&r.machine) {
                            m.machines.push(r.machine.clone());
                        }
                    }
                },
            }
        }
        match missing {
            None => Ok(ids),
            Some(m) => Err(m),
        }
    }

    /// Replaces what is cached for `machine` with its sensors as loaded from the database.
    pub(crate) fn put_machine(&self, machine: MachineKey, sensors: HashMap<SensorKey, i64>) {
        self.write().insert(machine, sensors);
    }

    /// Caches one sensor.
    pub(crate) fn put(&self, machine: &MachineKey, sensor: &SensorKey, id: i64) {
        self.write()
            .entry(machine.clone())
            .or_default()
            .insert(sensor.clone(), id);
    }

    /// Forgets one sensor.
    pub(crate) fn forget_sensor(&self, machine: &MachineKey, sensor: &SensorKey) {
        if let Some(sensors) = self.write().get_mut(machine.as_str()) {
            sensors.remove(sensor.as_str());
        }
    }

    /// Forgets a machine and its sensors.
    pub(crate) fn forget_machine(&self, machine: &MachineKey) {
        self.write().remove(machine.as_str());
    }

    /// Forgets everything.
    pub(crate) fn clear(&self) {
        self.write().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pdm_core::Timestamp;

    fn reading(m: &str, s: &str) -> Reading {
        Reading {
            machine: MachineKey::new(m).expect("key"),
            sensor: SensorKey::new(s).expect("key"),
            ts: Timestamp::from_millis(0),
            value: 0.0,
        }
    }

    #[test]
    fn resolves_and_reports_missing_machines_once() {
        let ids = SensorIds::default();
        let m1 = MachineKey::new("m1").expect("key");
        let t = SensorKey::new("t").expect("key");
        ids.put(&m1, &t, 7);
        assert_eq!(
            ids.resolve(&[reading("m1", "t"), reading("m1", "t")]).ok(),
            Some(vec![7, 7])
        );
        let missing = ids
            .resolve(&[
                reading("m1", "t"),
                reading("m1", "u"),
                reading("m2", "t"),
                reading("m2", "v"),
                reading("m1", "w"),
            ])
            .expect_err("missing");
        assert_eq!(missing.first.1.as_str(), "u");
        let names: Vec<&str> = missing.machines.iter().map(|m| m.as_str()).collect();
        assert_eq!(names, ["m1", "m2"]);
        assert!(missing
            .not_registered()
            .to_string()
            .contains("sensor 'u' of machine 'm1'"));

        ids.forget_sensor(&m1, &t);
        assert!(ids.resolve(&[reading("m1", "t")]).is_err());
        ids.put(&m1, &t, 8);
        ids.forget_machine(&m1);
        assert!(ids.resolve(&[reading("m1", "t")]).is_err());
    }
}
