//! The machines aggregate.

use async_trait::async_trait;

use super::StoreResult;
use crate::ids::MachineKey;
use crate::model::{Machine, MachineUpdate, NewMachine};

/// Stores machines.
#[async_trait]
pub trait MachineStore: Send + Sync + 'static {
    /// Registers a machine; [`StoreError::Conflict`](super::StoreError::Conflict) when the key exists.
    async fn create_machine(&self, m: &NewMachine) -> StoreResult<Machine>;
    /// Registers a machine unless it exists; returns it either way.
    async fn ensure_machine(&self, key: &MachineKey) -> StoreResult<Machine>;
    /// One machine.
    async fn get_machine(&self, key: &MachineKey) -> StoreResult<Machine>;
    /// All machines, ordered by key.
    async fn list_machines(&self) -> StoreResult<Vec<Machine>>;
    /// A page of machines ordered by key: at most `limit`, those after `after` (the key of the
    /// last machine of the previous page).
    async fn machines_after(
        &self,
        after: Option<&MachineKey>,
        limit: u32,
    ) -> StoreResult<Vec<Machine>>;
    /// Updates a machine.
    async fn update_machine(&self, key: &MachineKey, u: &MachineUpdate) -> StoreResult<Machine>;
    /// Deletes a machine with its sensors and readings.
    async fn delete_machine(&self, key: &MachineKey) -> StoreResult<()>;
}
