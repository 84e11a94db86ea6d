//! Counters of the live path: relaxed atomics, read by embedders and the server's `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! live_counters {
    ($($name:ident => $help:literal,)*) => {
        /// Counters of the live path.
        #[derive(Debug, Default)]
        pub struct LiveMetrics {
            $(pub(crate) $name: AtomicU64,)*
        }

        /// A point-in-time copy of [`LiveMetrics`].
        #[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
        pub struct LiveSnapshot {
            $(#[doc = $help] pub $name: u64,)*
        }

        impl LiveSnapshot {
            /// Every counter with its name and description, for exporters.
            pub fn fields(&self) -> Vec<(&'static str, &'static str, u64)> {
                vec![$((stringify!($name), $help, self.$name),)*]
            }
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
    readings_in => "Readings handed to the owners (after their durable write).",
    readings_late => "Readings not scored because they were at or before the last finalized row (late).",
    readings_skipped => "Readings an owner never saw because its queue was full; it caught up from the store.",
    rows_scored => "Rows scored by an active model.",
    rows_anomalous => "Rows that were anomalous.",
    rows_warmed => "Rows used only to rebuild a window (after a restart, a swap or a skip).",
    rows_unscored => "Instants that gave no row because a channel was stale.",
    stale_conditions => "Stale-data conditions that started.",
    score_errors => "Rows a model could not score (reported once per model in the log).",
    predictions_written => "Predictions newly stored.",
    predictions_duplicate => "Predictions already stored (a row scored again after a restart).",
    prediction_write_errors => "Prediction writes that failed (retried; dropped after several failures).",
    predictions_dropped => "Predictions dropped after failed writes.",
    catch_ups => "Catch-ups from the store (restart, model swap, skipped batch).",
    models_loaded => "Active models loaded into owners.",
    model_load_errors => "Active models that could not be loaded (the machine is not scored until the next swap).",
    scoring_micros_total => "Time spent scoring rows, in microseconds.",
    jobs_succeeded => "Training jobs that succeeded.",
    jobs_failed => "Jobs that failed.",
    auto_train_jobs => "Training jobs queued by auto-training.",
    alarm_transitions => "Alarm transitions stored (each with its events and outbox rows).",
    alarm_events => "Alarm events stored.",
    alarm_conflicts => "Alarm transitions refused because the stored alarm had changed (another worker or a person's command); recomputed from the stored state.",
    alarm_write_errors => "Alarm transitions that could not be stored (the monitor is reloaded from the store).",
    alarm_rule_errors => "Stored alarm rules that could not be read (skipped; see the log).",
    alarm_readings_caught_up => "Readings of skipped batches read back from the store for the alarm rules.",
}

/// Adds `n` to a counter.
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    if n > 0 {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
