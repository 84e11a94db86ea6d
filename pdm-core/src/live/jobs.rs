//! The job runner: background jobs (trainings) claimed from the jobs table and run here.
//!
//! Jobs live in the store, so they survive a restart: at start-up the runner marks the jobs its
//! worker was running as failed (with the reason; the caller may queue them again), then claims
//! queued jobs one at a time. A training reads its range from the store page by page, forms the
//! rows as the live path does ([`crate::align`]), fits on a blocking thread, and registers the
//! model and finishes the job in one transaction
//! ([`ModelStore::register_trained_model`](crate::store::ModelStore::register_trained_model)),
//! so a job cancelled while it trained leaves no model. Progress is written as it goes; a
//! cancelled job learns it at its next progress write and stops.
//!
//! Each progress write and each job's end is also published on the live path's bus
//! ([`PushKind::Job`], a [`JobProgress`]) for push clients, when the runner has a live path.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::config::LiveConfig;
use super::metrics::{add, LiveMetrics};
use super::model::{ModelError, ModelFactory, TrainSpec, TrainingRows};
use super::registry::{ModelParameters, TrainRequest, TRAIN_JOB};
use super::runtime::Live;
use crate::align::{AlignConfig, Aligned, Aligner};
use crate::bus::{Bus, PushKind};
use crate::ids::{MachineKey, SensorKey};
use crate::model::{MachineRangeQuery, Timestamp};
use crate::store::{Activation, Job, JobId, JobOutcome, JobStatus, NewModel, Store, StoreError};

/// Readings read per page by a training.
const PAGE: u32 = 50_000;

/// A running job runner.
pub struct JobRunner {
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for JobRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobRunner").finish_non_exhaustive()
    }
}

/// Sets a flag when dropped.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Wakes a [`JobRunner`] when a job was queued, so it starts at once rather than at the next
/// poll (a second).
#[derive(Debug, Clone, Default)]
pub struct JobWaker(Arc<Notify>);

impl JobWaker {
    /// Wakes the runner.
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// A job's progress or end, as published on the bus (the `data` of a `job` push event).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct JobProgress {
    /// The job.
    pub job: JobId,
    /// What it does (`train`).
    pub kind: String,
    /// The machine it concerns, if any.
    pub machine: Option<MachineKey>,
    /// `running` while it runs; `succeeded`, `failed` or `cancelled` at its end.
    pub status: JobStatus,
    /// How far it got, 0 to 1 (1 once succeeded).
    pub progress: f64,
    /// What it is doing, or why it failed.
    pub message: Option<String>,
}

/// Why a job ended without success; the message is stored with the job.
enum JobEnd {
    Failed(String),
    /// Cancelled (or otherwise no longer running) while it ran: nothing to record.
    Gone,
}

impl From<StoreError> for JobEnd {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(_) => JobEnd::Gone,
            e => {
                // The cause goes to the log, not into the job's message (which the API shows).
                tracing::error!(error = %e, "the database failed while a job ran");
                JobEnd::Failed(
                    "the database failed while the job ran (the server log has the cause); retry the job"
                        .into(),
                )
            }
        }
    }
}

impl From<ModelError> for JobEnd {
    fn from(e: ModelError) -> Self {
        JobEnd::Failed(e.to_string())
    }
}

impl JobRunner {
    /// Fails the jobs this worker was running when it stopped, then runs queued jobs until
    /// [`shutdown`](Self::shutdown).
    pub async fn start(
        store: Arc<dyn Store>,
        factory: Arc<dyn ModelFactory>,
        live: Option<Arc<Live>>,
        metrics: Arc<LiveMetrics>,
        config: LiveConfig,
    ) -> Result<JobRunner, StoreError> {
        let failed = store
            .fail_running_jobs(
                &config.worker_name(),
                "the server stopped while the job was running; queue it again to retry",
                Timestamp::now(),
            )
            .await?;
        if failed > 0 {
            tracing::warn!(
                jobs = failed,
                "jobs interrupted by the last stop marked failed"
            );
        }
        let wake = Arc::new(Notify::new());
        // Progress goes on the live path's bus, where push clients listen.
        let bus = live.as_ref().map(|l| l.bus().clone());
        let runner = Runner {
            bus,
            last_progress: AtomicU64::new(0),
            store,
            factory,
            live,
            metrics,
            config,
        };
        let task = tokio::spawn(runner.run(wake.clone()));
        Ok(JobRunner { wake, task })
    }

    /// Looks for queued jobs now rather than at the next poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// A handle that wakes the runner, for whoever queues jobs.
    pub fn waker(&self) -> JobWaker {
        JobWaker(self.wake.clone())
    }

    /// Stops the runner; a job running now stays running in the store and is marked failed at
    /// the next start.
    pub async fn shutdown(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

struct Runner {
    bus: Option<Arc<Bus>>,
    /// The progress last written for the running job (f64 bits), for its end event.
    last_progress: AtomicU64,
    store: Arc<dyn Store>,
    factory: Arc<dyn ModelFactory>,
    live: Option<Arc<Live>>,
    metrics: Arc<LiveMetrics>,
    config: LiveConfig,
}

impl Runner {
    async fn run(self, wake: Arc<Notify>) {
        loop {
            match self
                .store
                .claim_next_job(&self.config.worker_name(), Timestamp::now())
                .await
            {
                Ok(Some(job)) => {
                    self.run_job(job).await;
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot claim a job; trying again"),
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    async fn run_job(&self, job: Job) {
        let id = job.id;
        tracing::info!(job = %id, kind = %job.kind, "job started");
        self.last_progress
            .store(job.progress.to_bits(), Ordering::Relaxed);
        let end = match job.kind.as_str() {
            TRAIN_JOB => self.train(&job).await,
            other => Err(JobEnd::Failed(format!(
                "unknown job kind {other:?}; this worker runs {TRAIN_JOB:?} jobs"
            ))),
        };
        match end {
            Ok(()) => {
                add(&self.metrics.jobs_succeeded, 1);
                tracing::info!(job = %id, "job succeeded");
                self.publish(&job, JobStatus::Succeeded, 1.0, None);
            }
            Err(JobEnd::Gone) => {
                tracing::info!(job = %id, "job cancelled while it ran");
                self.publish(
                    &job,
                    JobStatus::Cancelled,
                    self.last(),
                    Some("cancelled while it ran"),
                );
            }
            Err(JobEnd::Failed(message)) => {
                add(&self.metrics.jobs_failed, 1);
                tracing::warn!(job = %id, %message, "job failed");
                self.publish(&job, JobStatus::Failed, self.last(), Some(&message));
                let outcome = JobOutcome::Failed { message };
                if let Err(e) = self.store.finish_job(id, &outcome, Timestamp::now()).await {
                    if !matches!(e, StoreError::Conflict(_)) {
                        tracing::error!(job = %id, error = %e, "cannot record the job's failure");
                    }
                }
            }
        }
    }

    fn last(&self) -> f64 {
        f64::from_bits(self.last_progress.load(Ordering::Relaxed))
    }

    /// Tells push clients where `job` is.
    fn publish(&self, job: &Job, status: JobStatus, progress: f64, message: Option<&str>) {
        if let Some(bus) = &self.bus {
            let event = JobProgress {
                job: job.id,
                kind: job.kind.clone(),
                machine: job.machine.clone(),
                status,
                progress,
                message: message.map(str::to_owned),
            };
            bus.publish(PushKind::Job, job.machine.as_ref(), &event);
        }
    }

    async fn progress(&self, job: &Job, p: f64, message: &str) -> Result<(), JobEnd> {
        let p = if p.is_finite() {
            p.clamp(0.0, 1.0)
        } else {
            0.5
        };
        self.store.update_progress(job.id, p, Some(message)).await?;
        // After the write: a cancelled job (the write refused) is not reported as running.
        self.last_progress.store(p.to_bits(), Ordering::Relaxed);
        self.publish(job, JobStatus::Running, p, Some(message));
        Ok(())
    }

    async fn train(&self, job: &Job) -> Result<(), JobEnd> {
        let request: TrainRequest = serde_json::from_str(&job.params)
            .map_err(|e| JobEnd::Failed(format!("the job's parameters are unreadable: {e}")))?;
        request.check()?;
        let machine = job
            .machine
            .clone()
            .ok_or_else(|| JobEnd::Failed("a training job must name its machine".into()))?;
        let channels = match &request.channels {
            Some(c) => c.clone(),
            None => self.channels_with_data(&machine, &request).await?,
        };
        let align = AlignConfig {
            channels,
            sample_period_ms: request
                .sample_period_ms
                .unwrap_or(self.config.sample_period_ms),
            max_gap_ms: request.max_gap_ms.unwrap_or(self.config.max_gap_ms),
        };
        align.check().map_err(|e| JobEnd::Failed(e.to_string()))?;
        self.progress(job, 0.0, "reading the training range")
            .await?;
        // What people found closes the loop: windows of alarms judged real faults or planned
        // work are left out of "normal"; windows of false alarms are learnt as normal, read
        // where they lie outside the training range.
        let labelled = self.store.labelled_alarms(Some(&machine)).await?;
        let lead = i64::try_from(self.config.label_lead_ms).unwrap_or(i64::MAX);
        let windows = LabelWindows::new(&labelled, lead);
        let (mut rows, excluded) = self
            .read_rows(
                job,
                &machine,
                (request.from, request.to),
                &align,
                &windows.excluded,
            )
            .await?;
        let mut added = 0;
        for (from, to) in windows.outside(request.from, request.to) {
            let (extra, _) = self
                .read_rows(job, &machine, (from, to), &align, &windows.excluded)
                .await?;
            added += extra.n_rows();
            rows.segments.extend(extra.segments);
        }
        let n_rows = rows.n_rows();
        if n_rows == 0 {
            return Err(JobEnd::Failed(format!(
                "the range {}..{} holds no rows where every channel of {:?} has a value (sample period {} ms, max gap {} ms)",
                request.from.as_millis(),
                request.to.as_millis(),
                align.channels.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                align.sample_period_ms,
                align.max_gap_ms
            )));
        }
        self.progress(job, 0.5, &format!("fitting on {n_rows} rows"))
            .await?;
        let spec = TrainSpec {
            kind: request.kind.clone(),
            // A training that leaves both the kind and its parameters to the defaults gets the
            // live path's (`live.train_params`); naming either means the caller chose.
            params: match (&request.kind, &request.params) {
                (_, Some(p)) => p.to_string(),
                (None, None) => self.config.train_params.to_string(),
                (Some(_), None) => "{}".into(),
            },
            align: align.clone(),
        };
        let fraction = Arc::new(AtomicU64::new(0.5f64.to_bits()));
        let cancelled = Arc::new(AtomicBool::new(false));
        // Stopping the runner drops this future: the fit on its blocking thread is told to stop
        // too, so that a shutdown does not wait for a whole training.
        let _stop_on_drop = CancelOnDrop(cancelled.clone());
        let factory = self.factory.clone();
        let fit = {
            let (fraction, cancelled) = (fraction.clone(), cancelled.clone());
            tokio::task::spawn_blocking(move || {
                factory.train(&spec, &rows, &mut |p| {
                    fraction.store((0.5 + 0.4 * p.clamp(0.0, 1.0)).to_bits(), Ordering::Relaxed);
                    !cancelled.load(Ordering::Relaxed)
                })
            })
        };
        tokio::pin!(fit);
        let trained = loop {
            tokio::select! {
                done = &mut fit => break done,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {
                    let p = f64::from_bits(fraction.load(Ordering::Relaxed));
                    if let Err(e) = self.progress(job, p, &format!("fitting on {n_rows} rows")).await {
                        cancelled.store(true, Ordering::Relaxed);
                        let _ = fit.await;
                        return Err(e);
                    }
                }
            }
        };
        let trained = trained
            .map_err(|e| JobEnd::Failed(format!("training stopped unexpectedly: {e}")))??;
        let params = ModelParameters {
            align,
            model: serde_json::from_str(&trained.params).unwrap_or(serde_json::Value::Null),
            source: "train".into(),
        };
        let metrics = windows.record(&trained.metrics, excluded, added);
        let by = if request.requested_by.is_empty() {
            "train-job".to_owned()
        } else {
            request.requested_by.clone()
        };
        let activation = request.activate.then(|| Activation {
            by,
            at: Timestamp::now(),
            machine: Some(machine.clone()),
        });
        let (record, _) = self
            .store
            .register_trained_model(
                job.id,
                &NewModel {
                    machine: machine.clone(),
                    kind: trained.kind,
                    trained_from: request.from,
                    trained_to: request.to,
                    parameters: params.to_json(),
                    metrics,
                    bytes: trained.bytes,
                },
                activation.as_ref(),
                Timestamp::now(),
            )
            .await?;
        tracing::info!(%machine, model = %record.id, version = record.version, activated = request.activate, "model trained");
        if request.activate {
            if let Some(live) = &self.live {
                live.reload(&machine).await;
            }
        }
        Ok(())
    }

    /// The machine's sensors that have readings in the range, by key.
    async fn channels_with_data(
        &self,
        machine: &MachineKey,
        request: &TrainRequest,
    ) -> Result<Vec<SensorKey>, JobEnd> {
        let sensors = self.store.list_sensors(machine).await?;
        let mut channels = Vec::new();
        for s in sensors {
            let q = crate::model::RangeQuery {
                machine: machine.clone(),
                sensor: s.key.clone(),
                from: request.from,
                to: request.to,
                limit: 1,
            };
            if !self.store.raw(&q).await?.is_empty() {
                channels.push(s.key);
            }
        }
        channels.sort();
        if channels.is_empty() {
            return Err(JobEnd::Failed(format!(
                "{machine} has no readings in {}..{}",
                request.from.as_millis(),
                request.to.as_millis()
            )));
        }
        Ok(channels)
    }

    /// Reads the range page by page into aligned segments (a stale condition ends a segment).
    /// The aligned rows of `machine` in `[range.0, range.1)`, without those in `excluded`
    /// (each of which ends a segment); with how many rows were left out.
    async fn read_rows(
        &self,
        job: &Job,
        machine: &MachineKey,
        range: (Timestamp, Timestamp),
        align: &AlignConfig,
        excluded: &[(Timestamp, Timestamp)],
    ) -> Result<(TrainingRows, usize), JobEnd> {
        let request = &ReadRange {
            from: range.0,
            to: range.1,
        };
        let mut left_out = 0usize;
        let mut aligner = Aligner::new(align.clone()).map_err(|e| JobEnd::Failed(e.to_string()))?;
        let n_cols = align.channels.len();
        let mut rows = TrainingRows {
            n_cols,
            segments: vec![Vec::new()],
        };
        let mut out = Vec::new();
        let mut cursor = request.from;
        let mut skip = 0usize;
        let span = (request.to.as_millis() as f64 - request.from.as_millis() as f64).max(1.0);
        let mut pages = 0u32;
        loop {
            let q = MachineRangeQuery {
                machine: machine.clone(),
                from: cursor,
                to: request.to,
                limit: PAGE,
            };
            let page = self.store.machine_readings(&q).await?;
            let full = page.len() == PAGE as usize;
            let last_ts = page.last().map(|r| r.ts);
            let fresh = &page[skip.min(page.len())..];
            if fresh.is_empty() && full {
                // One instant holds more than a page: what is left of it cannot be read by
                // timestamp; go on from the next instant.
                cursor = cursor.add_millis(1);
                skip = 0;
                continue;
            }
            aligner.push_batch(fresh, &mut out);
            left_out += add_to_segments(&mut rows, out.drain(..), excluded);
            pages += 1;
            match (full, last_ts) {
                (true, Some(ts)) => {
                    let at_ts = fresh.iter().rev().take_while(|r| r.ts == ts).count();
                    skip = if ts == cursor {
                        skip + fresh.len()
                    } else {
                        at_ts
                    };
                    cursor = ts;
                    if pages % 4 == 0 {
                        let done = (ts.as_millis() as f64 - request.from.as_millis() as f64) / span;
                        self.progress(job, 0.5 * done, "reading the training range")
                            .await?;
                    }
                }
                _ => break,
            }
        }
        rows.segments.retain(|s| !s.is_empty());
        Ok((rows, left_out))
    }
}

/// The range [`JobRunner::read_rows`] reads.
struct ReadRange {
    from: Timestamp,
    to: Timestamp,
}

/// The labelled windows of a machine's alarms, as a training uses them.
struct LabelWindows {
    /// Left out of "normal": true faults and planned work.
    excluded: Vec<(Timestamp, Timestamp)>,
    /// Learnt as normal: false alarms.
    normal: Vec<(Timestamp, Timestamp)>,
    /// The alarm ids by label, for the model's record.
    seen: serde_json::Map<String, serde_json::Value>,
}

impl LabelWindows {
    fn new(labelled: &[(MachineKey, crate::store::LabelledAlarm)], lead_ms: i64) -> Self {
        use crate::workorder::Label;
        let mut w = LabelWindows {
            excluded: Vec::new(),
            normal: Vec::new(),
            seen: serde_json::Map::new(),
        };
        for (_, a) in labelled {
            // From `lead_ms` before it was raised to one millisecond past its end (half open).
            let window = (a.opened_at.add_millis(-lead_ms), a.ended_at.add_millis(1));
            match a.label {
                Label::TrueFault | Label::PlannedWork => w.excluded.push(window),
                Label::FalseAlarm => w.normal.push(window),
                Label::Unknown => {}
            }
            if let serde_json::Value::Array(ids) = w
                .seen
                .entry(a.label.as_str())
                .or_insert_with(|| serde_json::Value::Array(Vec::new()))
            {
                ids.push(serde_json::Value::from(a.alarm.0));
            }
        }
        w
    }

    /// The parts of the false-alarm windows outside `[from, to)`, in time order, not
    /// overlapping each other.
    fn outside(&self, from: Timestamp, to: Timestamp) -> Vec<(Timestamp, Timestamp)> {
        let mut parts = Vec::new();
        for &(a, b) in &self.normal {
            if a < from {
                parts.push((a, b.min(from)));
            }
            if b > to {
                parts.push((a.max(to), b));
            }
        }
        parts.sort();
        let mut merged: Vec<(Timestamp, Timestamp)> = Vec::new();
        for (a, b) in parts {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        merged
    }

    /// `metrics` (the detector's JSON object) with what the training learnt from labels:
    /// `labels` (alarm ids by label), `rows_left_out` (in fault or planned-work windows) and
    /// `rows_added` (from false-alarm windows outside the range).
    fn record(&self, metrics: &str, left_out: usize, added: usize) -> String {
        let mut m = match serde_json::from_str::<serde_json::Value>(metrics) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        m.insert(
            "labels".into(),
            serde_json::Value::Object(self.seen.clone()),
        );
        m.insert("rows_left_out".into(), left_out.into());
        m.insert("rows_added".into(), added.into());
        serde_json::Value::Object(m).to_string()
    }
}

/// For tests and embedders: the training rows of `readings` as the job forms them.
pub fn training_rows(
    readings: &[crate::model::Reading],
    align: &AlignConfig,
) -> crate::config::ConfigResult<TrainingRows> {
    let mut aligner = Aligner::new(align.clone())?;
    let mut out = Vec::new();
    aligner.push_batch(readings, &mut out);
    let mut rows = TrainingRows {
        n_cols: align.channels.len(),
        segments: Vec::new(),
    };
    add_to_segments(&mut rows, out.into_iter(), &[]);
    rows.segments.retain(|s| !s.is_empty());
    Ok(rows)
}

/// Appends `items` to `rows`: a stale condition, or a row in one of `excluded` (left out and
/// counted), ends the current segment. Returns how many rows were left out.
fn add_to_segments(
    rows: &mut TrainingRows,
    items: impl Iterator<Item = Aligned>,
    excluded: &[(Timestamp, Timestamp)],
) -> usize {
    let mut left_out = 0;
    for item in items {
        match item {
            Aligned::Row(r) if excluded.iter().any(|(a, b)| *a <= r.ts && r.ts < *b) => {
                left_out += 1;
                if rows.segments.last().is_some_and(|s| !s.is_empty()) {
                    rows.segments.push(Vec::new());
                }
            }
            Aligned::Row(r) => match rows.segments.last_mut() {
                Some(last) => last.extend_from_slice(&r.values),
                None => rows.segments.push(r.values),
            },
            Aligned::Stale(_) => {
                if rows.segments.last().is_some_and(|s| !s.is_empty()) {
                    rows.segments.push(Vec::new());
                }
            }
        }
    }
    left_out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Reading;

    #[test]
    fn a_gap_in_the_data_ends_a_training_segment() {
        let machine = MachineKey::new("m").unwrap();
        let (a, b) = (SensorKey::new("a").unwrap(), SensorKey::new("b").unwrap());
        let align = AlignConfig {
            channels: vec![a.clone(), b.clone()],
            sample_period_ms: 1_000,
            max_gap_ms: 2_000,
        };
        let reading = |s: &SensorKey, t: i64| Reading {
            machine: machine.clone(),
            sensor: s.clone(),
            ts: Timestamp::from_millis(t * 1_000),
            value: t as f64,
        };
        // Seconds 0..10, nothing for a minute, then 70..80.
        let readings: Vec<Reading> = (0..10)
            .chain(70..80)
            .flat_map(|t| [reading(&a, t), reading(&b, t)])
            .collect();
        let rows = training_rows(&readings, &align).unwrap();
        assert_eq!(rows.n_cols, 2);
        assert_eq!(rows.segments.len(), 2, "{rows:?}");
        // The first segment holds rows 0..=9 and the values carried forward over the gap's
        // first `max_gap_ms`; the second starts at 70 and ends before the open instant 79.
        assert_eq!(&rows.segments[0][..4], &[0.0, 0.0, 1.0, 1.0]);
        assert_eq!(rows.segments[1][..2], [70.0, 70.0]);
        assert_eq!(rows.segments[1].len(), 9 * 2);
        assert_eq!(
            rows.n_rows(),
            rows.segments.iter().map(|s| s.len() / 2).sum::<usize>()
        );
    }
}
