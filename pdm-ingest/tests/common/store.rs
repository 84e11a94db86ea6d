//! A real SQLite store (pdm-store, a dev-dependency) in a temporary directory, for the tests of
//! this crate's own logic (sources, intake, simulator), with one thing a real database cannot do
//! on demand: failing writes (non-transiently) while a test says so. Everything else is the
//! SQLite backend that the conformance suite in pdm-store checks.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use pdm_core::alarm::AlarmEventKind;
use pdm_core::attachment::{Attachment, AttachmentId, AttachmentOwner, NewAttachment};
use pdm_core::store::{
    AccessStore, ApiToken, ApiTokenId, AttemptRecord, Delivery, DeliveryAttempt, DeliveryQuery,
    EndpointChange, NewApiToken, NewDelivery, NewSession, NewUser, NewWebhook, NextStep, Role,
    Rotation, Session, SessionId, TokenHash, User, UserId, UserUpdate, Webhook, WebhookId,
    WebhookStore, WebhookUpdate,
};
use pdm_core::store::{WorkOrderEvent, WorkOrderQuery, WorkOrderStore};
use pdm_core::workorder::{Code, CodeKind, NewWorkOrder, WorkOrder, WorkOrderId};
use pdm_core::{
    Activation, AlarmEventRecord, AlarmId, AlarmQuery, AlarmRuleRecord, AlarmStore,
    AlarmTransition, Batch, Bucket, DeadLetter, DeadLetterPrune, DeadLetterQuery, DeadLetterStore,
    Job, JobId, JobOutcome, JobQuery, JobStore, Latest, Machine, MachineKey, MachineRangeQuery,
    MachineStore, MachineUpdate, ModelId, ModelQuery, ModelRecord, ModelStore, NewAlarmRule,
    NewJob, NewMachine, NewModel, NewSensor, OutboxEntry, Point, Prediction, PredictionBucket,
    PredictionQuery, PredictionStore, RangeQuery, Reading, Sensor, SensorKey, SensorStore,
    SensorUpdate, ServiceNote, Store, StoreError, StoreResult, StoredAlarm, StoredAlarmEvent,
    StoredDeadLetter, TelemetryStore, Timestamp, WriteOutcome,
};

/// A SQLite store in a temporary directory that can be told to fail writes.
pub struct TestStore {
    store: Arc<dyn Store>,
    fail_writes: AtomicBool,
    write_attempts: AtomicU64,
    writes_ok: AtomicU64,
    _dir: tempfile::TempDir,
}

impl TestStore {
    /// An empty, migrated store.
    pub async fn new() -> Arc<Self> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("pdm.db").display());
        let store = pdm_store::connect(&url, &pdm_store::StoreOptions::default())
            .await
            .expect("SQLite store opens");
        Arc::new(Self {
            store,
            fail_writes: AtomicBool::new(false),
            write_attempts: AtomicU64::new(0),
            writes_ok: AtomicU64::new(0),
            _dir: dir,
        })
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

    /// Every stored reading of `machine` as (sensor, ts, value), ordered by sensor then time;
    /// empty for an unknown machine.
    pub async fn readings_of(&self, machine: &str) -> Vec<(String, i64, f64)> {
        let Ok(key) = MachineKey::new(machine) else {
            return Vec::new();
        };
        let Ok(sensors) = self.store.list_sensors(&key).await else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for s in sensors {
            let q = RangeQuery {
                machine: key.clone(),
                sensor: s.key.clone(),
                from: Timestamp::from_millis(i64::MIN),
                to: Timestamp::from_millis(i64::MAX),
                limit: u32::MAX,
            };
            let points = self.store.raw(&q).await.expect("raw readings");
            out.extend(
                points
                    .into_iter()
                    .map(|p| (s.key.to_string(), p.ts.as_millis(), p.value)),
            );
        }
        out
    }

    /// Every stored reading.
    pub async fn total_readings(&self) -> usize {
        let mut total = 0;
        for m in self.store.list_machines().await.expect("machines") {
            total += self.store.count_readings(&m.key).await.expect("count") as usize;
        }
        total
    }

    /// Every stored dead letter, oldest first.
    pub async fn all_dead_letters(&self) -> Vec<DeadLetter> {
        let q = DeadLetterQuery {
            before: None,
            machine: None,
            kind: None,
            limit: u32::MAX,
        };
        let mut letters = self.store.dead_letters(&q).await.expect("dead letters");
        letters.reverse();
        letters.into_iter().map(|d| d.letter).collect()
    }

    /// Registers a machine with the given sensors (and plausible ranges).
    pub async fn seed_machine(&self, machine: &str, sensors: &[(&str, Option<f64>, Option<f64>)]) {
        let key = MachineKey::new(machine).expect("valid machine key");
        self.store.ensure_machine(&key).await.expect("machine");
        for (s, min, max) in sensors {
            let sensor = NewSensor {
                key: SensorKey::new(s).expect("valid sensor key"),
                unit: None,
                min: *min,
                max: *max,
            };
            self.store
                .create_sensor(&key, &sensor)
                .await
                .expect("sensor");
        }
    }
}

#[async_trait]
impl TelemetryStore for TestStore {
    async fn write(&self, batch: &Batch) -> StoreResult<WriteOutcome> {
        self.write_attempts.fetch_add(1, Ordering::SeqCst);
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("injected write failure".into()));
        }
        let outcome = self.store.write(batch).await?;
        self.writes_ok.fetch_add(1, Ordering::SeqCst);
        Ok(outcome)
    }
    async fn raw(&self, q: &RangeQuery) -> StoreResult<Vec<Point>> {
        self.store.raw(q).await
    }
    async fn buckets(&self, q: &RangeQuery, width_ms: i64) -> StoreResult<Vec<Bucket>> {
        self.store.buckets(q, width_ms).await
    }
    async fn machine_readings(&self, q: &MachineRangeQuery) -> StoreResult<Vec<Reading>> {
        self.store.machine_readings(q).await
    }
    async fn latest(&self, machine: &MachineKey) -> StoreResult<Vec<Latest>> {
        self.store.latest(machine).await
    }
    async fn count_readings(&self, machine: &MachineKey) -> StoreResult<u64> {
        self.store.count_readings(machine).await
    }
    async fn prune_dead_letters(&self, p: &DeadLetterPrune) -> StoreResult<u64> {
        self.store.prune_dead_letters(p).await
    }
    async fn prune_readings(&self, before: Timestamp) -> StoreResult<u64> {
        self.store.prune_readings(before).await
    }
    async fn ping(&self) -> StoreResult<()> {
        self.store.ping().await
    }
    fn write_concurrency(&self) -> usize {
        self.store.write_concurrency()
    }
}

#[async_trait]
impl MachineStore for TestStore {
    async fn create_machine(&self, m: &NewMachine) -> StoreResult<Machine> {
        self.store.create_machine(m).await
    }
    async fn ensure_machine(&self, key: &MachineKey) -> StoreResult<Machine> {
        self.store.ensure_machine(key).await
    }
    async fn get_machine(&self, key: &MachineKey) -> StoreResult<Machine> {
        self.store.get_machine(key).await
    }
    async fn list_machines(&self) -> StoreResult<Vec<Machine>> {
        self.store.list_machines().await
    }

    async fn machines_after(
        &self,
        after: Option<&MachineKey>,
        limit: u32,
    ) -> StoreResult<Vec<Machine>> {
        self.store.machines_after(after, limit).await
    }
    async fn update_machine(&self, key: &MachineKey, u: &MachineUpdate) -> StoreResult<Machine> {
        self.store.update_machine(key, u).await
    }
    async fn delete_machine(&self, key: &MachineKey) -> StoreResult<()> {
        self.store.delete_machine(key).await
    }
}

#[async_trait]
impl SensorStore for TestStore {
    async fn create_sensor(&self, machine: &MachineKey, s: &NewSensor) -> StoreResult<Sensor> {
        self.store.create_sensor(machine, s).await
    }
    async fn ensure_sensor(&self, machine: &MachineKey, key: &SensorKey) -> StoreResult<Sensor> {
        self.store.ensure_sensor(machine, key).await
    }
    async fn get_sensor(&self, machine: &MachineKey, key: &SensorKey) -> StoreResult<Sensor> {
        self.store.get_sensor(machine, key).await
    }
    async fn list_sensors(&self, machine: &MachineKey) -> StoreResult<Vec<Sensor>> {
        self.store.list_sensors(machine).await
    }
    async fn list_all_sensors(&self) -> StoreResult<Vec<Sensor>> {
        self.store.list_all_sensors().await
    }
    async fn update_sensor(
        &self,
        machine: &MachineKey,
        key: &SensorKey,
        u: &SensorUpdate,
    ) -> StoreResult<Sensor> {
        self.store.update_sensor(machine, key, u).await
    }
    async fn delete_sensor(&self, machine: &MachineKey, key: &SensorKey) -> StoreResult<()> {
        self.store.delete_sensor(machine, key).await
    }
}

#[async_trait]
impl DeadLetterStore for TestStore {
    async fn dead_letters(&self, q: &DeadLetterQuery) -> StoreResult<Vec<StoredDeadLetter>> {
        self.store.dead_letters(q).await
    }
}

#[async_trait]
impl ModelStore for TestStore {
    async fn create_model(&self, m: &NewModel) -> StoreResult<ModelRecord> {
        self.store.create_model(m).await
    }
    async fn get_model(&self, id: ModelId) -> StoreResult<ModelRecord> {
        self.store.get_model(id).await
    }
    async fn model_bytes(&self, id: ModelId) -> StoreResult<Vec<u8>> {
        self.store.model_bytes(id).await
    }
    async fn list_models(&self, q: &ModelQuery) -> StoreResult<Vec<ModelRecord>> {
        self.store.list_models(q).await
    }
    async fn active_model(&self, machine: &MachineKey) -> StoreResult<Option<ModelRecord>> {
        self.store.active_model(machine).await
    }
    async fn register_trained_model(
        &self,
        job: JobId,
        m: &NewModel,
        activate: Option<&Activation>,
        at: Timestamp,
    ) -> StoreResult<(ModelRecord, Job)> {
        self.store
            .register_trained_model(job, m, activate, at)
            .await
    }
    async fn activate_model(&self, id: ModelId, a: &Activation) -> StoreResult<ModelRecord> {
        self.store.activate_model(id, a).await
    }
}

#[async_trait]
impl PredictionStore for TestStore {
    async fn write_predictions(&self, predictions: &[Prediction]) -> StoreResult<u64> {
        self.store.write_predictions(predictions).await
    }
    async fn predictions(&self, q: &PredictionQuery) -> StoreResult<Vec<Prediction>> {
        self.store.predictions(q).await
    }
    async fn prediction_buckets(
        &self,
        q: &PredictionQuery,
        width_ms: i64,
    ) -> StoreResult<Vec<PredictionBucket>> {
        self.store.prediction_buckets(q, width_ms).await
    }
    async fn last_prediction(&self, machine: &MachineKey) -> StoreResult<Option<Timestamp>> {
        self.store.last_prediction(machine).await
    }
    async fn prune_predictions(&self, before: Timestamp) -> StoreResult<u64> {
        self.store.prune_predictions(before).await
    }
}

#[async_trait]
impl AlarmStore for TestStore {
    async fn open_alarm(
        &self,
        machine: &MachineKey,
        rule_id: &str,
    ) -> StoreResult<Option<StoredAlarm>> {
        self.store.open_alarm(machine, rule_id).await
    }
    async fn record_transition(&self, t: &AlarmTransition) -> StoreResult<StoredAlarm> {
        self.store.record_transition(t).await
    }
    async fn get_alarm(&self, id: AlarmId) -> StoreResult<StoredAlarm> {
        self.store.get_alarm(id).await
    }
    async fn alarm_events(&self, id: AlarmId) -> StoreResult<Vec<StoredAlarmEvent>> {
        self.store.alarm_events(id).await
    }
    async fn list_alarms(&self, q: &AlarmQuery) -> StoreResult<Vec<StoredAlarm>> {
        self.store.list_alarms(q).await
    }
    async fn alarm_events_between(
        &self,
        from: Timestamp,
        to: Timestamp,
        kinds: &[AlarmEventKind],
    ) -> StoreResult<Vec<AlarmEventRecord>> {
        self.store.alarm_events_between(from, to, kinds).await
    }
    async fn alarms_open_at(&self, at: Timestamp) -> StoreResult<Vec<StoredAlarm>> {
        self.store.alarms_open_at(at).await
    }
    async fn put_rule(&self, rule: &NewAlarmRule) -> StoreResult<AlarmRuleRecord> {
        self.store.put_rule(rule).await
    }
    async fn delete_rule(&self, machine: Option<&MachineKey>, rule_id: &str) -> StoreResult<bool> {
        self.store.delete_rule(machine, rule_id).await
    }
    async fn list_rules(&self, machine: Option<&MachineKey>) -> StoreResult<Vec<AlarmRuleRecord>> {
        self.store.list_rules(machine).await
    }
    async fn put_out_of_service(&self, note: &ServiceNote) -> StoreResult<Option<ServiceNote>> {
        self.store.put_out_of_service(note).await
    }
    async fn clear_out_of_service(&self, machine: &MachineKey) -> StoreResult<Option<ServiceNote>> {
        self.store.clear_out_of_service(machine).await
    }
    async fn out_of_service(&self, machine: Option<&MachineKey>) -> StoreResult<Vec<ServiceNote>> {
        self.store.out_of_service(machine).await
    }
    async fn pending_outbox(&self, limit: u32) -> StoreResult<Vec<OutboxEntry>> {
        self.store.pending_outbox(limit).await
    }
    async fn mark_delivered(&self, ids: &[i64], at: Timestamp) -> StoreResult<u64> {
        self.store.mark_delivered(ids, at).await
    }
}

#[async_trait]
impl WebhookStore for TestStore {
    async fn create_webhook(&self, w: &NewWebhook) -> StoreResult<Webhook> {
        self.store.create_webhook(w).await
    }
    async fn get_webhook(&self, id: WebhookId) -> StoreResult<Webhook> {
        self.store.get_webhook(id).await
    }
    async fn list_webhooks(&self) -> StoreResult<Vec<Webhook>> {
        self.store.list_webhooks().await
    }

    async fn webhooks_after(
        &self,
        after: Option<WebhookId>,
        limit: u32,
    ) -> StoreResult<Vec<Webhook>> {
        self.store.webhooks_after(after, limit).await
    }
    async fn update_webhook(&self, id: WebhookId, u: &WebhookUpdate) -> StoreResult<Webhook> {
        self.store.update_webhook(id, u).await
    }
    async fn delete_webhook(&self, id: WebhookId) -> StoreResult<bool> {
        self.store.delete_webhook(id).await
    }
    async fn rotate_secret(
        &self,
        id: WebhookId,
        secret: &str,
        previous_expires_at: Timestamp,
    ) -> StoreResult<Webhook> {
        self.store
            .rotate_secret(id, secret, previous_expires_at)
            .await
    }
    async fn fan_out(
        &self,
        outbox_id: i64,
        deliveries: &[NewDelivery],
        at: Timestamp,
    ) -> StoreResult<u64> {
        self.store.fan_out(outbox_id, deliveries, at).await
    }
    async fn create_delivery(
        &self,
        d: &NewDelivery,
        at: Timestamp,
        claimed_until: Timestamp,
    ) -> StoreResult<Delivery> {
        self.store.create_delivery(d, at, claimed_until).await
    }
    async fn claim_due(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>> {
        self.store.claim_due(now, lease_until, limit).await
    }
    async fn claim_probe(
        &self,
        webhook: pdm_core::WebhookId,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> StoreResult<Option<Delivery>> {
        self.store.claim_probe(webhook, now, lease_until).await
    }
    async fn record_attempt(
        &self,
        id: i64,
        attempt: &AttemptRecord,
        next: NextStep,
        endpoint: &EndpointChange,
    ) -> StoreResult<Delivery> {
        self.store.record_attempt(id, attempt, next, endpoint).await
    }
    async fn get_delivery(&self, webhook: WebhookId, id: i64) -> StoreResult<Delivery> {
        self.store.get_delivery(webhook, id).await
    }
    async fn list_deliveries(&self, q: &DeliveryQuery) -> StoreResult<Vec<Delivery>> {
        self.store.list_deliveries(q).await
    }
    async fn delivery_attempts(&self, id: i64) -> StoreResult<Vec<DeliveryAttempt>> {
        self.store.delivery_attempts(id).await
    }
    async fn redeliver(&self, webhook: WebhookId, id: i64, at: Timestamp) -> StoreResult<Delivery> {
        self.store.redeliver(webhook, id, at).await
    }
    async fn prune_webhooks(&self, before: Timestamp) -> StoreResult<u64> {
        self.store.prune_webhooks(before).await
    }
}

#[async_trait]
impl AccessStore for TestStore {
    async fn sync_builtin_roles(&self, roles: &[Role]) -> StoreResult<()> {
        self.store.sync_builtin_roles(roles).await
    }
    async fn list_roles(&self) -> StoreResult<Vec<Role>> {
        self.store.list_roles().await
    }
    async fn get_role(&self, name: &str) -> StoreResult<Role> {
        self.store.get_role(name).await
    }
    async fn put_role(&self, role: &Role) -> StoreResult<bool> {
        self.store.put_role(role).await
    }
    async fn delete_role(&self, name: &str) -> StoreResult<()> {
        self.store.delete_role(name).await
    }
    async fn create_user(&self, user: &NewUser, at: Timestamp) -> StoreResult<User> {
        self.store.create_user(user, at).await
    }
    async fn get_user(&self, id: UserId) -> StoreResult<User> {
        self.store.get_user(id).await
    }
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        self.store.user_by_email(email).await
    }
    async fn list_users(&self, after: Option<UserId>, limit: u32) -> StoreResult<Vec<User>> {
        self.store.list_users(after, limit).await
    }
    async fn count_users(&self) -> StoreResult<u64> {
        self.store.count_users().await
    }
    async fn update_user(
        &self,
        id: UserId,
        update: &UserUpdate,
        at: Timestamp,
    ) -> StoreResult<User> {
        self.store.update_user(id, update, at).await
    }
    async fn touch_sign_in(&self, id: UserId, at: Timestamp) -> StoreResult<()> {
        self.store.touch_sign_in(id, at).await
    }
    async fn create_session(&self, s: &NewSession) -> StoreResult<Session> {
        self.store.create_session(s).await
    }
    async fn get_session(&self, id: SessionId) -> StoreResult<Session> {
        self.store.get_session(id).await
    }
    async fn list_sessions(&self, user: UserId, include_ended: bool) -> StoreResult<Vec<Session>> {
        self.store.list_sessions(user, include_ended).await
    }
    async fn rotate_refresh(
        &self,
        presented: &TokenHash,
        next: &TokenHash,
        next_expires_at: Timestamp,
        at: Timestamp,
    ) -> StoreResult<Rotation> {
        self.store
            .rotate_refresh(presented, next, next_expires_at, at)
            .await
    }
    async fn revoke_session(
        &self,
        id: SessionId,
        reason: &str,
        at: Timestamp,
    ) -> StoreResult<bool> {
        self.store.revoke_session(id, reason, at).await
    }
    async fn revoke_user_sessions(
        &self,
        user: UserId,
        reason: &str,
        at: Timestamp,
    ) -> StoreResult<u64> {
        self.store.revoke_user_sessions(user, reason, at).await
    }
    async fn create_reset_token(
        &self,
        user: UserId,
        hash: &TokenHash,
        expires_at: Timestamp,
        at: Timestamp,
    ) -> StoreResult<()> {
        self.store
            .create_reset_token(user, hash, expires_at, at)
            .await
    }
    async fn consume_reset_token(
        &self,
        hash: &TokenHash,
        at: Timestamp,
    ) -> StoreResult<Option<UserId>> {
        self.store.consume_reset_token(hash, at).await
    }
    async fn create_api_token(&self, t: &NewApiToken) -> StoreResult<ApiToken> {
        self.store.create_api_token(t).await
    }
    async fn api_token_by_hash(&self, hash: &TokenHash) -> StoreResult<Option<ApiToken>> {
        self.store.api_token_by_hash(hash).await
    }
    async fn list_api_tokens(&self, machine: Option<&MachineKey>) -> StoreResult<Vec<ApiToken>> {
        self.store.list_api_tokens(machine).await
    }

    async fn api_tokens_after(
        &self,
        after: Option<ApiTokenId>,
        limit: u32,
    ) -> StoreResult<Vec<ApiToken>> {
        self.store.api_tokens_after(after, limit).await
    }
    async fn touch_api_token(&self, id: ApiTokenId, at: Timestamp) -> StoreResult<()> {
        self.store.touch_api_token(id, at).await
    }
    async fn revoke_api_token(&self, id: ApiTokenId, at: Timestamp) -> StoreResult<bool> {
        self.store.revoke_api_token(id, at).await
    }
    async fn record_sign_in_failure(&self, keys: &[String], at: Timestamp) -> StoreResult<()> {
        self.store.record_sign_in_failure(keys, at).await
    }
    async fn sign_in_failures(&self, key: &str, since: Timestamp) -> StoreResult<u64> {
        self.store.sign_in_failures(key, since).await
    }
    async fn prune_access(&self, before: Timestamp) -> StoreResult<u64> {
        self.store.prune_access(before).await
    }
}

#[async_trait]
impl JobStore for TestStore {
    async fn create_job(&self, j: &NewJob) -> StoreResult<Job> {
        self.store.create_job(j).await
    }
    async fn get_job(&self, id: JobId) -> StoreResult<Job> {
        self.store.get_job(id).await
    }
    async fn list_jobs(&self, q: &JobQuery) -> StoreResult<Vec<Job>> {
        self.store.list_jobs(q).await
    }
    async fn claim_next_job(&self, worker: &str, at: Timestamp) -> StoreResult<Option<Job>> {
        self.store.claim_next_job(worker, at).await
    }
    async fn update_progress(
        &self,
        id: JobId,
        progress: f64,
        message: Option<&str>,
    ) -> StoreResult<Job> {
        self.store.update_progress(id, progress, message).await
    }
    async fn finish_job(&self, id: JobId, outcome: &JobOutcome, at: Timestamp) -> StoreResult<Job> {
        self.store.finish_job(id, outcome, at).await
    }
    async fn cancel_job(&self, id: JobId, reason: &str, at: Timestamp) -> StoreResult<Job> {
        self.store.cancel_job(id, reason, at).await
    }
    async fn fail_running_jobs(
        &self,
        worker: &str,
        reason: &str,
        at: Timestamp,
    ) -> StoreResult<u64> {
        self.store.fail_running_jobs(worker, reason, at).await
    }
}

#[async_trait]
impl WorkOrderStore for TestStore {
    async fn create_work_order(&self, w: &NewWorkOrder) -> StoreResult<WorkOrder> {
        self.store.create_work_order(w).await
    }

    async fn get_work_order(&self, id: WorkOrderId) -> StoreResult<WorkOrder> {
        self.store.get_work_order(id).await
    }

    async fn list_work_orders(&self, q: &WorkOrderQuery) -> StoreResult<Vec<WorkOrder>> {
        self.store.list_work_orders(q).await
    }

    async fn update_work_order(
        &self,
        next: &WorkOrder,
        actor: &str,
        changes: &serde_json::Value,
    ) -> StoreResult<WorkOrder> {
        self.store.update_work_order(next, actor, changes).await
    }

    async fn work_order_history(&self, id: WorkOrderId) -> StoreResult<Vec<WorkOrderEvent>> {
        self.store.work_order_history(id).await
    }

    async fn alarm_work_orders(&self, alarm: AlarmId) -> StoreResult<Vec<WorkOrderId>> {
        self.store.alarm_work_orders(alarm).await
    }

    async fn labelled_alarms(
        &self,
        machine: Option<&MachineKey>,
    ) -> StoreResult<Vec<(MachineKey, pdm_core::store::LabelledAlarm)>> {
        self.store.labelled_alarms(machine).await
    }

    async fn list_codes(&self, kind: Option<CodeKind>) -> StoreResult<Vec<Code>> {
        self.store.list_codes(kind).await
    }

    async fn put_code(&self, code: &Code) -> StoreResult<bool> {
        self.store.put_code(code).await
    }

    async fn seed_codes(&self, codes: &[Code]) -> StoreResult<bool> {
        self.store.seed_codes(codes).await
    }
}

#[async_trait]
impl pdm_core::store::AuditStore for TestStore {
    async fn record_audit(&self, e: &pdm_core::store::NewAuditEntry) -> StoreResult<i64> {
        self.store.record_audit(e).await
    }

    async fn list_audit(
        &self,
        q: &pdm_core::store::AuditQuery,
    ) -> StoreResult<Vec<pdm_core::store::AuditEntry>> {
        self.store.list_audit(q).await
    }

    async fn prune_audit(&self, before: Timestamp) -> StoreResult<u64> {
        self.store.prune_audit(before).await
    }
}

#[async_trait]
impl pdm_core::store::CommentStore for TestStore {
    async fn add_comment(
        &self,
        c: &pdm_core::comment::NewComment,
    ) -> StoreResult<pdm_core::comment::Comment> {
        self.store.add_comment(c).await
    }

    async fn get_comment(
        &self,
        id: pdm_core::comment::CommentId,
    ) -> StoreResult<pdm_core::comment::Comment> {
        self.store.get_comment(id).await
    }

    async fn list_comments(
        &self,
        target: pdm_core::comment::CommentTarget,
    ) -> StoreResult<Vec<pdm_core::comment::Comment>> {
        self.store.list_comments(target).await
    }

    async fn edit_comment(
        &self,
        id: pdm_core::comment::CommentId,
        body: &str,
        at: Timestamp,
    ) -> StoreResult<pdm_core::comment::Comment> {
        self.store.edit_comment(id, body, at).await
    }

    async fn delete_comment(&self, id: pdm_core::comment::CommentId) -> StoreResult<bool> {
        self.store.delete_comment(id).await
    }
}

#[async_trait]
impl pdm_core::store::AttachmentStore for TestStore {
    async fn add_attachment(&self, a: &NewAttachment) -> StoreResult<Attachment> {
        self.store.add_attachment(a).await
    }

    async fn get_attachment(&self, id: AttachmentId) -> StoreResult<Attachment> {
        self.store.get_attachment(id).await
    }

    async fn list_attachments(&self, owner: AttachmentOwner) -> StoreResult<Vec<Attachment>> {
        self.store.list_attachments(owner).await
    }

    async fn delete_attachment(&self, id: AttachmentId) -> StoreResult<bool> {
        self.store.delete_attachment(id).await
    }

    async fn attachment_usage(&self) -> StoreResult<pdm_core::attachment::Usage> {
        self.store.attachment_usage().await
    }

    async fn attachment_files(&self) -> StoreResult<Vec<String>> {
        self.store.attachment_files().await
    }

    async fn machine_attachment_files(&self, machine: &MachineKey) -> StoreResult<Vec<String>> {
        self.store.machine_attachment_files(machine).await
    }
}

#[async_trait]
impl pdm_core::store::SettingsStore for TestStore {
    async fn settings(&self) -> StoreResult<Option<pdm_core::store::StoredSettings>> {
        self.store.settings().await
    }

    async fn put_settings(
        &self,
        doc: &serde_json::Value,
        expected: i64,
        by: &str,
        at: Timestamp,
    ) -> StoreResult<pdm_core::store::StoredSettings> {
        self.store.put_settings(doc, expected, by, at).await
    }
}

#[async_trait]
impl pdm_core::store::OverviewStore for TestStore {
    async fn overview_counts(
        &self,
        now: Timestamp,
        since: Timestamp,
    ) -> StoreResult<pdm_core::store::OverviewCounts> {
        self.store.overview_counts(now, since).await
    }

    async fn latest_predictions(&self) -> StoreResult<Vec<pdm_core::store::LatestPrediction>> {
        self.store.latest_predictions().await
    }
}
