//! A stand-in for `pdm_core::live::Alarms` with the same names, until the live handle is merged:
//! commands applied straight to the stored monitor. Replaced by the real handle on merge.

use std::sync::Arc;

use axum::extract::FromRef;
use pdm_core::alarm::{AlarmEvent, AlarmEventKind, Command, Monitor, TransitionError};
use pdm_core::{
    AlarmId, AlarmTransition, MachineKey, ServiceNote, Store, StoreError, StoredAlarm, Timestamp,
};

use crate::state::AppState;

pub(crate) struct Alarms {
    store: Arc<dyn Store>,
}

impl FromRef<AppState> for Arc<Alarms> {
    fn from_ref(s: &AppState) -> Self {
        Arc::new(Alarms {
            store: s.store.clone(),
        })
    }
}

pub(crate) struct AlarmUpdate {
    pub alarm: StoredAlarm,
    pub events: Vec<AlarmEvent>,
}

#[derive(Debug)]
pub(crate) enum AlarmCommandError {
    NotFound(String),
    Refused(TransitionError),
    Conflict(String),
    Invalid(String),
    Store(StoreError),
}

impl From<StoreError> for AlarmCommandError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(w) => AlarmCommandError::NotFound(w),
            e => AlarmCommandError::Store(e),
        }
    }
}

impl Alarms {
    async fn command(
        &self,
        id: AlarmId,
        cmd: Command,
        at: Timestamp,
    ) -> Result<AlarmUpdate, AlarmCommandError> {
        let stored = self.store.get_alarm(id).await?;
        let mut monitor: Monitor = serde_json::from_str(&stored.state_json)
            .map_err(|e| AlarmCommandError::Invalid(e.to_string()))?;
        if stored.closed_at.is_some() {
            // A closed episode is normal whatever its last stored monitor says.
            let mut fresh = monitor.clone();
            fresh.command(cmd, at).map_err(AlarmCommandError::Refused)?;
            return Err(AlarmCommandError::Conflict(format!("alarm {id} is closed")));
        }
        let events = monitor
            .command(cmd, at)
            .map_err(AlarmCommandError::Refused)?;
        if events.is_empty() {
            return Ok(AlarmUpdate {
                alarm: stored,
                events,
            });
        }
        let t = AlarmTransition {
            machine: stored.machine.clone(),
            rule_id: stored.rule_id.clone(),
            alarm: Some(stored.id),
            expected_version: stored.version,
            state: monitor.alarm().state().name(),
            severity: monitor.alarm().severity(),
            state_json: serde_json::to_string(&monitor)
                .map_err(|e| AlarmCommandError::Invalid(e.to_string()))?,
            closes: events.iter().any(|e| e.kind == AlarmEventKind::Cleared),
            events: events.clone(),
        };
        let alarm = self.store.record_transition(&t).await?;
        Ok(AlarmUpdate { alarm, events })
    }

    pub async fn acknowledge(
        &self,
        id: AlarmId,
        by: &str,
        _reason: Option<&str>,
        at: Timestamp,
    ) -> Result<AlarmUpdate, AlarmCommandError> {
        self.command(id, Command::Acknowledge { by: by.into() }, at)
            .await
    }

    pub async fn shelve(
        &self,
        id: AlarmId,
        until: Timestamp,
        reason: &str,
        by: &str,
        at: Timestamp,
    ) -> Result<AlarmUpdate, AlarmCommandError> {
        let cmd = Command::Shelve {
            until,
            reason: reason.into(),
            by: by.into(),
        };
        self.command(id, cmd, at).await
    }

    pub async fn unshelve(
        &self,
        id: AlarmId,
        by: &str,
        at: Timestamp,
    ) -> Result<AlarmUpdate, AlarmCommandError> {
        self.command(id, Command::Unshelve { by: by.into() }, at)
            .await
    }

    pub async fn out_of_service(
        &self,
        machine: &MachineKey,
        by: &str,
        reason: &str,
        at: Timestamp,
    ) -> Result<ServiceNote, AlarmCommandError> {
        if !self.store.out_of_service(Some(machine)).await?.is_empty() {
            return Err(AlarmCommandError::Conflict(format!(
                "machine {machine} is already out of service"
            )));
        }
        let note = ServiceNote {
            machine: machine.clone(),
            since: at,
            by: by.into(),
            reason: reason.into(),
        };
        self.store.put_out_of_service(&note).await?;
        Ok(note)
    }

    pub async fn in_service(
        &self,
        machine: &MachineKey,
        _by: &str,
        _at: Timestamp,
    ) -> Result<ServiceNote, AlarmCommandError> {
        self.store
            .clear_out_of_service(machine)
            .await?
            .ok_or_else(|| {
                AlarmCommandError::Conflict(format!("machine {machine} is not out of service"))
            })
    }

    pub async fn rules_changed(&self, _machine: Option<&MachineKey>) {}
}
