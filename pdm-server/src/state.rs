//! What every handler can reach.

use std::sync::Arc;

use pdm_core::{BatchSink, Catalog, Metrics, TelemetryStore};
use pdm_ingest::Intake;

/// Shared state of the HTTP app: cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Machines and sensors (registration goes through it so validation stays current).
    pub catalog: Arc<Catalog>,
    /// Readings.
    pub telemetry: Arc<dyn TelemetryStore>,
    /// Where ingested batches go; answers only after the durable write.
    pub sink: BatchSink,
    /// Decoding and validation of telemetry payloads.
    pub intake: Arc<Intake>,
    /// Ingestion counters.
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("catalog", &self.catalog)
            .finish_non_exhaustive()
    }
}
