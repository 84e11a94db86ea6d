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

/// An alarm judged by a resolved work order: the window of rows its label speaks for.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledAlarm {
    /// The alarm.
    pub alarm: crate::store::AlarmId,
    /// The label of the last resolved (or closed) work order linking it.
    pub label: crate::workorder::Label,
    /// When it was raised.
    pub opened_at: Timestamp,
    /// The last event the data drove (raised, escalated, returned, ...): where the condition
    /// ended, not an acknowledgement after it.
    pub ended_at: Timestamp,
}

/// How many alarms were judged, by label.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelCounts {
    /// Real faults.
    pub true_fault: u64,
    /// Nothing was wrong.
    pub false_alarm: u64,
    /// Planned work caused it.
    pub planned_work: u64,
    /// Could not be told.
    pub unknown: u64,
}

impl LabelCounts {
    /// Every judged alarm.
    pub fn labelled(&self) -> u64 {
        self.true_fault + self.false_alarm + self.planned_work + self.unknown
    }

    /// Alarm precision: the share of judged alarms that were real faults (`None` before any).
    pub fn precision(&self) -> Option<f64> {
        let n = self.labelled();
        (n > 0).then(|| self.true_fault as f64 / n as f64)
    }

    /// Adds one alarm's label.
    pub fn add(&mut self, label: crate::workorder::Label) {
        use crate::workorder::Label::*;
        match label {
            TrueFault => self.true_fault += 1,
            FalseAlarm => self.false_alarm += 1,
            PlannedWork => self.planned_work += 1,
            Unknown => self.unknown += 1,
        }
    }
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

    /// The alarms of `machine` (`None`: every machine) judged by a resolved or closed work
    /// order, by alarm id; an alarm linked by several takes the label of the last resolved.
    async fn labelled_alarms(
        &self,
        machine: Option<&MachineKey>,
    ) -> StoreResult<Vec<(MachineKey, LabelledAlarm)>>;

    /// A code list (`None`: every list), by kind and code.
    async fn list_codes(&self, kind: Option<CodeKind>) -> StoreResult<Vec<Code>>;

    /// Creates or replaces a code; true when it was created.
    async fn put_code(&self, code: &Code) -> StoreResult<bool>;

    /// Stores `codes` when no code exists at all (a new database); false when there were codes.
    async fn seed_codes(&self, codes: &[Code]) -> StoreResult<bool>;
}
