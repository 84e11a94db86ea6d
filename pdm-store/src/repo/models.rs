//! [`ModelStore`] on both backends.
//!
//! Registering and activating lock the machine's row first (`Backend::LOCK_ROWS`; on SQLite
//! the write transaction holds the one write lock), so that the version numbers of one machine
//! and its one active model are decided by one transaction at a time. The partial unique index
//! `models_one_active` guards the second rule in the database as well.

use async_trait::async_trait;
use pdm_core::{
    Activation, Job, JobId, JobOutcome, JobStatus, MachineKey, ModelId, ModelQuery, ModelRecord,
    ModelStatus, ModelStore, NewModel, StoreError, StoreResult, Timestamp,
};

use crate::common;
use crate::error::{db, is_unique_violation};
use crate::repo::jobs;
use crate::sql::{end_tx, Arg, Backend, Cols, ListQuery, On, SqlStore};

/// The columns [`record`] decodes, of `models mo JOIN machines m` (see [`FROM`]).
fn columns<B: Backend>() -> String {
    format!(
        "mo.id, m.key, mo.kind, mo.version, {}, {}, {}, mo.parameters, mo.metrics, \
         CAST(length(mo.bytes) AS BIGINT), mo.status, mo.activated_by, {}",
        B::millis("mo.created_at"),
        B::millis("mo.trained_from"),
        B::millis("mo.trained_to"),
        B::millis("mo.activated_at"),
    )
}

/// The tables [`columns`] reads.
const FROM: &str = "models mo JOIN machines m ON m.id = mo.machine_id";

/// A model from [`columns`].
fn record(row: &impl Cols) -> StoreResult<ModelRecord> {
    let id = ModelId(row.int(0)?);
    let status = row.text(10)?;
    Ok(ModelRecord {
        id,
        machine: common::key(row.text(1)?)?,
        kind: row.text(2)?,
        version: row.int(3)?,
        created_at: Timestamp::from_millis(row.int(4)?),
        trained_from: Timestamp::from_millis(row.int(5)?),
        trained_to: Timestamp::from_millis(row.int(6)?),
        parameters: row.text(7)?,
        metrics: row.text(8)?,
        size_bytes: common::count(row.int(9)?),
        status: ModelStatus::parse(&status).ok_or_else(|| {
            StoreError::Backend(format!("model {id} has unknown status '{status}'").into())
        })?,
        activated_by: row.opt_text(11)?,
        activated_at: row.opt_int(12)?.map(Timestamp::from_millis),
    })
}

fn model_not_found(id: ModelId) -> StoreError {
    StoreError::NotFound(format!("model {id}"))
}

/// Rejects a model no backend could store faithfully, naming the field.
fn check_new<B: Backend>(m: &NewModel) -> StoreResult<()> {
    if m.kind.trim().is_empty() {
        return Err(StoreError::Invalid("model kind is empty".into()));
    }
    for (name, t) in [
        ("trained_from", m.trained_from),
        ("trained_to", m.trained_to),
    ] {
        let ms = t.as_millis();
        if B::clamp_millis(ms) != ms {
            return Err(StoreError::Invalid(format!(
                "{name} ({ms} ms) is outside the range this database can store"
            )));
        }
    }
    if m.trained_to < m.trained_from {
        return Err(StoreError::Invalid(format!(
            "trained_to ({} ms) is before trained_from ({} ms)",
            m.trained_to.as_millis(),
            m.trained_from.as_millis()
        )));
    }
    Ok(())
}

/// The model `id` read on `on` (inside a transaction: what it wrote).
async fn read_on<B: Backend>(on: &mut On<'_, B::Db>, id: i64) -> StoreResult<ModelRecord> {
    let sql = format!("SELECT {} FROM {FROM} WHERE mo.id = $1", columns::<B>());
    let row = on
        .fetch_optional(&sql, &[Arg::Int(id)])
        .await
        .map_err(db)?
        .ok_or_else(|| model_not_found(ModelId(id)))?;
    record(&row)
}

impl<B: Backend> SqlStore<B> {
    /// [`ModelStore::create_model`] on `on`, a write transaction.
    async fn create_model_on(on: &mut On<'_, B::Db>, m: &NewModel) -> StoreResult<ModelRecord> {
        check_new::<B>(m)?;
        let lock = format!("SELECT id FROM machines WHERE key = $1{}", B::LOCK_ROWS);
        // The next version is read and used by one statement, after the machine's row is
        // locked: concurrent registrations for one machine take turns.
        let insert = format!(
            "INSERT INTO models \
                 (machine_id, version, kind, trained_from, trained_to, parameters, metrics, bytes) \
             SELECT $1, coalesce(max(version), 0) + 1, $2, {}, {}, $5, $6, $7 \
             FROM models WHERE machine_id = $1 RETURNING id",
            B::at_millis("$3"),
            B::at_millis("$4"),
        );
        let machine_id = on
            .fetch_optional(&lock, &[Arg::Text(m.machine.as_str())])
            .await
            .map_err(db)?
            .ok_or_else(|| common::machine_not_found(&m.machine))?
            .int(0)?;
        let args = [
            Arg::Int(machine_id),
            Arg::Text(&m.kind),
            Arg::Int(m.trained_from.as_millis()),
            Arg::Int(m.trained_to.as_millis()),
            Arg::Text(&m.parameters),
            Arg::Text(&m.metrics),
            Arg::Bytes(&m.bytes),
        ];
        let id = on
            .fetch_optional(&insert, &args)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!(
                        "a concurrent registration took the next version of machine '{}'",
                        m.machine
                    ))
                } else {
                    db(e)
                }
            })?
            .ok_or_else(|| StoreError::Backend("INSERT ... RETURNING returned no row".into()))?
            .int(0)?;
        read_on::<B>(on, id).await
    }

    /// [`ModelStore::activate_model`] on `on`, a write transaction.
    async fn activate_model_on(
        on: &mut On<'_, B::Db>,
        id: ModelId,
        a: &Activation,
    ) -> StoreResult<ModelRecord> {
        let before = read_on::<B>(on, id.0).await?;
        if let Some(machine) = &a.machine {
            if *machine != before.machine {
                return Err(StoreError::Conflict(format!(
                    "model {id} belongs to machine '{}', not '{machine}'",
                    before.machine
                )));
            }
        }
        // Concurrent activations on this machine wait here for each other; the status is
        // read again after the lock, by a statement that sees what they committed.
        let machine_id = on
            .fetch_optional(
                &format!("SELECT id FROM machines WHERE key = $1{}", B::LOCK_ROWS),
                &[Arg::Text(before.machine.as_str())],
            )
            .await
            .map_err(db)?
            .ok_or_else(|| model_not_found(id))?
            .int(0)?;
        let current = read_on::<B>(on, id.0).await?;
        if current.status == ModelStatus::Active {
            return Ok(current);
        }
        let conflict = |e: sqlx::Error| {
            if is_unique_violation(&e) {
                StoreError::Conflict(format!(
                    "another model of machine '{}' became active concurrently",
                    current.machine
                ))
            } else {
                db(e)
            }
        };
        on.execute(
            "UPDATE models SET status = 'retired' \
             WHERE machine_id = $1 AND status = 'active'",
            &[Arg::Int(machine_id)],
        )
        .await
        .map_err(conflict)?;
        on.execute(
            &format!(
                "UPDATE models SET status = 'active', activated_by = $2, \
                 activated_at = {} WHERE id = $1",
                B::at_millis("$3")
            ),
            &[
                Arg::Int(id.0),
                Arg::Text(&a.by),
                Arg::Int(B::clamp_millis(a.at.as_millis())),
            ],
        )
        .await
        .map_err(conflict)?;
        read_on::<B>(on, id.0).await
    }

    /// [`ModelStore::register_trained_model`] on `on`, a write transaction.
    async fn register_trained_model_on(
        on: &mut On<'_, B::Db>,
        job: JobId,
        m: &NewModel,
        activate: Option<&Activation>,
        at: Timestamp,
    ) -> StoreResult<(ModelRecord, Job)> {
        // The job's row first: a concurrent cancel waits for this transaction (and then finds
        // the job finished), or has committed and the job is no longer running.
        let status = on
            .fetch_optional(
                &format!("SELECT status FROM jobs WHERE id = $1{}", B::LOCK_ROWS),
                &[Arg::Int(job.0)],
            )
            .await
            .map_err(db)?
            .ok_or_else(|| jobs::job_not_found(job))?
            .text(0)?;
        if status != JobStatus::Running.as_str() {
            return Err(StoreError::Conflict(format!(
                "job {job} is {status}: cannot register the model it trained"
            )));
        }
        let created = Self::create_model_on(on, m).await?;
        let (model, activated) = match activate {
            Some(a) => (Self::activate_model_on(on, created.id, a).await?, true),
            None => (created, false),
        };
        let result = format!(
            r#"{{"model":{},"version":{},"activated":{activated}}}"#,
            model.id.0, model.version
        );
        let outcome = JobOutcome::Succeeded {
            result,
            message: None,
        };
        let finished = jobs::finish_on::<B>(on, job, &outcome, at)
            .await?
            .ok_or_else(|| {
                StoreError::Conflict(format!("job {job} stopped running while it was locked"))
            })?;
        Ok((model, finished))
    }
}

#[async_trait]
impl<B: Backend> ModelStore for SqlStore<B> {
    async fn create_model(&self, m: &NewModel) -> StoreResult<ModelRecord> {
        check_new::<B>(m)?;
        let mut tx = self.db.begin_write().await.map_err(db)?;
        let created = Self::create_model_on(&mut On::Conn(&mut *tx), m).await;
        end_tx(tx, created).await
    }

    async fn get_model(&self, id: ModelId) -> StoreResult<ModelRecord> {
        read_on::<B>(&mut self.reader(), id.0).await
    }

    async fn model_bytes(&self, id: ModelId) -> StoreResult<Vec<u8>> {
        self.reader()
            .fetch_optional("SELECT bytes FROM models WHERE id = $1", &[Arg::Int(id.0)])
            .await
            .map_err(db)?
            .ok_or_else(|| model_not_found(id))?
            .bytes(0)
    }

    async fn list_models(&self, q: &ModelQuery) -> StoreResult<Vec<ModelRecord>> {
        let (sql, args) = ListQuery::new(format!("SELECT {} FROM {FROM}", columns::<B>()))
            .filter("m.key =", q.machine.as_ref().map(|m| Arg::Text(m.as_str())))
            .filter("mo.id <", q.before.map(|b| Arg::Int(b.0)))
            .newest_first("mo.id", q.limit);
        let rows = self.reader().fetch_all(&sql, &args).await.map_err(db)?;
        rows.iter().map(record).collect()
    }

    async fn active_model(&self, machine: &MachineKey) -> StoreResult<Option<ModelRecord>> {
        let sql = format!(
            "SELECT {} FROM {FROM} WHERE m.key = $1 AND mo.status = 'active'",
            columns::<B>()
        );
        let row = self
            .reader()
            .fetch_optional(&sql, &[Arg::Text(machine.as_str())])
            .await
            .map_err(db)?;
        match row {
            Some(row) => record(&row).map(Some),
            None if self.machine_exists(machine).await? => Ok(None),
            None => Err(common::machine_not_found(machine)),
        }
    }

    async fn activate_model(&self, id: ModelId, a: &Activation) -> StoreResult<ModelRecord> {
        let mut tx = self.db.begin_write().await.map_err(db)?;
        let activated = Self::activate_model_on(&mut On::Conn(&mut *tx), id, a).await;
        end_tx(tx, activated).await
    }

    async fn register_trained_model(
        &self,
        job: JobId,
        m: &NewModel,
        activate: Option<&Activation>,
        at: Timestamp,
    ) -> StoreResult<(ModelRecord, Job)> {
        check_new::<B>(m)?;
        let mut tx = self.db.begin_write().await.map_err(db)?;
        let done =
            Self::register_trained_model_on(&mut On::Conn(&mut *tx), job, m, activate, at).await;
        end_tx(tx, done).await
    }
}
