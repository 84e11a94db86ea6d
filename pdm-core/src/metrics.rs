//! Counters of the ingestion path, shared by sources, the engine and the server.
//!
//! Each counter is a relaxed atomic: incrementing costs a few nanoseconds and never blocks.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::{Origin, RejectKind};

/// Ingestion counters.
#[derive(Debug, Default)]
pub struct Metrics {
    readings_received: AtomicU64,
    readings_stored: AtomicU64,
    readings_duplicate: AtomicU64,
    dead_letters: [AtomicU64; RejectKind::ALL.len()],
    messages_mqtt: AtomicU64,
    messages_http: AtomicU64,
    messages_other: AtomicU64,
    batches_written: AtomicU64,
    write_errors: AtomicU64,
    write_micros_total: AtomicU64,
    dead_letters_pruned: AtomicU64,
    readings_pruned: AtomicU64,
    predictions_pruned: AtomicU64,
    retention_errors: AtomicU64,
}

/// A point-in-time copy of [`Metrics`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct MetricsSnapshot {
    /// Valid readings handed to the engine.
    pub readings_received: u64,
    /// Readings newly stored.
    pub readings_stored: u64,
    /// Readings skipped as already stored.
    pub readings_duplicate: u64,
    /// Dead letters by kind, in the order of [`RejectKind::ALL`].
    pub dead_letters: Vec<(RejectKind, u64)>,
    /// Messages received over MQTT.
    pub messages_mqtt: u64,
    /// Requests received over HTTP.
    pub messages_http: u64,
    /// Inputs from other origins.
    pub messages_other: u64,
    /// Store transactions committed.
    pub batches_written: u64,
    /// Store writes that failed (and were retried).
    pub write_errors: u64,
    /// Total time spent in committed store writes, in microseconds.
    pub write_micros_total: u64,
    /// Dead letters deleted by retention.
    pub dead_letters_pruned: u64,
    /// Readings deleted by retention.
    pub readings_pruned: u64,
    /// Predictions deleted by retention.
    pub predictions_pruned: u64,
    /// Retention deletes that failed (and are tried again at the next pass).
    pub retention_errors: u64,
}

impl Metrics {
    /// Counts one input message.
    pub fn message(&self, origin: Origin) {
        let c = match origin {
            Origin::Mqtt => &self.messages_mqtt,
            Origin::Http => &self.messages_http,
            _ => &self.messages_other,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts valid readings handed to the engine.
    pub fn received(&self, n: usize) {
        self.readings_received
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts a dead letter.
    pub fn dead_letter(&self, kind: RejectKind) {
        if let Some(i) = RejectKind::ALL.iter().position(|k| *k == kind) {
            self.dead_letters[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a committed write.
    pub fn written(&self, inserted: u64, duplicates: u64, micros: u64) {
        self.batches_written.fetch_add(1, Ordering::Relaxed);
        self.readings_stored.fetch_add(inserted, Ordering::Relaxed);
        self.readings_duplicate
            .fetch_add(duplicates, Ordering::Relaxed);
        self.write_micros_total.fetch_add(micros, Ordering::Relaxed);
    }

    /// Counts a failed write.
    pub fn write_error(&self) {
        self.write_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts dead letters deleted by retention.
    pub fn dead_letters_pruned(&self, n: u64) {
        self.dead_letters_pruned.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts readings deleted by retention.
    pub fn readings_pruned(&self, n: u64) {
        self.readings_pruned.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts predictions deleted by retention.
    pub fn predictions_pruned(&self, n: u64) {
        self.predictions_pruned.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a failed retention delete.
    pub fn retention_error(&self) {
        self.retention_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Copies the counters.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            readings_received: get(&self.readings_received),
            readings_stored: get(&self.readings_stored),
            readings_duplicate: get(&self.readings_duplicate),
            dead_letters: RejectKind::ALL
                .iter()
                .zip(&self.dead_letters)
                .map(|(k, c)| (*k, get(c)))
                .collect(),
            messages_mqtt: get(&self.messages_mqtt),
            messages_http: get(&self.messages_http),
            messages_other: get(&self.messages_other),
            batches_written: get(&self.batches_written),
            write_errors: get(&self.write_errors),
            write_micros_total: get(&self.write_micros_total),
            dead_letters_pruned: get(&self.dead_letters_pruned),
            readings_pruned: get(&self.readings_pruned),
            predictions_pruned: get(&self.predictions_pruned),
            retention_errors: get(&self.retention_errors),
        }
    }
}

impl MetricsSnapshot {
    /// Total dead letters of all kinds.
    pub fn dead_letters_total(&self) -> u64 {
        self.dead_letters.iter().map(|(_, n)| n).sum()
    }
}
