//! The settings aggregate: one document of what an admin changed of the server's settings
//! (its shape is the server's business), with a version for compare-and-set.

use async_trait::async_trait;

use super::StoreResult;
use crate::model::Timestamp;

/// The stored settings document.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSettings {
    /// The document.
    pub doc: serde_json::Value,
    /// Its version: 1 for the first write, one more at each.
    pub version: i64,
    /// Who wrote it last.
    pub updated_by: String,
    /// When.
    pub updated_at: Timestamp,
}

/// Stores the settings document.
#[async_trait]
pub trait SettingsStore: Send + Sync + 'static {
    /// The document, or `None` before the first write.
    async fn settings(&self) -> StoreResult<Option<StoredSettings>>;
    /// Replaces the document when its version is still `expected` (0: none yet); `Stale`
    /// otherwise, the stored one unchanged.
    async fn put_settings(
        &self,
        doc: &serde_json::Value,
        expected: i64,
        by: &str,
        at: Timestamp,
    ) -> StoreResult<StoredSettings>;
}
