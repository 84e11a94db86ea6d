//! Counters of the live path: relaxed atomics, read by embedders and the server's `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! live_counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// Counters of the live path.
        #[derive(Debug, Default)]
        pub struct LiveMetrics {
            $(pub(crate) $name: AtomicU64,)*
        }

        /// A point-in-time copy of [`LiveMetrics`].
        #[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
        pub struct LiveSnapshot {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl LiveMetrics {
            /// A copy of every counter.
            pub fn snapshot(&self) -> LiveSnapshot {
                LiveSnapshot {
                    $($name: self.$name.load(Ordering::Relaxed),)*
                }
            }
        }
    };
}

live_counters! {
    /// Readings handed to the owners (after their durable write).
    readings_in,
    /// Readings not scored because they were at or before the last finalized row (late).
    readings_late,
    /// Readings an owner never saw because its queue was full; it caught up from the store.
    readings_skipped,
    /// Rows scored by an active model.
    rows_scored,
    /// Rows that were anomalous.
    rows_anomalous,
    /// Rows used only to rebuild a window (after a restart, a swap or a skip).
    rows_warmed,
    /// Instants that gave no row because a channel was stale.
    rows_unscored,
    /// Stale-data conditions that started.
    stale_conditions,
    /// Rows a model could not score (reported once per model in the log).
    score_errors,
    /// Predictions newly stored.
    predictions_written,
    /// Predictions already stored (a row scored again after a restart).
    predictions_duplicate,
    /// Prediction writes that failed (retried; dropped after several failures).
    prediction_write_errors,
    /// Predictions dropped after failed writes.
    predictions_dropped,
    /// Catch-ups from the store (restart, model swap, skipped batch).
    catch_ups,
    /// Active models loaded into owners.
    models_loaded,
    /// Active models that could not be loaded (the machine is not scored until the next swap).
    model_load_errors,
    /// Time spent scoring rows, in microseconds.
    scoring_micros_total,
    /// Training jobs that succeeded.
    jobs_succeeded,
    /// Jobs that failed.
    jobs_failed,
    /// Training jobs queued by auto-training.
    auto_train_jobs,
}

/// Adds `n` to a counter.
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    if n > 0 {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
