//! `GET /api/v1/dashboard`: the fleet overview of the home page in one call. Machines by health
//! band, the machines scoring highest, the ingestion rate and dead letters for anyone who reads
//! machines; open alarms and alarm performance only with `alarms:read`, work orders and alarm
//! precision only with `work_orders:read` (a section the caller may not read is `null`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use pdm_core::overview::{self, TopMachine};
use pdm_core::store::Permission;
use pdm_core::{Metrics, Store, Timestamp};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::error::ApiResult;
use crate::state::{AppState, IngestState};
use crate::views::{PerformanceView, PrecisionView};

/// This resource's part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(dashboard))]
pub struct Doc;

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new().route("/dashboard", get(dashboard))
}

/// How often [`IngestRate`] samples the stored-readings counter, and over how many samples
/// it averages (one minute).
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
const SAMPLES: usize = 13;

/// Readings stored per second over the last minute, from the engine's counter sampled every
/// five seconds by [`IngestRate::follow`].
#[derive(Debug, Default)]
pub struct IngestRate {
    samples: Mutex<VecDeque<(Instant, u64)>>,
}

impl IngestRate {
    /// Records the counter's value now.
    pub fn sample(&self, stored: u64) {
        let mut s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        s.push_back((Instant::now(), stored));
        while s.len() > SAMPLES {
            s.pop_front();
        }
    }

    /// Readings per second between the oldest and newest sample (`None` before two).
    pub fn per_second(&self) -> Option<f64> {
        let s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let (t0, n0) = *s.front()?;
        let (t1, n1) = *s.back()?;
        let dt = t1.duration_since(t0).as_secs_f64();
        (dt > 0.0).then(|| n1.saturating_sub(n0) as f64 / dt)
    }

    /// Samples `metrics` every five seconds until `stop`.
    pub async fn follow(self: Arc<Self>, metrics: Arc<Metrics>, mut stop: pdm_core::Shutdown) {
        loop {
            self.sample(metrics.snapshot().readings_stored);
            tokio::select! {
                _ = stop.wait() => return,
                _ = tokio::time::sleep(SAMPLE_EVERY) => {}
            }
        }
    }
}

/// A machine scoring high.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TopMachineView {
    /// The machine.
    pub machine: String,
    /// Its latest anomaly score.
    pub score: f64,
    /// Its model's threshold.
    pub threshold: f64,
    /// Score over threshold.
    pub ratio: f64,
    /// `good`, `fair`, `poor` or `critical`.
    pub band: String,
    /// Health index, 1 (healthy) to 0.
    pub health: Option<f64>,
    /// Remaining useful life in seconds.
    pub rul_s: Option<f64>,
    /// Epoch milliseconds of the prediction.
    pub at: i64,
}

impl From<TopMachine> for TopMachineView {
    fn from(t: TopMachine) -> Self {
        Self {
            machine: t.machine,
            score: t.score,
            threshold: t.threshold,
            ratio: t.ratio,
            band: t.band.as_str().to_owned(),
            health: t.health,
            rul_s: t.rul_s,
            at: t.at,
        }
    }
}

/// Open alarms.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AlarmsOverview {
    /// Open alarms (not closed).
    pub open: u64,
    /// By severity (`low` ... `critical`).
    pub by_severity: BTreeMap<String, u64>,
    /// By state (`active_unacknowledged`, `shelved`, ...).
    pub by_state: BTreeMap<String, u64>,
    /// The EEMUA 191 figures of the last 24 hours.
    pub performance: PerformanceView,
}

/// Work orders.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WorkOrdersOverview {
    /// By status.
    pub by_status: BTreeMap<String, u64>,
    /// Past their due date, neither resolved nor closed.
    pub overdue: u64,
    /// Alarm precision from the labels of resolved work orders, fleet-wide.
    pub alarm_precision: PrecisionView,
}

/// The overview.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DashboardView {
    /// Epoch milliseconds it was computed at.
    pub at: i64,
    /// Machines registered.
    pub machines: u64,
    /// Machines by health band (`good`, `fair`, `poor`, `critical`, `unknown`: no prediction
    /// in the last hour), from each machine's latest prediction.
    pub machines_by_health: BTreeMap<String, u64>,
    /// The machines with the highest score over threshold, highest first (at most five).
    pub top_anomalies: Vec<TopMachineView>,
    /// Readings stored per second over the last minute by this worker (`null` in its first
    /// seconds; with several workers, each counts what it stored).
    pub ingest_per_second: Option<f64>,
    /// Dead letters received in the last 24 hours.
    pub dead_letters_24h: u64,
    /// Open alarms and alarm performance (`null` without `alarms:read`).
    pub alarms: Option<AlarmsOverview>,
    /// Work orders and alarm precision (`null` without `work_orders:read`).
    pub work_orders: Option<WorkOrdersOverview>,
}

/// The fleet overview: health, alarms, work orders, ingestion, dead letters, the machines
/// scoring highest, alarm performance and precision.
#[utoipa::path(get, path = "/dashboard", tag = "dashboard",
    responses((status = 200, description = "The overview", body = DashboardView)))]
async fn dashboard(
    State(store): State<Arc<dyn Store>>,
    State(ingest): State<IngestState>,
    p: Principal,
) -> ApiResult<Json<DashboardView>> {
    let now = Timestamp::now();
    let o = overview::overview(&*store, now).await?;
    let alarms = if p.may(Permission::AlarmsRead) {
        let perf =
            pdm_core::store::alarms::alarm_performance(&*store, now.add_millis(-86_400_000), now)
                .await?;
        Some(AlarmsOverview {
            open: o.open_alarms,
            by_severity: o.open_alarms_by_severity,
            by_state: o.open_alarms_by_state,
            performance: perf.into(),
        })
    } else {
        None
    };
    let work_orders = if p.may(Permission::WorkOrdersRead) {
        let labels = overview::alarm_precision(&*store).await?;
        Some(WorkOrdersOverview {
            by_status: o.work_orders_by_status,
            overdue: o.overdue_work_orders,
            alarm_precision: labels.into(),
        })
    } else {
        None
    };
    Ok(Json(DashboardView {
        at: o.at,
        machines: o.machines,
        machines_by_health: o
            .machines_by_health
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        top_anomalies: o.top_anomalies.into_iter().map(Into::into).collect(),
        ingest_per_second: ingest.rate.per_second(),
        dead_letters_24h: o.dead_letters_24h,
        alarms,
        work_orders,
    }))
}
