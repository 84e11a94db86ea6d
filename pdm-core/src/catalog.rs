//! The catalog: which machines and sensors exist, cached in memory for validation.
//!
//! Every reading is checked against the catalog before it is stored: its machine and sensor must
//! be registered (or are registered on first sight when auto-registration is on), and its value
//! must lie within the sensor's plausible range. Registration goes through the catalog so the
//! cache stays true to the database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use crate::ids::{MachineKey, SensorKey};
use crate::model::{
    check_range, DeadLetter, Machine, MachineUpdate, NewMachine, NewSensor, Origin, Reading,
    RejectKind, Sensor, SensorUpdate,
};
use crate::store::{CatalogStore, StoreError, StoreResult};

#[derive(Debug, Clone, Copy, Default)]
struct Limits {
    min: Option<f64>,
    max: Option<f64>,
}

type Index = HashMap<MachineKey, HashMap<SensorKey, Limits>>;

/// Where a group of readings came from, for the dead letters of the ones rejected.
#[derive(Debug, Clone, Copy)]
pub struct InputContext<'a> {
    /// Source kind.
    pub origin: Origin,
    /// MQTT topic or HTTP path.
    pub channel: &'a str,
    /// The raw payload (only its head is kept).
    pub payload: &'a [u8],
}

impl InputContext<'_> {
    /// A dead letter for this input.
    pub fn dead_letter(
        &self,
        machine: Option<&str>,
        kind: RejectKind,
        reason: impl Into<String>,
    ) -> DeadLetter {
        DeadLetter::new(
            self.origin,
            self.channel,
            machine.map(str::to_owned),
            kind,
            reason,
            self.payload,
        )
    }
}

/// Least time between two reloads caused by readings of unknown machines or sensors.
///
/// Another worker may have registered them (scale-out): a miss reloads the catalog, but a
/// stream of readings for machines that really do not exist must not reload it per message.
pub const REFRESH_ON_MISS_INTERVAL: Duration = Duration::from_secs(2);

/// The machines and sensors known to the deployment, with the rules readings must meet.
pub struct Catalog {
    store: Arc<dyn CatalogStore>,
    auto_register: bool,
    index: RwLock<Index>,
    last_refresh: Mutex<Instant>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("auto_register", &self.auto_register)
            .field("machines", &self.read().len())
            .finish()
    }
}

impl Catalog {
    /// Loads the catalog from `store`. With `auto_register`, unknown machines and sensors are
    /// registered on first sight instead of rejected.
    pub async fn load(store: Arc<dyn CatalogStore>, auto_register: bool) -> StoreResult<Self> {
        let catalog = Self {
            store,
            auto_register,
            index: RwLock::new(Index::new()),
            last_refresh: Mutex::new(Instant::now()),
        };
        catalog.refresh().await?;
        Ok(catalog)
    }

    /// Whether unknown machines and sensors are registered on first sight.
    pub fn auto_register(&self) -> bool {
        self.auto_register
    }

    /// The store behind the catalog.
    pub fn store(&self) -> &Arc<dyn CatalogStore> {
        &self.store
    }

    /// Reloads the cache from the store (another process may have registered machines).
    pub async fn refresh(&self) -> StoreResult<()> {
        let machines = self.store.list_machines().await?;
        let sensors = self.store.list_all_sensors().await?;
        let mut index: Index = machines
            .into_iter()
            .map(|m| (m.key, HashMap::new()))
            .collect();
        for s in sensors {
            index.entry(s.machine.clone()).or_default().insert(
                s.key.clone(),
                Limits {
                    min: s.min,
                    max: s.max,
                },
            );
        }
        *self.write() = index;
        *self.last_refresh.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        Ok(())
    }

    /// Reloads the catalog unless it was reloaded less than [`REFRESH_ON_MISS_INTERVAL`] ago;
    /// true when it did.
    async fn refresh_after_miss(&self) -> StoreResult<bool> {
        {
            let mut last = self.last_refresh.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() < REFRESH_ON_MISS_INTERVAL {
                return Ok(false);
            }
            // Claimed now, so concurrent misses do not all reload.
            *last = Instant::now();
        }
        self.refresh().await.map(|()| true)
    }

    /// True when `machine` is registered, reloading the catalog first when it is not known
    /// here (another worker may have registered it), at most once per
    /// [`REFRESH_ON_MISS_INTERVAL`].
    pub async fn knows_machine(&self, machine: &MachineKey) -> StoreResult<bool> {
        if self.has_machine(machine) {
            return Ok(true);
        }
        if self.refresh_after_miss().await? {
            return Ok(self.has_machine(machine));
        }
        Ok(false)
    }

    fn read(&self) -> RwLockReadGuard<'_, Index> {
        // A panic while holding the lock cannot leave the map half-updated (each update is a
        // single insert or remove), so a poisoned lock is still safe to use.
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }

    /// True when `machine` is registered.
    pub fn has_machine(&self, machine: &MachineKey) -> bool {
        self.read().contains_key(machine)
    }

    /// Number of registered machines.
    pub fn machine_count(&self) -> usize {
        self.read().len()
    }

    /// Checks readings against the catalog: keeps the admissible ones and turns the others into
    /// dead letters. With auto-registration on, unknown machines and sensors are registered
    /// first (one store round trip per new machine or sensor, once); with it off, a reading of
    /// an unknown machine or sensor reloads the catalog (at most once per
    /// [`REFRESH_ON_MISS_INTERVAL`]) before it is rejected.
    ///
    /// Both outputs keep the input order: the kept readings are the input minus the rejected
    /// ones, and the dead letters follow the rejected readings' order (callers map them back to
    /// items of the payload by that order).
    pub async fn admit(
        &self,
        readings: Vec<Reading>,
        ctx: InputContext<'_>,
    ) -> StoreResult<(Vec<Reading>, Vec<DeadLetter>)> {
        if self.auto_register {
            self.register_unknown(&readings).await?;
        }
        // One pass of lookups; rejections are rare, so only they are recorded.
        let mut rejected: Vec<(usize, RejectKind, String)> = {
            let index = self.read();
            (readings.iter().enumerate())
                .filter_map(|(i, r)| judge(&index, r).map(|(k, why)| (i, k, why)))
                .collect()
        };
        let unknown =
            |k: RejectKind| matches!(k, RejectKind::UnknownMachine | RejectKind::UnknownSensor);
        if !self.auto_register
            && rejected.iter().any(|(_, k, _)| unknown(*k))
            && self.refresh_after_miss().await?
        {
            // Another worker may have registered them: judge those again.
            let index = self.read();
            rejected.retain_mut(|(i, k, why)| {
                if !unknown(*k) {
                    return true;
                }
                match judge(&index, &readings[*i]) {
                    None => false,
                    Some((k2, why2)) => {
                        (*k, *why) = (k2, why2);
                        true
                    }
                }
            });
        }
        let mut dead = Vec::with_capacity(rejected.len());
        let mut kept = Vec::with_capacity(readings.len() - rejected.len());
        let mut rejected = rejected.into_iter().peekable();
        for (i, r) in readings.into_iter().enumerate() {
            match rejected.next_if(|(j, _, _)| *j == i) {
                Some((_, kind, why)) => {
                    dead.push(ctx.dead_letter(Some(r.machine.as_str()), kind, why))
                }
                None => kept.push(r),
            }
        }
        Ok((kept, dead))
    }

    async fn register_unknown(&self, readings: &[Reading]) -> StoreResult<()> {
        let missing: Vec<(MachineKey, SensorKey)> = {
            let index = self.read();
            let mut missing = Vec::new();
            for r in readings {
                let known = index
                    .get(&r.machine)
                    .is_some_and(|s| s.contains_key(&r.sensor));
                let pair = (r.machine.clone(), r.sensor.clone());
                if !known && !missing.contains(&pair) {
                    missing.push(pair);
                }
            }
            missing
        };
        for (machine, sensor) in missing {
            let s = self.store.ensure_sensor(&machine, &sensor).await?;
            self.put_sensor(&s);
        }
        Ok(())
    }

    fn put_sensor(&self, s: &Sensor) {
        self.write().entry(s.machine.clone()).or_default().insert(
            s.key.clone(),
            Limits {
                min: s.min,
                max: s.max,
            },
        );
    }

    /// Registers a machine.
    pub async fn create_machine(&self, m: &NewMachine) -> StoreResult<Machine> {
        let created = self.store.create_machine(m).await?;
        self.write().entry(created.key.clone()).or_default();
        Ok(created)
    }

    /// Updates a machine.
    pub async fn update_machine(
        &self,
        key: &MachineKey,
        u: &MachineUpdate,
    ) -> StoreResult<Machine> {
        self.store.update_machine(key, u).await
    }

    /// Deletes a machine with its sensors and readings.
    pub async fn delete_machine(&self, key: &MachineKey) -> StoreResult<()> {
        self.store.delete_machine(key).await?;
        self.write().remove(key);
        Ok(())
    }

    /// Registers a sensor, checking its plausible range.
    pub async fn create_sensor(&self, machine: &MachineKey, s: &NewSensor) -> StoreResult<Sensor> {
        check_range(s.min, s.max).map_err(StoreError::Invalid)?;
        let created = self.store.create_sensor(machine, s).await?;
        self.put_sensor(&created);
        Ok(created)
    }

    /// Updates a sensor, checking that the resulting plausible range is well formed.
    pub async fn update_sensor(
        &self,
        machine: &MachineKey,
        key: &SensorKey,
        u: &SensorUpdate,
    ) -> StoreResult<Sensor> {
        let current = self.store.get_sensor(machine, key).await?;
        let min = u.min.unwrap_or(current.min);
        let max = u.max.unwrap_or(current.max);
        check_range(min, max).map_err(StoreError::Invalid)?;
        let updated = self.store.update_sensor(machine, key, u).await?;
        self.put_sensor(&updated);
        Ok(updated)
    }

    /// Deletes a sensor with its readings.
    pub async fn delete_sensor(&self, machine: &MachineKey, key: &SensorKey) -> StoreResult<()> {
        self.store.delete_sensor(machine, key).await?;
        if let Some(sensors) = self.write().get_mut(machine) {
            sensors.remove(key);
        }
        Ok(())
    }
}

/// Why `r` cannot be stored, or `None` when it can.
fn judge(index: &Index, r: &Reading) -> Option<(RejectKind, String)> {
    let Some(sensors) = index.get(&r.machine) else {
        return Some((
            RejectKind::UnknownMachine,
            format!(
                "machine '{}' is not registered (register it first, or enable auto-registration)",
                r.machine
            ),
        ));
    };
    let Some(limits) = sensors.get(&r.sensor) else {
        return Some((
            RejectKind::UnknownSensor,
            format!(
                "sensor '{}' of machine '{}' is not registered (register it first, or enable \
                 auto-registration)",
                r.sensor, r.machine
            ),
        ));
    };
    let below = limits.min.is_some_and(|lo| r.value < lo);
    let above = limits.max.is_some_and(|hi| r.value > hi);
    (below || above).then(|| {
        (
            RejectKind::OutOfRange,
            format!(
                "value {} of sensor '{}' is outside its plausible range [{}, {}]",
                r.value,
                r.sensor,
                limits.min.map_or("-inf".into(), |v| v.to_string()),
                limits.max.map_or("inf".into(), |v| v.to_string()),
            ),
        )
    })
}
