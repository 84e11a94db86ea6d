//! The work-order aggregate: work orders, the alarms they link, their history, and the code
//! lists of their findings. The rules of the lifecycle are [`crate::workorder`]'s; the store
//! keeps what they allow and refuses a write made on a stale version.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreResult;
use crate::ids::MachineKey;
use crate::model::Timestamp;
use crate::store::UserId;
use crate::workorder::{Code, CodeKind, NewWorkOrder, Priority, Status, WorkOrder, WorkOrderId};

/// How a list of work orders is ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkOrderSort {
    /// Newest first (by id).
    #[default]
    Newest,
    /// Soonest due first (those without a due date last), then by id.
    Due,
    /// Most urgent first, then by id.
    Priority,
}

/// Which work orders, and how many.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkOrderQuery {
    /// Only these statuses (empty: any).
    pub status: Vec<Status>,
    /// Only this machine's.
    pub machine: Option<MachineKey>,
    /// Only this assignee's.
    pub assignee: Option<UserId>,
    /// Only this priority.
    pub priority: Option<Priority>,
    /// Only active ones due before this time.
    pub overdue_at: Option<Timestamp>,
    /// The order.
    pub sort: WorkOrderSort,
    /// Skip this many (the offset of the page; lists sorted by due date or priority page by
    /// offset, newest first pages by id with `before`).
    pub offset: u32,
    /// Only ids below this (newest first).
    pub before: Option<WorkOrderId>,
    /// At most this many.
    pub limit: u32,
}

/// One change of a work order, as its history shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkOrderEvent {
    /// Row id, increasing.
    pub id: i64,
    /// The work order.
    pub work_order: WorkOrderId,
    /// When.
    pub at: Timestamp,
    /// Who (actor name).
    pub actor: String,
    /// `created` or `updated`.
    pub action: String,
    /// What changed: `{"field": {"from": ..., "to": ...}}` (a new one: its fields).
    pub changes: serde_json::Value,
    /// The version it made.
    pub version: i64,
}

/// Stores work orders and their code lists.
#[async_trait]
pub trait WorkOrderStore: Send + Sync + 'static {
    /// Stores a new work order (version 1) with a `created` event. `NotFound` for an unknown
    /// machine or alarm; `Invalid` for an alarm of another machine.
    async fn create_work_order(&self, w: &NewWorkOrder) -> StoreResult<WorkOrder>;

    /// One work order.
    async fn get_work_order(&self, id: WorkOrderId) -> StoreResult<WorkOrder>;

    /// Work orders matching `q`.
    async fn list_work_orders(&self, q: &WorkOrderQuery) -> StoreResult<Vec<WorkOrder>>;

    /// Replaces the work order `next.id` with `next` (whose `version` is the read version plus
    /// one) if its stored version is still `next.version - 1`, recording an `updated` event
    /// by `actor` with `changes`; `Stale` otherwise, and nothing written. Newly linked alarms
    /// must exist and be of its machine (`NotFound`, `Invalid`).
    async fn update_work_order(
        &self,
        next: &WorkOrder,
        actor: &str,
        changes: &serde_json::Value,
    ) -> StoreResult<WorkOrder>;

    /// A work order's events, oldest first.
    async fn work_order_history(&self, id: WorkOrderId) -> StoreResult<Vec<WorkOrderEvent>>;

    /// The work orders linking an alarm, by id.
    async fn alarm_work_orders(
        &self,
        alarm: crate::store::AlarmId,
    ) -> StoreResult<Vec<WorkOrderId>>;

    /// A code list (`None`: every list), by kind and code.
    async fn list_codes(&self, kind: Option<CodeKind>) -> StoreResult<Vec<Code>>;

    /// Creates or replaces a code; true when it was created.
    async fn put_code(&self, code: &Code) -> StoreResult<bool>;

    /// Stores `codes` when no code exists at all (a new database); false when there were codes.
    async fn seed_codes(&self, codes: &[Code]) -> StoreResult<bool>;
}
