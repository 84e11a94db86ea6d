//! [`SettingsStore`] on both backends: one row, replaced by compare-and-set on its version.

use async_trait::async_trait;
use pdm_core::store::{SettingsStore, StoredSettings};
use pdm_core::{StoreError, StoreResult, Timestamp};

use crate::common;
use crate::error::db;
use crate::sql::{Arg, Backend, Cols, SqlStore};

#[async_trait]
impl<B: Backend> SettingsStore for SqlStore<B> {
    async fn settings(&self) -> StoreResult<Option<StoredSettings>> {
        let sql = format!(
            "SELECT doc, version, updated_by, {} FROM settings WHERE id = 1",
            B::millis("updated_at")
        );
        let Some(r) = self.reader().fetch_optional(&sql, &[]).await.map_err(db)? else {
            return Ok(None);
        };
        let doc = serde_json::from_str(&r.text(0)?)
            .map_err(|e| StoreError::Backend(format!("the stored settings: {e}").into()))?;
        Ok(Some(StoredSettings {
            doc,
            version: r.int(1)?,
            updated_by: r.text(2)?,
            updated_at: Timestamp::from_millis(r.int(3)?),
        }))
    }

    async fn put_settings(
        &self,
        doc: &serde_json::Value,
        expected: i64,
        by: &str,
        at: Timestamp,
    ) -> StoreResult<StoredSettings> {
        let ms = common::check_time::<B>("settings time", at)?;
        let text = doc.to_string();
        let n = if expected == 0 {
            let sql = format!(
                "INSERT INTO settings (id, doc, version, updated_by, updated_at) \
                 VALUES (1, $1, 1, $2, {}) ON CONFLICT (id) DO NOTHING",
                B::at_millis("$3")
            );
            self.writer()
                .execute(&sql, &[Arg::Text(&text), Arg::Text(by), Arg::Int(ms)])
                .await
                .map_err(db)?
        } else {
            let sql = format!(
                "UPDATE settings SET doc = $1, version = version + 1, updated_by = $2, \
                 updated_at = {} WHERE id = 1 AND version = $4",
                B::at_millis("$3")
            );
            self.writer()
                .execute(
                    &sql,
                    &[
                        Arg::Text(&text),
                        Arg::Text(by),
                        Arg::Int(ms),
                        Arg::Int(expected),
                    ],
                )
                .await
                .map_err(db)?
        };
        if n == 0 {
            return Err(StoreError::Stale(format!(
                "the settings changed since version {expected}: read them again"
            )));
        }
        Ok(StoredSettings {
            doc: doc.clone(),
            version: expected + 1,
            updated_by: by.to_owned(),
            updated_at: Timestamp::from_millis(ms),
        })
    }
}
