//! Settings of the live path (`[live]` in the server's file).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::align::AlignConfig;
use crate::config::{ConfigError, ConfigResult};
use crate::ids::MachineKey;

/// Which machines this worker scores: those whose key hashes to `index` modulo `count`
/// (written `"index/count"`, `"0/1"` for a single worker, which scores every machine).
///
/// Several workers on one database and one broker split the machines between them by giving
/// each the same `count` and its own `index`; every machine then has exactly one owner. The
/// hash is FNV-1a of the key's bytes, fixed by this definition (never a process-random hash),
/// so every worker, of any version, agrees on the owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardAssignment {
    /// This worker's shard, `0..count`.
    pub index: u32,
    /// How many workers share the machines, at least 1.
    pub count: u32,
}

impl Default for ShardAssignment {
    fn default() -> Self {
        Self { index: 0, count: 1 }
    }
}

impl ShardAssignment {
    /// True when this worker owns `machine`.
    pub fn owns(&self, machine: &MachineKey) -> bool {
        self.count <= 1
            || key_hash(machine.as_str()) % u64::from(self.count) == u64::from(self.index)
    }
}

/// FNV-1a, 64 bits: stable across processes, versions and platforms.
pub fn key_hash(key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl fmt::Display for ShardAssignment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for ShardAssignment {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || format!("must be \"index/count\" with 0 <= index < count, like \"0/2\" (got {s:?})");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

impl Serialize for ShardAssignment {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ShardAssignment {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The default of [`LiveConfig::worker`].
pub const DEFAULT_WORKER: &str = "pdm-server";

/// The longest span `catch_up_s` and `auto_train_after_s` take: ten years.
pub const MAX_SPAN_S: u64 = 10 * 365 * 86_400;

/// Settings of the live path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveConfig {
    /// Score the stream at all. Off: readings are stored, nothing is scored or trained.
    pub enabled: bool,
    /// Owner tasks; each machine's state belongs to one of them (by key hash).
    pub tasks: usize,
    /// Places in each owner's queue, in batches. A full queue never holds back ingestion: the
    /// batch is skipped for detection (counted), and the owner catches up from the store.
    pub queue_capacity: usize,
    /// Which machines this worker scores (`"index/count"`).
    pub shard: ShardAssignment,
    /// Milliseconds between rows, for models trained or imported without one.
    pub sample_period_ms: u64,
    /// How long a value is carried forward, in ms, for models trained or imported without one.
    pub max_gap_ms: u64,
    /// A machine without a model trains on its first this many seconds of history; `0` is off.
    pub auto_train_after_s: u64,
    /// Most rows scored again from the store when an owner catches up (after a restart, a
    /// model swap or a skipped batch), counted in seconds of row time before the newest data.
    pub catch_up_s: u64,
    /// Most predictions written in one transaction.
    pub prediction_batch: usize,
    /// How long predictions wait for more before they are written, in ms.
    pub prediction_linger_ms: u64,
    /// The name this worker claims jobs under; a job it was running when it stopped is marked
    /// failed when it starts again. Unique per worker.
    pub worker: String,
    /// The model parameters of a training that names neither a kind nor parameters (the
    /// auto-training, and requests that leave both out): a JSON object for the factory's
    /// default kind. The default `{}` gives the factory's own defaults (pdm-detect's pipeline:
    /// T², margin 3, as offline).
    ///
    /// A fleet whose models train on a full day of operation does better with
    /// `{"statistic": "dominant", "margin": 2}` (every fault of the fleet scenario alarmed
    /// before its failure point, `docs/evaluation.md`, "Fleet scenario"): `dominant` watches
    /// both ways a fault shows in a PCA model, a move of the operating point (T²) and a broken
    /// relation between channels (Q), and a day of training already holds the worst healthy
    /// transient, so a margin of 2 over it suffices. It is not the default because a short
    /// training span (the demo's 40 minutes of auto-training) sees neither the load's range
    /// nor its transients: with it, a healthy pump trained on 40 minutes was flagged on 98 %
    /// of its rows.
    pub train_params: serde_json::Value,
    /// At start, store the fleet-wide default alarm rules ([`crate::alarm::default_rules`])
    /// when there are no fleet-wide rules at all (a fresh database). Disabling a default keeps
    /// it stored (and off); deleting every default brings them back at the next start unless
    /// this is off.
    pub seed_alarm_defaults: bool,
    /// How far before an alarm was raised its labelled window starts (milliseconds): the rows
    /// that made it, as a work order's label judges them. A training leaves the windows of
    /// `true_fault` and `planned_work` alarms out and learns those of `false_alarm` alarms as
    /// normal ([`crate::workorder::Label`]).
    pub label_lead_ms: u64,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            tasks: 2,
            queue_capacity: 256,
            shard: ShardAssignment::default(),
            sample_period_ms: 1_000,
            max_gap_ms: 5_000,
            auto_train_after_s: 0,
            catch_up_s: 3_600,
            prediction_batch: 5_000,
            prediction_linger_ms: 250,
            worker: DEFAULT_WORKER.to_owned(),
            train_params: default_train_params(),
            seed_alarm_defaults: true,
            label_lead_ms: 300_000,
        }
    }
}

/// The default of [`LiveConfig::train_params`].
pub fn default_train_params() -> serde_json::Value {
    serde_json::json!({})
}

impl LiveConfig {
    /// Checks the settings, naming the first bad one.
    pub fn check(&self) -> ConfigResult {
        if self.label_lead_ms > MAX_SPAN_S * 1_000 {
            return Err(ConfigError::new(
                "live.label_lead_ms",
                format!("at most {} ms", MAX_SPAN_S * 1_000),
            ));
        }
        if !self.train_params.is_object() {
            return Err(ConfigError::new(
                "live.train_params",
                format!("must be a JSON object (got {})", self.train_params),
            ));
        }
        let zero = [
            ("live.tasks", self.tasks == 0),
            ("live.queue_capacity", self.queue_capacity == 0),
            ("live.prediction_batch", self.prediction_batch == 0),
        ];
        if let Some((setting, _)) = zero.into_iter().find(|(_, z)| *z) {
            return Err(ConfigError::new(setting, "must be at least 1 (got 0)"));
        }
        if self.tasks > 256 {
            return Err(ConfigError::new(
                "live.tasks",
                format!("must be at most 256 (got {})", self.tasks),
            ));
        }
        if self.shard.count == 0 || self.shard.index >= self.shard.count {
            return Err(ConfigError::new(
                "live.shard",
                format!("index must be below count (got {})", self.shard),
            ));
        }
        for (setting, v) in [
            ("live.catch_up_s", self.catch_up_s),
            ("live.auto_train_after_s", self.auto_train_after_s),
        ] {
            if v > MAX_SPAN_S {
                return Err(ConfigError::new(
                    setting,
                    format!("must be at most {MAX_SPAN_S} seconds (ten years) (got {v})"),
                ));
            }
        }
        if self.worker.trim().is_empty() || self.worker.len() > 128 {
            return Err(ConfigError::new(
                "live.worker",
                "must be a name of 1 to 128 characters",
            ));
        }
        self.align(vec![crate::ids::SensorKey::new("x").expect("a valid key")])
            .check()
            .map_err(|e| ConfigError::new(e.setting.replace("align.", "live."), e.problem))
    }

    /// The name jobs are claimed under: `worker`, or with the default name on a worker of
    /// several shards, `pdm-server-<index>`, so that two workers left at the default never
    /// fail each other's running jobs when one of them restarts.
    pub fn worker_name(&self) -> String {
        if self.worker == DEFAULT_WORKER && self.shard.count > 1 {
            format!("{DEFAULT_WORKER}-{}", self.shard.index)
        } else {
            self.worker.clone()
        }
    }

    /// The alignment of a model over `channels` with this worker's default period and gap.
    pub fn align(&self, channels: Vec<crate::ids::SensorKey>) -> AlignConfig {
        AlignConfig {
            channels,
            sample_period_ms: self.sample_period_ms,
            max_gap_ms: self.max_gap_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_split_machines() {
        assert_eq!(
            "1/3".parse::<ShardAssignment>(),
            Ok(ShardAssignment { index: 1, count: 3 })
        );
        for bad in ["3/3", "0/0", "x/2", "1", ""] {
            assert!(bad.parse::<ShardAssignment>().is_err(), "{bad}");
        }
        // Every machine has exactly one owner among the shards.
        for i in 0..200 {
            let m = MachineKey::new(&format!("m-{i}")).unwrap();
            let owners = (0..3)
                .filter(|&index| ShardAssignment { index, count: 3 }.owns(&m))
                .count();
            assert_eq!(owners, 1);
        }
        // The hash is fixed: FNV-1a's published test value.
        assert_eq!(key_hash("a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn check_names_the_bad_setting() {
        assert_eq!(LiveConfig::default().check(), Ok(()));
        let cases = [
            (
                LiveConfig {
                    tasks: 0,
                    ..LiveConfig::default()
                },
                "live.tasks",
            ),
            (
                LiveConfig {
                    queue_capacity: 0,
                    ..LiveConfig::default()
                },
                "live.queue_capacity",
            ),
            (
                LiveConfig {
                    sample_period_ms: 0,
                    ..LiveConfig::default()
                },
                "live.sample_period_ms",
            ),
            (
                LiveConfig {
                    max_gap_ms: 10,
                    ..LiveConfig::default()
                },
                "live.max_gap_ms",
            ),
            (
                LiveConfig {
                    worker: " ".into(),
                    ..LiveConfig::default()
                },
                "live.worker",
            ),
            (
                LiveConfig {
                    train_params: serde_json::json!("dominant"),
                    ..LiveConfig::default()
                },
                "live.train_params",
            ),
        ];
        for (c, setting) in cases {
            assert_eq!(c.check().expect_err(setting).setting, setting);
        }
    }
}
