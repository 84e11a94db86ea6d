//! An in-memory store for tests of the crate's own logic (sources, intake, simulator): a
//! `TelemetryStore` + `CatalogStore` on hash maps that can be told to fail writes. The real
//! backends and their conformance suite live in pdm-store.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use pdm_core::{
    Batch, Bucket, CatalogStore, DeadLetter, DeadLetterPrune, DeadLetterQuery, Latest, Machine,
    MachineKey, MachineUpdate, NewMachine, NewSensor, Point, RangeQuery, Sensor, SensorKey,
    SensorUpdate, StoreError, StoreResult, StoredDeadLetter, TelemetryStore, Timestamp,
    WriteOutcome,
};

#[derive(Default)]
struct Inner {
    machines: BTreeMap<MachineKey, Machine>,
    sensors: BTreeMap<(MachineKey, SensorKey), Sensor>,
    readings: HashMap<(MachineKey, SensorKey), BTreeMap<i64, f64>>,
    dead_letters: Vec<DeadLetter>,
}

/// A store in memory.
#[derive(Default)]
pub struct MemStore {
    inner: Mutex<Inner>,
    fail_writes: AtomicBool,
    write_attempts: AtomicU64,
    writes_ok: AtomicU64,
}

impl MemStore {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes every write fail (non-transiently) until called with `false`.
    pub fn fail_writes(&self, fail: bool) {
        self.fail_writes.store(fail, Ordering::SeqCst);
    }

    /// Writes attempted so far.
    pub fn write_attempts(&self) -> u64 {
        self.write_attempts.load(Ordering::SeqCst)
    }

    /// Writes committed so far.
    pub fn writes_ok(&self) -> u64 {
        self.writes_ok.load(Ordering::SeqCst)
    }

    /// Every stored reading of `machine` as (sensor, ts, value), ordered.
    pub fn readings_of(&self, machine: &str) -> Vec<(String, i64, f64)> {
        let inner = self.lock();
        let mut out: Vec<(String, i64, f64)> = inner
            .readings
            .iter()
            .filter(|((m, _), _)| m.as_str() == machine)
            .flat_map(|((_, s), points)| points.iter().map(|(t, v)| (s.to_string(), *t, *v)))
            .collect();
        out.sort_by(|a, b| (a.0.as_str(), a.1).cmp(&(b.0.as_str(), b.1)));
        out
    }

    /// Every stored reading.
    pub fn total_readings(&self) -> usize {
        self.lock().readings.values().map(BTreeMap::len).sum()
    }

    /// Every stored dead letter, oldest first.
    pub fn all_dead_letters(&self) -> Vec<DeadLetter> {
        self.lock().dead_letters.clone()
    }

    /// Registers a machine with the given sensors (no limits) directly.
    pub fn seed_machine(&self, machine: &str, sensors: &[(&str, Option<f64>, Option<f64>)]) {
        let key = MachineKey::new(machine).expect("valid machine key");
        let mut inner = self.lock();
        inner.machines.insert(key.clone(), machine_of(&key, None));
        for (s, min, max) in sensors {
            let sk = SensorKey::new(s).expect("valid sensor key");
            inner.sensors.insert(
                (key.clone(), sk.clone()),
                Sensor {
                    machine: key.clone(),
                    key: sk,
                    unit: None,
                    min: *min,
                    max: *max,
                    created_at: Timestamp::now(),
                },
            );
        }
    }
}

fn machine_of(key: &MachineKey, m: Option<&NewMachine>) -> Machine {
    Machine {
        key: key.clone(),
        name: m
            .and_then(|m| m.name.clone())
            .unwrap_or_else(|| key.to_string()),
        kind: m.and_then(|m| m.kind.clone()),
        description: m.and_then(|m| m.description.clone()),
        created_at: Timestamp::now(),
    }
}

fn not_found(what: String) -> StoreError {
    StoreError::NotFound(what)
}

#[async_trait]
impl TelemetryStore for MemStore {
    async fn write(&self, batch: &Batch) -> StoreResult<WriteOutcome> {
        self.write_attempts.fetch_add(1, Ordering::SeqCst);
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("injected write failure".into()));
        }
        let mut inner = self.lock();
        for r in &batch.readings {
            if !inner
                .sensors
                .contains_key(&(r.machine.clone(), r.sensor.clone()))
            {
                return Err(StoreError::Invalid(format!(
                    "sensor {}/{} is not registered",
                    r.machine, r.sensor
                )));
            }
        }
        let mut outcome = WriteOutcome::default();
        for r in &batch.readings {
            let points = inner
                .readings
                .entry((r.machine.clone(), r.sensor.clone()))
                .or_default();
            match points.entry(r.ts.as_millis()) {
                std::collections::btree_map::Entry::Occupied(_) => outcome.duplicates += 1,
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(r.value);
                    outcome.inserted += 1;
                }
            }
        }
        inner
            .dead_letters
            .extend(batch.dead_letters.iter().cloned());
        outcome.dead_letters = batch.dead_letters.len() as u64;
        self.writes_ok.fetch_add(1, Ordering::SeqCst);
        Ok(outcome)
    }

    async fn raw(&self, q: &RangeQuery) -> StoreResult<Vec<Point>> {
        let inner = self.lock();
        Ok(inner
            .readings
            .get(&(q.machine.clone(), q.sensor.clone()))
            .map(|p| {
                p.range(q.from.as_millis()..q.to.as_millis())
                    .take(q.limit as usize)
                    .map(|(t, v)| Point {
                        ts: Timestamp::from_millis(*t),
                        value: *v,
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn buckets(&self, q: &RangeQuery, width_ms: i64) -> StoreResult<Vec<Bucket>> {
        let raw = self
            .raw(&RangeQuery {
                limit: u32::MAX,
                ..q.clone()
            })
            .await?;
        let mut out: Vec<Bucket> = Vec::new();
        for p in raw {
            let start = p.ts.as_millis().div_euclid(width_ms) * width_ms;
            match out.last_mut() {
                Some(b) if b.start.as_millis() == start => {
                    b.avg = (b.avg * b.count as f64 + p.value) / (b.count + 1) as f64;
                    b.min = b.min.min(p.value);
                    b.max = b.max.max(p.value);
                    b.count += 1;
                }
                _ => out.push(Bucket {
                    start: Timestamp::from_millis(start),
                    avg: p.value,
                    min: p.value,
                    max: p.value,
                    count: 1,
                }),
            }
        }
        out.truncate(q.limit as usize);
        Ok(out)
    }

    async fn latest(&self, machine: &MachineKey) -> StoreResult<Vec<Latest>> {
        let inner = self.lock();
        let mut out: Vec<Latest> = inner
            .readings
            .iter()
            .filter(|((m, _), _)| m == machine)
            .filter_map(|((_, s), p)| {
                p.iter().next_back().map(|(t, v)| Latest {
                    sensor: s.clone(),
                    ts: Timestamp::from_millis(*t),
                    value: *v,
                })
            })
            .collect();
        out.sort_by(|a, b| a.sensor.cmp(&b.sensor));
        Ok(out)
    }

    async fn count_readings(&self, machine: &MachineKey) -> StoreResult<u64> {
        let inner = self.lock();
        Ok(inner
            .readings
            .iter()
            .filter(|((m, _), _)| m == machine)
            .map(|(_, p)| p.len() as u64)
            .sum())
    }

    async fn prune_dead_letters(&self, p: &DeadLetterPrune) -> StoreResult<u64> {
        let mut inner = self.lock();
        let before = inner.dead_letters.len();
        if let Some(t) = p.received_before {
            inner.dead_letters.retain(|d| d.received_at >= t);
        }
        if let Some(keep) = p.keep_newest {
            let n = inner.dead_letters.len();
            let dropped = n.saturating_sub(usize::try_from(keep).unwrap_or(usize::MAX));
            inner.dead_letters.drain(..dropped);
        }
        Ok((before - inner.dead_letters.len()) as u64)
    }

    async fn prune_readings(&self, before: Timestamp) -> StoreResult<u64> {
        let mut inner = self.lock();
        let mut deleted = 0;
        for points in inner.readings.values_mut() {
            let kept = points.split_off(&before.as_millis());
            deleted += points.len() as u64;
            *points = kept;
        }
        Ok(deleted)
    }

    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }
}

#[async_trait]
impl CatalogStore for MemStore {
    async fn create_machine(&self, m: &NewMachine) -> StoreResult<Machine> {
        let mut inner = self.lock();
        if inner.machines.contains_key(&m.key) {
            return Err(StoreError::Conflict(format!("machine {} exists", m.key)));
        }
        let machine = machine_of(&m.key, Some(m));
        inner.machines.insert(m.key.clone(), machine.clone());
        Ok(machine)
    }

    async fn ensure_machine(&self, key: &MachineKey) -> StoreResult<Machine> {
        let mut inner = self.lock();
        Ok(inner
            .machines
            .entry(key.clone())
            .or_insert_with(|| machine_of(key, None))
            .clone())
    }

    async fn get_machine(&self, key: &MachineKey) -> StoreResult<Machine> {
        self.lock()
            .machines
            .get(key)
            .cloned()
            .ok_or_else(|| not_found(format!("machine {key}")))
    }

    async fn list_machines(&self) -> StoreResult<Vec<Machine>> {
        Ok(self.lock().machines.values().cloned().collect())
    }

    async fn update_machine(&self, key: &MachineKey, u: &MachineUpdate) -> StoreResult<Machine> {
        let mut inner = self.lock();
        let m = inner
            .machines
            .get_mut(key)
            .ok_or_else(|| not_found(format!("machine {key}")))?;
        if let Some(name) = &u.name {
            m.name = name.clone();
        }
        if let Some(kind) = &u.kind {
            m.kind = kind.clone();
        }
        if let Some(d) = &u.description {
            m.description = d.clone();
        }
        Ok(m.clone())
    }

    async fn delete_machine(&self, key: &MachineKey) -> StoreResult<()> {
        let mut inner = self.lock();
        inner
            .machines
            .remove(key)
            .ok_or_else(|| not_found(format!("machine {key}")))?;
        inner.sensors.retain(|(m, _), _| m != key);
        inner.readings.retain(|(m, _), _| m != key);
        Ok(())
    }

    async fn create_sensor(&self, machine: &MachineKey, s: &NewSensor) -> StoreResult<Sensor> {
        let mut inner = self.lock();
        if !inner.machines.contains_key(machine) {
            return Err(not_found(format!("machine {machine}")));
        }
        let id = (machine.clone(), s.key.clone());
        if inner.sensors.contains_key(&id) {
            return Err(StoreError::Conflict(format!("sensor {} exists", s.key)));
        }
        let sensor = Sensor {
            machine: machine.clone(),
            key: s.key.clone(),
            unit: s.unit.clone(),
            min: s.min,
            max: s.max,
            created_at: Timestamp::now(),
        };
        inner.sensors.insert(id, sensor.clone());
        Ok(sensor)
    }

    async fn ensure_sensor(&self, machine: &MachineKey, key: &SensorKey) -> StoreResult<Sensor> {
        let mut inner = self.lock();
        inner
            .machines
            .entry(machine.clone())
            .or_insert_with(|| machine_of(machine, None));
        Ok(inner
            .sensors
            .entry((machine.clone(), key.clone()))
            .or_insert_with(|| Sensor {
                machine: machine.clone(),
                key: key.clone(),
                unit: None,
                min: None,
                max: None,
                created_at: Timestamp::now(),
            })
            .clone())
    }

    async fn get_sensor(&self, machine: &MachineKey, key: &SensorKey) -> StoreResult<Sensor> {
        self.lock()
            .sensors
            .get(&(machine.clone(), key.clone()))
            .cloned()
            .ok_or_else(|| not_found(format!("sensor {machine}/{key}")))
    }

    async fn list_sensors(&self, machine: &MachineKey) -> StoreResult<Vec<Sensor>> {
        Ok(self
            .lock()
            .sensors
            .values()
            .filter(|s| &s.machine == machine)
            .cloned()
            .collect())
    }

    async fn list_all_sensors(&self) -> StoreResult<Vec<Sensor>> {
        Ok(self.lock().sensors.values().cloned().collect())
    }

    async fn update_sensor(
        &self,
        machine: &MachineKey,
        key: &SensorKey,
        u: &SensorUpdate,
    ) -> StoreResult<Sensor> {
        let mut inner = self.lock();
        let s = inner
            .sensors
            .get_mut(&(machine.clone(), key.clone()))
            .ok_or_else(|| not_found(format!("sensor {machine}/{key}")))?;
        if let Some(unit) = &u.unit {
            s.unit = unit.clone();
        }
        if let Some(min) = u.min {
            s.min = min;
        }
        if let Some(max) = u.max {
            s.max = max;
        }
        Ok(s.clone())
    }

    async fn delete_sensor(&self, machine: &MachineKey, key: &SensorKey) -> StoreResult<()> {
        let mut inner = self.lock();
        let id = (machine.clone(), key.clone());
        inner
            .sensors
            .remove(&id)
            .ok_or_else(|| not_found(format!("sensor {machine}/{key}")))?;
        inner.readings.remove(&id);
        Ok(())
    }

    async fn dead_letters(&self, q: &DeadLetterQuery) -> StoreResult<Vec<StoredDeadLetter>> {
        let inner = self.lock();
        Ok(inner
            .dead_letters
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, d)| {
                q.machine
                    .as_ref()
                    .is_none_or(|m| d.machine.as_ref() == Some(m))
            })
            .filter(|(_, d)| q.kind.is_none_or(|k| d.kind == k))
            .take(q.limit as usize)
            .map(|(i, d)| StoredDeadLetter {
                id: i as i64 + 1,
                letter: d.clone(),
            })
            .collect())
    }
}
