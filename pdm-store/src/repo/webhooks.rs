//! [`WebhookStore`] on both backends.
//!
//! Fan-out is one write transaction: it marks the outbox row dispatched (only if it was not,
//! which decides between two dispatchers fanning out the same row) and inserts its deliveries;
//! the unique index `webhook_deliveries_once` keeps one delivery per endpoint and row whatever
//! happens. Claims are a lease (`claimed_until`): on PostgreSQL concurrent claimers skip each
//! other's rows (`FOR UPDATE SKIP LOCKED`) and the outer condition rechecks the lease; SQLite
//! has one writer. The rows a claim takes are picked once, in a `MATERIALIZED` CTE: as
//! `UPDATE ... WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)` PostgreSQL may run the
//! subquery again for each row the update scans (the inner side of a nested loop), and each
//! run skips the rows the update has changed already and picks the next `n`, so the claim
//! leased many more than `n` rows: deliveries the caller never got, held back for a whole
//! lease. A delivery waits while an earlier one of the same alarm to the same
//! endpoint is pending, so an endpoint sees one alarm's events in order.

use async_trait::async_trait;
use pdm_core::store::{
    AttemptRecord, Delivery, DeliveryAttempt, DeliveryQuery, DeliveryStatus, EndpointChange,
    NewDelivery, NewWebhook, NextStep, Webhook, WebhookFilter, WebhookId, WebhookStore,
    WebhookUpdate,
};
use pdm_core::{StoreError, StoreResult, Timestamp};

use crate::common;
use crate::error::db;
use crate::sql::{end_tx, Arg, Backend, Cols, ListQuery, On, SqlStore};

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("invalid webhook data in database: {what}").into())
}

fn no_row() -> StoreError {
    StoreError::Backend("INSERT ... RETURNING returned no row".into())
}

fn webhook_not_found(id: WebhookId) -> StoreError {
    StoreError::NotFound(format!("webhook {id}"))
}

fn delivery_not_found(id: i64) -> StoreError {
    StoreError::NotFound(format!("delivery {id}"))
}

/// The columns [`webhook`] decodes, of `webhooks`.
fn columns<B: Backend>() -> String {
    format!(
        "id, url, description, secret, previous_secret, {}, filter, \
         CAST(CASE WHEN enabled THEN 1 ELSE 0 END AS BIGINT), disabled_reason, {}, {}, {}",
        B::millis("previous_secret_expires_at"),
        B::millis("failing_since"),
        B::millis("created_at"),
        B::millis("updated_at"),
    )
}

fn webhook(row: &impl Cols) -> StoreResult<Webhook> {
    let filter: WebhookFilter = serde_json::from_str(&row.text(6)?).map_err(corrupt)?;
    Ok(Webhook {
        id: WebhookId(row.int(0)?),
        url: row.text(1)?,
        description: row.opt_text(2)?,
        secret: row.text(3)?,
        previous_secret: row.opt_text(4)?,
        previous_secret_expires_at: row.opt_int(5)?.map(Timestamp::from_millis),
        filter,
        enabled: row.int(7)? != 0,
        disabled_reason: row.opt_text(8)?,
        failing_since: row.opt_int(9)?.map(Timestamp::from_millis),
        created_at: Timestamp::from_millis(row.int(10)?),
        updated_at: Timestamp::from_millis(row.int(11)?),
    })
}

/// The columns [`delivery`] decodes, of `webhook_deliveries`.
fn delivery_columns<B: Backend>() -> String {
    format!(
        "id, webhook_id, outbox_id, message_id, event_type, alarm_id, payload, status, \
         attempts, {}, {}, last_status, last_error, {}",
        B::millis("next_attempt_at"),
        B::millis("claimed_until"),
        B::millis("created_at"),
    )
}

fn delivery(row: &impl Cols) -> StoreResult<Delivery> {
    let status = row.text(7)?;
    Ok(Delivery {
        id: row.int(0)?,
        webhook: WebhookId(row.int(1)?),
        outbox_id: row.opt_int(2)?,
        message_id: row.text(3)?,
        event_type: row.text(4)?,
        alarm_id: row.opt_int(5)?,
        payload: row.text(6)?,
        status: DeliveryStatus::parse(&status).ok_or_else(|| corrupt(status))?,
        attempts: u32::try_from(row.int(8)?).map_err(corrupt)?,
        next_attempt_at: row.opt_int(9)?.map(Timestamp::from_millis),
        claimed_until: row.opt_int(10)?.map(Timestamp::from_millis),
        last_status: row
            .opt_int(11)?
            .map(u16::try_from)
            .transpose()
            .map_err(corrupt)?,
        last_error: row.opt_text(12)?,
        created_at: Timestamp::from_millis(row.int(13)?),
    })
}

fn filter_json(f: &WebhookFilter) -> StoreResult<String> {
    serde_json::to_string(f).map_err(|e| StoreError::Invalid(format!("webhook filter: {e}")))
}

async fn read_webhook<B: Backend>(
    on: &mut On<'_, B::Db>,
    id: WebhookId,
) -> StoreResult<Option<Webhook>> {
    let sql = format!("SELECT {} FROM webhooks WHERE id = $1", columns::<B>());
    let row = on
        .fetch_optional(&sql, &[Arg::Int(id.0)])
        .await
        .map_err(db)?;
    row.as_ref().map(webhook).transpose()
}

async fn read_delivery<B: Backend>(
    on: &mut On<'_, B::Db>,
    id: i64,
) -> StoreResult<Option<Delivery>> {
    let sql = format!(
        "SELECT {} FROM webhook_deliveries WHERE id = $1",
        delivery_columns::<B>()
    );
    let row = on.fetch_optional(&sql, &[Arg::Int(id)]).await.map_err(db)?;
    row.as_ref().map(delivery).transpose()
}

/// Inserts `d`, pending and due at `at`, claimed until `claimed`; `None` when the endpoint
/// has a delivery of this outbox row already.
async fn insert_delivery<B: Backend>(
    on: &mut On<'_, B::Db>,
    d: &NewDelivery,
    outbox_id: Option<i64>,
    at: i64,
    claimed: Option<i64>,
) -> StoreResult<Option<i64>> {
    let sql = format!(
        "INSERT INTO webhook_deliveries (webhook_id, outbox_id, message_id, event_type, \
         alarm_id, payload, status, attempts, next_attempt_at, claimed_until, created_at) \
         SELECT $1, $2, $3, $4, $5, $6, 'pending', 0, {at}, {claimed}, {at} \
         WHERE EXISTS (SELECT 1 FROM webhooks WHERE id = $1) \
         ON CONFLICT (webhook_id, outbox_id) DO NOTHING RETURNING id",
        at = B::at_millis("$7"),
        claimed = B::at_millis("$8"),
    );
    let args = [
        Arg::Int(d.webhook.0),
        Arg::OptInt(outbox_id),
        Arg::Text(&d.message_id),
        Arg::Text(&d.event_type),
        Arg::OptInt(d.alarm_id),
        Arg::Text(&d.payload),
        Arg::Int(at),
        Arg::OptInt(claimed),
    ];
    let row = on.fetch_optional(&sql, &args).await.map_err(db)?;
    row.map(|r| r.int(0)).transpose()
}

impl<B: Backend> SqlStore<B> {
    /// Runs `sql`, an `UPDATE webhooks ... WHERE id = $1 RETURNING` the webhook's columns, on
    /// the writer; the webhook as changed, or not found.
    async fn write_webhook(
        &self,
        id: WebhookId,
        sql: &str,
        args: &[Arg<'_>],
    ) -> StoreResult<Webhook> {
        let row = self
            .writer()
            .fetch_optional(sql, args)
            .await
            .map_err(db)?
            .ok_or_else(|| webhook_not_found(id))?;
        webhook(&row)
    }

    async fn fan_out_on(
        on: &mut On<'_, B::Db>,
        outbox_id: i64,
        deliveries: &[NewDelivery],
        at: i64,
    ) -> StoreResult<u64> {
        let mark = format!(
            "UPDATE outbox SET delivered_at = {} WHERE id = $1 AND delivered_at IS NULL",
            B::at_millis("$2")
        );
        if on
            .execute(&mark, &[Arg::Int(outbox_id), Arg::Int(at)])
            .await
            .map_err(db)?
            == 0
        {
            let exists = on
                .fetch_optional("SELECT 1 FROM outbox WHERE id = $1", &[Arg::Int(outbox_id)])
                .await
                .map_err(db)?;
            return match exists {
                Some(_) => Ok(0),
                None => Err(StoreError::NotFound(format!("outbox row {outbox_id}"))),
            };
        }
        let mut created = 0;
        for d in deliveries {
            // An endpoint deleted since the caller listed it gets nothing.
            if insert_delivery::<B>(on, d, Some(outbox_id), at, None)
                .await?
                .is_some()
            {
                created += 1;
            }
        }
        Ok(created)
    }

    async fn record_attempt_on(
        on: &mut On<'_, B::Db>,
        id: i64,
        a: &AttemptRecord,
        next: NextStep,
        endpoint: &EndpointChange,
    ) -> StoreResult<Delivery> {
        let (status, next_at) = match next {
            NextStep::Delivered => ("delivered", None),
            NextStep::Failed => ("failed", None),
            NextStep::RetryAt(t) => ("pending", Some(common::check_time::<B>("next attempt", t)?)),
            NextStep::Probed => ("pending", None),
        };
        // A failed probe leaves the delivery's schedule as it was: its count, and its time
        // (`$3` is NULL then).
        let schedule = if next == NextStep::Probed {
            format!(
                "next_attempt_at = COALESCE({}, next_attempt_at)",
                B::at_millis("$3")
            )
        } else {
            format!(
                "attempts = attempts + 1, next_attempt_at = {}",
                B::at_millis("$3")
            )
        };
        let update = format!(
            "UPDATE webhook_deliveries SET status = $2, {schedule}, claimed_until = NULL, \
             last_status = $4, last_error = $5 \
             WHERE id = $1 AND status = 'pending' RETURNING webhook_id"
        );
        let status_code = a.status_code.map(i64::from);
        let args = [
            Arg::Int(id),
            Arg::Text(status),
            Arg::OptInt(next_at),
            Arg::OptInt(status_code),
            Arg::OptText(a.error.as_deref()),
        ];
        let Some(row) = on.fetch_optional(&update, &args).await.map_err(db)? else {
            return Err(match read_delivery::<B>(on, id).await? {
                Some(d) => StoreError::Conflict(format!("delivery {id} is {}", d.status)),
                None => delivery_not_found(id),
            });
        };
        let webhook = row.int(0)?;
        let insert = format!(
            "INSERT INTO webhook_attempts (delivery_id, at, status_code, duration_ms, error) \
             VALUES ($1, {}, $3, $4, $5)",
            B::at_millis("$2")
        );
        let at = common::check_time::<B>("attempt time", a.at)?;
        on.execute(
            &insert,
            &[
                Arg::Int(id),
                Arg::Int(at),
                Arg::OptInt(status_code),
                Arg::Int(a.duration_ms),
                Arg::OptText(a.error.as_deref()),
            ],
        )
        .await
        .map_err(db)?;
        let healthy =
            "UPDATE webhooks SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL";
        let failing = format!(
            "UPDATE webhooks SET failing_since = {} WHERE id = $1 AND failing_since IS NULL",
            B::at_millis("$2")
        );
        let disable = format!(
            "UPDATE webhooks SET enabled = $3, disabled_reason = $4, updated_at = {} \
             WHERE id = $1",
            B::at_millis("$2")
        );
        // Retries of a recovered endpoint are due now (see `EndpointChange::Recovered`); the
        // per-alarm order holds, as claims still take the oldest pending event of an alarm.
        let expedite = format!(
            "UPDATE webhook_deliveries SET next_attempt_at = {at} \
             WHERE webhook_id = $1 AND status = 'pending' AND next_attempt_at > {at} \
             AND (last_status IS NULL OR last_status <> 429)",
            at = B::at_millis("$2")
        );
        let changed = match endpoint {
            EndpointChange::Healthy => on.execute(healthy, &[Arg::Int(webhook)]).await,
            EndpointChange::Recovered => match on.execute(healthy, &[Arg::Int(webhook)]).await {
                Ok(_) => {
                    on.execute(&expedite, &[Arg::Int(webhook), Arg::Int(at)])
                        .await
                }
                Err(e) => Err(e),
            },
            EndpointChange::Failing => {
                on.execute(&failing, &[Arg::Int(webhook), Arg::Int(at)])
                    .await
            }
            EndpointChange::Disable(reason) => {
                let args = [
                    Arg::Int(webhook),
                    Arg::Int(at),
                    Arg::Flag(false),
                    Arg::Text(reason),
                ];
                on.execute(&disable, &args).await
            }
            EndpointChange::Unchanged => Ok(0),
        };
        changed.map_err(db)?;
        read_delivery::<B>(on, id)
            .await?
            .ok_or_else(|| delivery_not_found(id))
    }
}

#[async_trait]
impl<B: Backend> WebhookStore for SqlStore<B> {
    async fn create_webhook(&self, w: &NewWebhook) -> StoreResult<Webhook> {
        let now = Timestamp::now().as_millis();
        let sql = format!(
            "INSERT INTO webhooks (url, description, secret, filter, enabled, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, {at}, {at}) RETURNING {}",
            columns::<B>(),
            at = B::at_millis("$6"),
        );
        let filter = filter_json(&w.filter)?;
        let args = [
            Arg::Text(&w.url),
            Arg::OptText(w.description.as_deref()),
            Arg::Text(&w.secret),
            Arg::Text(&filter),
            Arg::Flag(w.enabled),
            Arg::Int(now),
        ];
        let row = self
            .writer()
            .fetch_optional(&sql, &args)
            .await
            .map_err(db)?
            .ok_or_else(no_row)?;
        webhook(&row)
    }

    async fn get_webhook(&self, id: WebhookId) -> StoreResult<Webhook> {
        read_webhook::<B>(&mut self.reader(), id)
            .await?
            .ok_or_else(|| webhook_not_found(id))
    }

    async fn list_webhooks(&self) -> StoreResult<Vec<Webhook>> {
        let sql = format!("SELECT {} FROM webhooks ORDER BY id", columns::<B>());
        let rows = self.reader().fetch_all(&sql, &[]).await.map_err(db)?;
        rows.iter().map(webhook).collect()
    }

    async fn webhooks_after(
        &self,
        after: Option<WebhookId>,
        limit: u32,
    ) -> StoreResult<Vec<Webhook>> {
        let sql = format!(
            "SELECT {} FROM webhooks WHERE id > $1 ORDER BY id LIMIT $2",
            columns::<B>()
        );
        let after = after.map_or(i64::MIN, |w| w.0);
        let rows = self
            .reader()
            .fetch_all(&sql, &[Arg::Int(after), Arg::Int(common::limit(limit))])
            .await
            .map_err(db)?;
        rows.iter().map(webhook).collect()
    }

    async fn update_webhook(&self, id: WebhookId, u: &WebhookUpdate) -> StoreResult<Webhook> {
        let filter = u.filter.as_ref().map(filter_json).transpose()?;
        let enabled = u.enabled.map(i64::from);
        // Enabling (again) forgets why it was disabled and its failing streak.
        let sql = format!(
            "UPDATE webhooks SET url = coalesce($2, url), \
             description = CASE WHEN $3 = 1 THEN $4 ELSE description END, \
             filter = coalesce($5, filter), \
             enabled = CASE WHEN $6 IS NULL THEN enabled ELSE $6 = 1 END, \
             disabled_reason = CASE WHEN $6 = 1 THEN NULL ELSE disabled_reason END, \
             failing_since = CASE WHEN $6 = 1 THEN NULL ELSE failing_since END, \
             updated_at = {} WHERE id = $1 RETURNING {}",
            B::at_millis("$7"),
            columns::<B>()
        );
        let args = [
            Arg::Int(id.0),
            Arg::OptText(u.url.as_deref()),
            Arg::Int(i64::from(u.description.is_some())),
            Arg::OptText(u.description.as_ref().and_then(|d| d.as_deref())),
            Arg::OptText(filter.as_deref()),
            Arg::OptInt(enabled),
            Arg::Int(Timestamp::now().as_millis()),
        ];
        self.write_webhook(id, &sql, &args).await
    }

    async fn delete_webhook(&self, id: WebhookId) -> StoreResult<bool> {
        let n = self
            .writer()
            .execute("DELETE FROM webhooks WHERE id = $1", &[Arg::Int(id.0)])
            .await
            .map_err(db)?;
        Ok(n > 0)
    }

    async fn rotate_secret(
        &self,
        id: WebhookId,
        secret: &str,
        previous_expires_at: Timestamp,
    ) -> StoreResult<Webhook> {
        let until = common::check_time::<B>("previous secret expiry", previous_expires_at)?;
        let sql = format!(
            "UPDATE webhooks SET previous_secret = secret, secret = $2, \
             previous_secret_expires_at = {}, updated_at = {} WHERE id = $1 RETURNING {}",
            B::at_millis("$3"),
            B::at_millis("$4"),
            columns::<B>()
        );
        let args = [
            Arg::Int(id.0),
            Arg::Text(secret),
            Arg::Int(until),
            Arg::Int(Timestamp::now().as_millis()),
        ];
        self.write_webhook(id, &sql, &args).await
    }

    async fn fan_out(
        &self,
        outbox_id: i64,
        deliveries: &[NewDelivery],
        at: Timestamp,
    ) -> StoreResult<u64> {
        let at = common::check_time::<B>("fan-out time", at)?;
        let mut tx = self.db.begin_write().await.map_err(db)?;
        let done = Self::fan_out_on(&mut On::Conn(&mut *tx), outbox_id, deliveries, at).await;
        end_tx(tx, done).await
    }

    async fn create_delivery(
        &self,
        d: &NewDelivery,
        at: Timestamp,
        claimed_until: Timestamp,
    ) -> StoreResult<Delivery> {
        let at = common::check_time::<B>("delivery time", at)?;
        let claimed = common::check_time::<B>("claimed until", claimed_until)?;
        let mut tx = self.db.begin_write().await.map_err(db)?;
        let mut on: On<'_, B::Db> = On::Conn(&mut *tx);
        let done = match insert_delivery::<B>(&mut on, d, None, at, Some(claimed)).await {
            Ok(Some(id)) => read_delivery::<B>(&mut on, id)
                .await
                .and_then(|d| d.ok_or_else(|| delivery_not_found(id))),
            Ok(None) => Err(webhook_not_found(d.webhook)),
            Err(e) => Err(e),
        };
        end_tx(tx, done).await
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let now = B::clamp_millis(now.as_millis());
        let until = common::check_time::<B>("lease", lease_until)?;
        let due = format!(
            "d.status = 'pending' AND d.next_attempt_at <= {now} \
             AND (d.claimed_until IS NULL OR d.claimed_until <= {now})",
            now = B::at_millis("$1")
        );
        let sql = format!(
            "WITH picked AS MATERIALIZED (\
             SELECT d.id FROM webhook_deliveries d WHERE {due} \
             AND EXISTS (SELECT 1 FROM webhooks w WHERE w.id = d.webhook_id AND w.enabled) \
             AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p \
               WHERE p.webhook_id = d.webhook_id AND p.alarm_id = d.alarm_id \
               AND p.status = 'pending' AND p.id < d.id) \
             ORDER BY d.next_attempt_at, d.id LIMIT $3{skip}) \
             UPDATE webhook_deliveries SET claimed_until = {until} \
             WHERE id IN (SELECT id FROM picked) \
             AND status = 'pending' AND (claimed_until IS NULL OR claimed_until <= {now}) \
             RETURNING {}",
            delivery_columns::<B>(),
            until = B::at_millis("$2"),
            now = B::at_millis("$1"),
            skip = B::SKIP_LOCKED,
        );
        let args = [
            Arg::Int(now),
            Arg::Int(until),
            Arg::Int(common::limit(limit)),
        ];
        let rows = self.writer().fetch_all(&sql, &args).await.map_err(db)?;
        let mut claimed = rows.iter().map(delivery).collect::<StoreResult<Vec<_>>>()?;
        claimed.sort_by_key(|d| (d.next_attempt_at, d.id));
        Ok(claimed)
    }

    async fn claim_probe(
        &self,
        webhook: WebhookId,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> StoreResult<Option<Delivery>> {
        let now = B::clamp_millis(now.as_millis());
        let until = common::check_time::<B>("lease", lease_until)?;
        let free = format!(
            "(claimed_until IS NULL OR claimed_until <= {})",
            B::at_millis("$1")
        );
        let sql = format!(
            "WITH picked AS MATERIALIZED (\
             SELECT d.id FROM webhook_deliveries d WHERE d.webhook_id = $3 \
             AND d.status = 'pending' AND d.next_attempt_at > {now} AND {free_d} \
             AND (d.last_status IS NULL OR d.last_status <> 429) \
             AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p \
               WHERE p.webhook_id = d.webhook_id AND p.alarm_id = d.alarm_id \
               AND p.status = 'pending' AND p.id < d.id) \
             ORDER BY d.id LIMIT 1{skip}) \
             UPDATE webhook_deliveries SET claimed_until = {until} \
             WHERE id IN (SELECT id FROM picked) AND status = 'pending' AND {free} \
             RETURNING {}",
            delivery_columns::<B>(),
            until = B::at_millis("$2"),
            now = B::at_millis("$1"),
            free_d = free.replace("claimed_until", "d.claimed_until"),
            skip = B::SKIP_LOCKED,
        );
        let args = [Arg::Int(now), Arg::Int(until), Arg::Int(webhook.0)];
        let row = self
            .writer()
            .fetch_optional(&sql, &args)
            .await
            .map_err(db)?;
        row.as_ref().map(delivery).transpose()
    }

    async fn record_attempt(
        &self,
        id: i64,
        attempt: &AttemptRecord,
        next: NextStep,
        endpoint: &EndpointChange,
    ) -> StoreResult<Delivery> {
        let mut tx = self.db.begin_write().await.map_err(db)?;
        let done =
            Self::record_attempt_on(&mut On::Conn(&mut *tx), id, attempt, next, endpoint).await;
        end_tx(tx, done).await
    }

    async fn get_delivery(&self, webhook: WebhookId, id: i64) -> StoreResult<Delivery> {
        match read_delivery::<B>(&mut self.reader(), id).await? {
            Some(d) if d.webhook == webhook => Ok(d),
            _ => {
                self.get_webhook(webhook).await?;
                Err(delivery_not_found(id))
            }
        }
    }

    async fn list_deliveries(&self, q: &DeliveryQuery) -> StoreResult<Vec<Delivery>> {
        let (sql, args) = ListQuery::new(format!(
            "SELECT {} FROM webhook_deliveries",
            delivery_columns::<B>()
        ))
        .filter("webhook_id =", Some(Arg::Int(q.webhook.0)))
        .filter("status =", q.status.map(|s| Arg::Text(s.as_str())))
        .filter("id <", q.before.map(Arg::Int))
        .newest_first("id", q.limit);
        let rows = self.reader().fetch_all(&sql, &args).await.map_err(db)?;
        if rows.is_empty() {
            self.get_webhook(q.webhook).await?;
        }
        rows.iter().map(delivery).collect()
    }

    async fn delivery_attempts(&self, id: i64) -> StoreResult<Vec<DeliveryAttempt>> {
        let sql = format!(
            "SELECT id, delivery_id, {}, status_code, duration_ms, error FROM webhook_attempts \
             WHERE delivery_id = $1 ORDER BY id",
            B::millis("at")
        );
        let rows = self
            .reader()
            .fetch_all(&sql, &[Arg::Int(id)])
            .await
            .map_err(db)?;
        rows.iter()
            .map(|r| {
                Ok(DeliveryAttempt {
                    id: r.int(0)?,
                    delivery: r.int(1)?,
                    at: Timestamp::from_millis(r.int(2)?),
                    status_code: r
                        .opt_int(3)?
                        .map(u16::try_from)
                        .transpose()
                        .map_err(corrupt)?,
                    duration_ms: r.int(4)?,
                    error: r.opt_text(5)?,
                })
            })
            .collect()
    }

    async fn redeliver(&self, webhook: WebhookId, id: i64, at: Timestamp) -> StoreResult<Delivery> {
        let at = common::check_time::<B>("redelivery time", at)?;
        let sql = format!(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = {}, \
             claimed_until = NULL WHERE id = $1 AND webhook_id = $2 RETURNING {}",
            B::at_millis("$3"),
            delivery_columns::<B>()
        );
        let row = self
            .writer()
            .fetch_optional(&sql, &[Arg::Int(id), Arg::Int(webhook.0), Arg::Int(at)])
            .await
            .map_err(db)?;
        match row {
            Some(row) => delivery(&row),
            None => {
                self.get_webhook(webhook).await?;
                Err(delivery_not_found(id))
            }
        }
    }

    async fn prune_webhooks(&self, before: Timestamp) -> StoreResult<u64> {
        let before = B::clamp_millis(before.as_millis());
        let deliveries = format!(
            "DELETE FROM webhook_deliveries WHERE status <> 'pending' AND created_at < {}",
            B::at_millis("$1")
        );
        let outbox = format!(
            "DELETE FROM outbox WHERE delivered_at < {} AND NOT EXISTS \
             (SELECT 1 FROM webhook_deliveries d WHERE d.outbox_id = outbox.id \
              AND d.status = 'pending')",
            B::at_millis("$1")
        );
        let mut tx = self.db.begin_write().await.map_err(db)?;
        let mut on: On<'_, B::Db> = On::Conn(&mut *tx);
        let done = async {
            let a = on
                .execute(&deliveries, &[Arg::Int(before)])
                .await
                .map_err(db)?;
            let b = on.execute(&outbox, &[Arg::Int(before)]).await.map_err(db)?;
            Ok(a + b)
        }
        .await;
        end_tx(tx, done).await
    }
}
