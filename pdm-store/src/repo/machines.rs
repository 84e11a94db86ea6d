//! [`MachineStore`] on both backends.

use async_trait::async_trait;
use pdm_core::{
    Machine, MachineKey, MachineStore, MachineUpdate, NewMachine, StoreError, StoreResult,
};

use super::ENSURE_ATTEMPTS;
use crate::common;
use crate::error::{db, is_unique_violation};
use crate::sql::{Arg, Backend, Cols, SqlStore};

/// The columns [`machine`] decodes.
fn columns<B: Backend>() -> String {
    format!("key, name, kind, description, {}", B::millis("created_at"))
}

/// A machine from [`columns`].
fn machine(row: &impl Cols) -> StoreResult<Machine> {
    Ok(Machine {
        key: common::key(row.text(0)?)?,
        name: row.text(1)?,
        kind: row.opt_text(2)?,
        description: row.opt_text(3)?,
        created_at: pdm_core::Timestamp::from_millis(row.int(4)?),
    })
}

impl<B: Backend> SqlStore<B> {
    /// Whether the machine is registered (on the reader).
    pub(crate) async fn machine_exists(&self, key: &MachineKey) -> StoreResult<bool> {
        let row = self
            .reader()
            .fetch_optional(
                "SELECT 1 FROM machines WHERE key = $1",
                &[Arg::Text(key.as_str())],
            )
            .await
            .map_err(db)?;
        Ok(row.is_some())
    }
}

#[async_trait]
impl<B: Backend> MachineStore for SqlStore<B> {
    async fn create_machine(&self, m: &NewMachine) -> StoreResult<Machine> {
        let sql = format!(
            "INSERT INTO machines (key, name, kind, description) VALUES ($1, $2, $3, $4) \
             RETURNING {}",
            columns::<B>()
        );
        let args = [
            Arg::Text(m.key.as_str()),
            Arg::Text(m.name.as_deref().unwrap_or(m.key.as_str())),
            Arg::OptText(m.kind.as_deref()),
            Arg::OptText(m.description.as_deref()),
        ];
        let row = self
            .writer()
            .fetch_optional(&sql, &args)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!("machine '{}' already exists", m.key))
                } else {
                    db(e)
                }
            })?
            .ok_or_else(|| StoreError::Backend("INSERT ... RETURNING returned no row".into()))?;
        machine(&row)
    }

    async fn ensure_machine(&self, key: &MachineKey) -> StoreResult<Machine> {
        let insert = format!(
            "INSERT INTO machines (key, name) VALUES ($1, $1) ON CONFLICT (key) DO NOTHING \
             RETURNING {}",
            columns::<B>()
        );
        let select = format!("SELECT {} FROM machines WHERE key = $1", columns::<B>());
        let args = [Arg::Text(key.as_str())];
        for _ in 0..ENSURE_ATTEMPTS {
            let row = self
                .writer()
                .fetch_optional(&insert, &args)
                .await
                .map_err(db)?;
            if let Some(row) = row {
                return machine(&row);
            }
            // Another statement, hence (on PostgreSQL) a fresh snapshot that sees the
            // concurrent insert that made ours do nothing.
            let row = self
                .writer()
                .fetch_optional(&select, &args)
                .await
                .map_err(db)?;
            if let Some(row) = row {
                return machine(&row);
            }
        }
        Err(common::machine_not_found(key))
    }

    async fn get_machine(&self, key: &MachineKey) -> StoreResult<Machine> {
        let sql = format!("SELECT {} FROM machines WHERE key = $1", columns::<B>());
        let row = self
            .reader()
            .fetch_optional(&sql, &[Arg::Text(key.as_str())])
            .await
            .map_err(db)?
            .ok_or_else(|| common::machine_not_found(key))?;
        machine(&row)
    }

    async fn list_machines(&self) -> StoreResult<Vec<Machine>> {
        let sql = format!("SELECT {} FROM machines ORDER BY key", columns::<B>());
        let rows = self.reader().fetch_all(&sql, &[]).await.map_err(db)?;
        rows.iter().map(machine).collect()
    }

    async fn machines_after(
        &self,
        after: Option<&MachineKey>,
        limit: u32,
    ) -> StoreResult<Vec<Machine>> {
        // Keys are ASCII slugs: the database's text order is their byte order on both backends.
        let sql = format!(
            "SELECT {} FROM machines WHERE key > $1 ORDER BY key LIMIT $2",
            columns::<B>()
        );
        let after = after.map_or("", MachineKey::as_str);
        let rows = self
            .reader()
            .fetch_all(&sql, &[Arg::Text(after), Arg::Int(common::limit(limit))])
            .await
            .map_err(db)?;
        rows.iter().map(machine).collect()
    }

    async fn update_machine(&self, key: &MachineKey, u: &MachineUpdate) -> StoreResult<Machine> {
        // A flag per optional field tells "leave as is" from "set to NULL".
        let sql = format!(
            "UPDATE machines SET \
                 name = coalesce($2, name), \
                 kind = CASE WHEN $3 THEN CAST($4 AS TEXT) ELSE kind END, \
                 description = CASE WHEN $5 THEN CAST($6 AS TEXT) ELSE description END \
             WHERE key = $1 RETURNING {}",
            columns::<B>()
        );
        let args = [
            Arg::Text(key.as_str()),
            Arg::OptText(u.name.as_deref()),
            Arg::Flag(u.kind.is_some()),
            Arg::OptText(u.kind.as_ref().and_then(|k| k.as_deref())),
            Arg::Flag(u.description.is_some()),
            Arg::OptText(u.description.as_ref().and_then(|d| d.as_deref())),
        ];
        let row = self
            .writer()
            .fetch_optional(&sql, &args)
            .await
            .map_err(db)?
            .ok_or_else(|| common::machine_not_found(key))?;
        machine(&row)
    }

    async fn delete_machine(&self, key: &MachineKey) -> StoreResult<()> {
        let deleted = self
            .writer()
            .execute(
                "DELETE FROM machines WHERE key = $1",
                &[Arg::Text(key.as_str())],
            )
            .await
            .map_err(db)?;
        self.ids.forget_machine(key);
        if deleted == 0 {
            return Err(common::machine_not_found(key));
        }
        Ok(())
    }
}
