//! Retention: how long the store keeps dead letters, readings and predictions, and the engine's
//! task that prunes them.
//!
//! Bad input keeps arriving for as long as a device is misconfigured, so dead letters are bounded
//! by default (30 days, 100,000 letters). Readings are kept forever unless
//! [`Retention::readings_max_age_days`] is set: they are what models learn from, and deleting them
//! is the operator's decision. Predictions likewise, unless [`Retention::predictions_max_age_days`]
//! is set.
//!
//! A pass runs when the engine starts and then every [`Retention::interval_s`] seconds. Stores
//! delete in chunks of bounded size, each its own transaction, so ingestion waits for at most one
//! statement. A failed pass is logged, counted and tried again at the next interval.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{ConfigError, ConfigResult};
use crate::metrics::Metrics;
use crate::model::{DeadLetterPrune, Timestamp};
use crate::store::{CatalogStore, TelemetryStore};

/// The longest interval between pruning passes: a year.
pub const MAX_INTERVAL_S: u64 = 365 * 86_400;

const DAY_MS: i64 = 86_400_000;

/// What the store keeps (`[engine.retention]` in the server's file). `0` turns a limit off.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    /// Seconds between pruning passes, 1 to [`MAX_INTERVAL_S`].
    pub interval_s: u64,
    /// Days a dead letter is kept after it was received.
    pub dead_letters_max_age_days: u32,
    /// Most dead letters kept, the newest; one cap for all machines.
    pub dead_letters_max_count: u64,
    /// Days a reading is kept, counted from its own timestamp (device time); off by default.
    pub readings_max_age_days: u32,
    /// Days a prediction is kept, counted from its own timestamp (the row's instant); off by
    /// default.
    pub predictions_max_age_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            interval_s: 3_600,
            dead_letters_max_age_days: 30,
            dead_letters_max_count: 100_000,
            readings_max_age_days: 0,
            predictions_max_age_days: 0,
        }
    }
}

impl Retention {
    /// Checks the settings, naming the first bad one.
    pub fn check(&self) -> ConfigResult {
        if !(1..=MAX_INTERVAL_S).contains(&self.interval_s) {
            return Err(ConfigError::new(
                "engine.retention.interval_s",
                format!(
                    "must be between 1 and {MAX_INTERVAL_S} seconds (a year) (got {})",
                    self.interval_s
                ),
            ));
        }
        Ok(())
    }

    /// The dead letters a pass at `now` deletes; `None` when both of their limits are off.
    pub fn dead_letters_at(&self, now: Timestamp) -> Option<DeadLetterPrune> {
        let p = DeadLetterPrune {
            received_before: days_before(now, self.dead_letters_max_age_days),
            keep_newest: (self.dead_letters_max_count > 0).then_some(self.dead_letters_max_count),
        };
        (p != DeadLetterPrune::default()).then_some(p)
    }

    /// Readings older than this are deleted by a pass at `now`; `None` keeps them all.
    pub fn readings_before(&self, now: Timestamp) -> Option<Timestamp> {
        days_before(now, self.readings_max_age_days)
    }

    /// Predictions older than this are deleted by a pass at `now`; `None` keeps them all.
    pub fn predictions_before(&self, now: Timestamp) -> Option<Timestamp> {
        days_before(now, self.predictions_max_age_days)
    }

    /// True when no limit is set, and so no pass runs.
    pub fn is_off(&self) -> bool {
        let now = Timestamp::from_millis(0);
        self.dead_letters_at(now).is_none()
            && self.readings_before(now).is_none()
            && self.predictions_before(now).is_none()
    }
}

fn days_before(now: Timestamp, days: u32) -> Option<Timestamp> {
    (days > 0).then(|| now.add_millis(-i64::from(days) * DAY_MS))
}

/// Prunes now and then every `retention.interval_s` seconds, until the engine aborts it.
pub(crate) async fn run(
    store: Arc<dyn TelemetryStore>,
    catalog: Arc<dyn CatalogStore>,
    metrics: Arc<Metrics>,
    retention: Retention,
) {
    let mut every = tokio::time::interval(Duration::from_secs(retention.interval_s.max(1)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let now = Timestamp::now();
        if let Some(p) = retention.dead_letters_at(now) {
            match store.prune_dead_letters(&p).await {
                Ok(n) => {
                    metrics.dead_letters_pruned(n);
                    log_pruned("dead letters", n);
                }
                Err(e) => {
                    metrics.retention_error();
                    tracing::warn!(error = %e, "cannot prune dead letters; trying again next interval");
                }
            }
        }
        if let Some(before) = retention.readings_before(now) {
            match store.prune_readings(before).await {
                Ok(n) => {
                    metrics.readings_pruned(n);
                    log_pruned("readings", n);
                }
                Err(e) => {
                    metrics.retention_error();
                    tracing::warn!(error = %e, "cannot prune readings; trying again next interval");
                }
            }
        }
        if let Some(before) = retention.predictions_before(now) {
            match catalog.prune_predictions(before).await {
                Ok(n) => {
                    metrics.predictions_pruned(n);
                    log_pruned("predictions", n);
                }
                Err(e) => {
                    metrics.retention_error();
                    tracing::warn!(error = %e, "cannot prune predictions; trying again next interval");
                }
            }
        }
    }
}

fn log_pruned(what: &str, n: u64) {
    if n > 0 {
        tracing::info!(deleted = n, "pruned {what} past their retention");
    } else {
        tracing::debug!("no {what} to prune");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_turn_into_cutoffs_relative_to_now() {
        let now = Timestamp::from_millis(10 * DAY_MS);
        let r = Retention::default();
        assert_eq!(
            r.dead_letters_at(now),
            Some(DeadLetterPrune {
                received_before: Some(Timestamp::from_millis(-20 * DAY_MS)),
                keep_newest: Some(100_000),
            })
        );
        assert_eq!(r.readings_before(now), None, "readings are kept by default");
        assert!(!r.is_off());

        let readings_only = Retention {
            dead_letters_max_age_days: 0,
            dead_letters_max_count: 0,
            readings_max_age_days: 7,
            ..r.clone()
        };
        assert_eq!(readings_only.dead_letters_at(now), None);
        assert_eq!(
            readings_only.readings_before(now),
            Some(Timestamp::from_millis(3 * DAY_MS))
        );
        assert_eq!(readings_only.predictions_before(now), None);
        let predictions_only = Retention {
            readings_max_age_days: 0,
            predictions_max_age_days: 2,
            ..readings_only.clone()
        };
        assert_eq!(predictions_only.readings_before(now), None);
        assert_eq!(
            predictions_only.predictions_before(now),
            Some(Timestamp::from_millis(8 * DAY_MS))
        );
        assert!(!predictions_only.is_off());
        let off = Retention {
            readings_max_age_days: 0,
            ..readings_only
        };
        assert!(off.is_off(), "no limit: no pass at all");

        let far = Retention {
            dead_letters_max_age_days: u32::MAX,
            ..r
        };
        assert!(
            far.dead_letters_at(Timestamp::from_millis(i64::MIN + 1))
                .is_some(),
            "saturates"
        );
    }

    #[test]
    fn the_interval_is_bounded() {
        for bad in [0, MAX_INTERVAL_S + 1] {
            let r = Retention {
                interval_s: bad,
                ..Retention::default()
            };
            let err = r.check().expect_err("out of range");
            assert_eq!(err.setting, "engine.retention.interval_s");
            assert!(err.to_string().contains(&format!("(got {bad})")), "{err}");
        }
        assert_eq!(Retention::default().check(), Ok(()));
    }
}
