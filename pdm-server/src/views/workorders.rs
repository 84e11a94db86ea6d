//! Views of work orders, their history and the code lists.

use pdm_core::store::WorkOrderEvent;
use pdm_core::workorder::{Code, WorkOrder};
use serde::Serialize;
use utoipa::ToSchema;

/// A work order.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WorkOrderView {
    /// Its id.
    pub id: i64,
    /// What is to be done, in a line.
    pub title: String,
    /// More, as written (text or Markdown; render it as text or sanitised Markdown).
    pub description: String,
    /// The machine's key.
    pub machine: String,
    /// The alarms it links, by id.
    pub alarms: Vec<i64>,
    /// `low`, `medium`, `high` or `urgent`.
    pub priority: &'static str,
    /// `open`, `in_progress`, `on_hold`, `resolved` or `closed`.
    pub status: &'static str,
    /// The statuses it may move to next.
    pub next_statuses: Vec<&'static str>,
    /// The assignee's user id.
    pub assignee: Option<i64>,
    /// Due, epoch milliseconds.
    pub due_at: Option<i64>,
    /// Who created it.
    pub created_by: String,
    /// How the machine failed (a `failure_mode` code).
    pub failure_mode: Option<String>,
    /// Why (a `cause` code).
    pub cause: Option<String>,
    /// What was done (a `remedy` code).
    pub remedy: Option<String>,
    /// What its alarms were: `true_fault`, `false_alarm`, `planned_work` or `unknown`.
    pub label: Option<&'static str>,
    /// Minutes of work booked.
    pub time_spent_min: u32,
    /// Epoch milliseconds.
    pub created_at: i64,
    /// Epoch milliseconds.
    pub updated_at: i64,
    /// Epoch milliseconds of the last resolution.
    pub resolved_at: Option<i64>,
    /// Epoch milliseconds of the last closing.
    pub closed_at: Option<i64>,
    /// Its version: send it back as `If-Match: "<version>"` to change it.
    pub version: i64,
}

impl From<WorkOrder> for WorkOrderView {
    fn from(w: WorkOrder) -> Self {
        Self {
            id: w.id.0,
            title: w.title,
            description: w.description,
            machine: w.machine.as_str().to_owned(),
            alarms: w.alarms.iter().map(|a| a.0).collect(),
            priority: w.priority.as_str(),
            status: w.status.as_str(),
            next_statuses: w.status.next().iter().map(|s| s.as_str()).collect(),
            assignee: w.assignee.map(|u| u.0),
            due_at: w.due_at.map(|t| t.as_millis()),
            created_by: w.created_by,
            failure_mode: w.failure_mode,
            cause: w.cause,
            remedy: w.remedy,
            label: w.label.map(|l| l.as_str()),
            time_spent_min: w.time_spent_min,
            created_at: w.created_at.as_millis(),
            updated_at: w.updated_at.as_millis(),
            resolved_at: w.resolved_at.map(|t| t.as_millis()),
            closed_at: w.closed_at.map(|t| t.as_millis()),
            version: w.version,
        }
    }
}

/// A page of work orders.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WorkOrderPageView {
    /// The work orders.
    pub work_orders: Vec<WorkOrderView>,
    /// The `cursor` of the next page (`null`: this is the last).
    pub next: Option<String>,
}

/// One change of a work order.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WorkOrderEventView {
    /// Its id.
    pub id: i64,
    /// Epoch milliseconds.
    pub at: i64,
    /// Who.
    pub actor: String,
    /// `created` or `updated`.
    pub action: String,
    /// What changed: `{"field": {"from": ..., "to": ...}}`; for `created`, the work order.
    #[schema(value_type = Object)]
    pub changes: serde_json::Value,
    /// The version it made.
    pub version: i64,
}

impl From<WorkOrderEvent> for WorkOrderEventView {
    fn from(e: WorkOrderEvent) -> Self {
        Self {
            id: e.id,
            at: e.at.as_millis(),
            actor: e.actor,
            action: e.action,
            changes: e.changes,
            version: e.version,
        }
    }
}

/// An entry of a code list.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CodeView {
    /// `failure_mode`, `cause` or `remedy`.
    pub kind: &'static str,
    /// The code.
    pub code: String,
    /// What it means.
    pub description: String,
    /// Offered for new findings.
    pub active: bool,
}

impl From<Code> for CodeView {
    fn from(c: Code) -> Self {
        Self {
            kind: c.kind.as_str(),
            code: c.code,
            description: c.description,
            active: c.active,
        }
    }
}

/// Alarm precision from the labels of resolved work orders.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PrecisionView {
    /// Alarms judged by a resolved or closed work order.
    pub labelled: u64,
    /// Judged real faults.
    pub true_fault: u64,
    /// Judged false alarms.
    pub false_alarm: u64,
    /// Caused by planned work.
    pub planned_work: u64,
    /// Could not be told.
    pub unknown: u64,
    /// `true_fault / labelled` (`null` before any alarm is judged).
    pub precision: Option<f64>,
}

impl From<pdm_core::store::LabelCounts> for PrecisionView {
    fn from(c: pdm_core::store::LabelCounts) -> Self {
        Self {
            labelled: c.labelled(),
            true_fault: c.true_fault,
            false_alarm: c.false_alarm,
            planned_work: c.planned_work,
            unknown: c.unknown,
            precision: c.precision(),
        }
    }
}

/// Alarm precision fleet-wide and per machine.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FleetPrecisionView {
    /// Over every machine asked for.
    pub fleet: PrecisionView,
    /// Per machine with a judged alarm, by key.
    pub machines: Vec<MachinePrecisionView>,
}

/// One machine's alarm precision.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MachinePrecisionView {
    /// The machine.
    pub machine: String,
    /// Its figures.
    #[serde(flatten)]
    pub figures: PrecisionView,
}
