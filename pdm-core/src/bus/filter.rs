//! What a push client asks for: topics (machines and kinds), checked, and the [`Filter`] they
//! add up to.
//!
//! A filter is a set of (machine or every machine, kind) pairs. The SSE route takes one set of
//! topics (`machines=a,b&kinds=alarm`); a WebSocket adds topics with `subscribe` and takes them
//! away with `unsubscribe`. In both, an empty or absent list means all: every machine, every
//! kind.
//!
//! ```
//! use pdm_core::bus::{Filter, Topics};
//! let mut filter = Filter::none();
//! filter.add(&Topics::from_csv(Some("pump-1"), Some("alarm,reading")).expect("valid"));
//! filter.add(&Topics::from_csv(None, Some("job")).expect("valid"));
//! filter.remove(&Topics::from_csv(Some("pump-1"), Some("reading")).expect("valid"));
//! assert_eq!(
//!     serde_json::to_string(&filter).expect("json"),
//!     r#"{"*":["job"],"pump-1":["alarm"]}"#
//! );
//! let err = Topics::from_csv(None, Some("alarm,alarms")).expect_err("unknown kind");
//! assert_eq!(err.field, "kinds");
//! ```

use std::collections::{BTreeMap, BTreeSet};

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::{PushEvent, PushKind};
use crate::ids::MachineKey;

/// Most machines or kinds one request may name: a filter stays small, and a client cannot make
/// the server hold an unbounded set.
pub const MAX_TOPICS: usize = 1_000;

/// A topic list that cannot be used: `field` names it as the client wrote it (`machines`,
/// `kinds[2]`), `problem` says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct TopicError {
    /// The field (query parameter or command field, with the index of the bad item when the
    /// list is JSON).
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

impl TopicError {
    fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// Machines and kinds a client names, checked; empty means all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topics {
    /// The machines (empty: every machine).
    pub machines: Vec<MachineKey>,
    /// The kinds (empty: every kind).
    pub kinds: Vec<PushKind>,
}

fn kind_names() -> String {
    PushKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Topics {
    /// Every machine, every kind.
    pub fn all() -> Topics {
        Topics::default()
    }

    /// From comma-separated lists (query parameters `machines` and `kinds`); an absent or empty
    /// list means all. The error names `machines` or `kinds`.
    pub fn from_csv(machines: Option<&str>, kinds: Option<&str>) -> Result<Topics, TopicError> {
        let split = |s: Option<&str>| -> Vec<String> {
            s.map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
        };
        Self::check(&split(machines), &split(kinds), |field, _| field.to_owned())
    }

    /// From JSON lists (a WebSocket command's `machines` and `kinds`); the error names the
    /// item (`machines[1]`).
    pub fn from_lists(machines: &[String], kinds: &[String]) -> Result<Topics, TopicError> {
        Self::check(machines, kinds, |field, i| format!("{field}[{i}]"))
    }

    fn check(
        machines: &[String],
        kinds: &[String],
        name: impl Fn(&str, usize) -> String,
    ) -> Result<Topics, TopicError> {
        for (field, n) in [("machines", machines.len()), ("kinds", kinds.len())] {
            if n > MAX_TOPICS {
                return Err(TopicError::new(
                    field,
                    format!("names {n} items; at most {MAX_TOPICS} (leave it out for all)"),
                ));
            }
        }
        let machines = machines
            .iter()
            .enumerate()
            .map(|(i, m)| {
                MachineKey::new(m).map_err(|e| TopicError::new(name("machines", i), e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let kinds = kinds
            .iter()
            .enumerate()
            .map(|(i, k)| {
                PushKind::parse(k).ok_or_else(|| {
                    TopicError::new(
                        name("kinds", i),
                        format!("unknown kind {k:?}; the kinds are {}", kind_names()),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Topics { machines, kinds })
    }
}

/// The events a client receives: a set of (machine, kind) pairs, where the machine may be
/// every machine. An event passes when its kind is paired with every machine, or with its own
/// machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Kinds per machine; the `None` entry is every machine's (including events of none).
    pairs: BTreeMap<Option<MachineKey>, BTreeSet<PushKind>>,
}

impl Filter {
    /// Passes nothing (a WebSocket before its first `subscribe`).
    pub fn none() -> Filter {
        Filter::default()
    }

    /// Passes what `topics` name.
    pub fn of(topics: &Topics) -> Filter {
        let mut f = Filter::none();
        f.add(topics);
        f
    }

    /// Passes nothing.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    fn machines(topics: &Topics) -> Vec<Option<MachineKey>> {
        if topics.machines.is_empty() {
            vec![None]
        } else {
            topics.machines.iter().cloned().map(Some).collect()
        }
    }

    fn kinds(topics: &Topics) -> &[PushKind] {
        if topics.kinds.is_empty() {
            PushKind::ALL
        } else {
            &topics.kinds
        }
    }

    /// Passes what `topics` name too (`subscribe`).
    pub fn add(&mut self, topics: &Topics) {
        for m in Self::machines(topics) {
            self.pairs
                .entry(m)
                .or_default()
                .extend(Self::kinds(topics).iter().copied());
        }
    }

    /// No longer passes what `topics` name (`unsubscribe`). Without machines, the kinds are
    /// taken from every machine's entry (every machine and each named one); with machines,
    /// from those machines' entries only: a subscription to every machine cannot except one.
    pub fn remove(&mut self, topics: &Topics) {
        let kinds = Self::kinds(topics);
        let drop_kinds = |set: &mut BTreeSet<PushKind>| {
            for k in kinds {
                set.remove(k);
            }
        };
        if topics.machines.is_empty() {
            self.pairs.values_mut().for_each(drop_kinds);
        } else {
            for m in &topics.machines {
                if let Some(set) = self.pairs.get_mut(&Some(m.clone())) {
                    drop_kinds(set);
                }
            }
        }
        self.pairs.retain(|_, set| !set.is_empty());
    }

    /// Whether `event` passes.
    pub fn matches(&self, event: &PushEvent) -> bool {
        let has = |m: &Option<MachineKey>| {
            self.pairs
                .get(m)
                .is_some_and(|kinds| kinds.contains(&event.kind))
        };
        has(&None) || (event.machine.is_some() && has(&event.machine))
    }
}

/// As a map from machine key (`"*"` for every machine) to its kinds:
/// `{"*": ["job"], "pump-1": ["alarm"]}`.
impl Serialize for Filter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.pairs.len()))?;
        for (m, kinds) in &self.pairs {
            map.serialize_entry(m.as_ref().map_or("*", |m| m.as_str()), kinds)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn event(kind: PushKind, machine: Option<&str>) -> PushEvent {
        PushEvent {
            id: 1,
            kind,
            machine: machine.map(|m| MachineKey::new(m).expect("key")),
            data: Arc::from("{}"),
        }
    }

    #[test]
    fn empty_lists_mean_all() {
        let all = Filter::of(&Topics::from_csv(None, Some(" , ")).expect("valid"));
        for k in PushKind::ALL {
            assert!(all.matches(&event(*k, Some("pump-1"))));
            assert!(all.matches(&event(*k, None)));
        }
        assert!(!Filter::none().matches(&event(PushKind::Alarm, Some("pump-1"))));
    }

    #[test]
    fn machines_and_kinds_combine() {
        let f = Filter::of(&Topics::from_csv(Some("pump-1,fan-2"), Some("alarm,job")).expect("ok"));
        assert!(f.matches(&event(PushKind::Alarm, Some("fan-2"))));
        assert!(f.matches(&event(PushKind::Job, Some("pump-1"))));
        assert!(!f.matches(&event(PushKind::Reading, Some("pump-1"))));
        assert!(!f.matches(&event(PushKind::Alarm, Some("pump-3"))));
        // A job about no machine is not about one of these.
        assert!(!f.matches(&event(PushKind::Job, None)));
    }

    #[test]
    fn subscribe_and_unsubscribe() {
        let t = |m: Option<&str>, k: Option<&str>| Topics::from_csv(m, k).expect("valid");
        let mut f = Filter::none();
        f.add(&t(Some("pump-1"), None));
        f.add(&t(None, Some("alarm")));
        assert!(f.matches(&event(PushKind::Reading, Some("pump-1"))));
        assert!(f.matches(&event(PushKind::Alarm, Some("fan-1"))));
        assert!(!f.matches(&event(PushKind::Reading, Some("fan-1"))));
        // Without machines: the kind goes from every entry.
        f.remove(&t(None, Some("alarm")));
        assert!(!f.matches(&event(PushKind::Alarm, Some("pump-1"))));
        assert!(!f.matches(&event(PushKind::Alarm, Some("fan-1"))));
        assert!(f.matches(&event(PushKind::Prediction, Some("pump-1"))));
        // A machine's entry alone.
        f.remove(&t(Some("pump-1"), Some("prediction,job")));
        assert_eq!(
            serde_json::to_value(&f).expect("json"),
            serde_json::json!({"pump-1": ["reading"]})
        );
        // Everything.
        f.remove(&Topics::all());
        assert!(f.is_empty());
        assert_eq!(serde_json::to_string(&f).expect("json"), "{}");
    }

    #[test]
    fn errors_name_the_field() {
        let e = Topics::from_csv(Some("pump-1,Pump 2"), None).expect_err("bad key");
        assert_eq!(e.field, "machines");
        assert!(e.problem.contains("Pump 2"), "{e}");
        let e = Topics::from_csv(None, Some("alarms")).expect_err("bad kind");
        assert_eq!(e.field, "kinds");
        assert!(
            e.to_string().contains("reading, prediction, alarm, job"),
            "{e}"
        );
        let e = Topics::from_lists(&["a".into()], &["job".into(), "x".into()]).expect_err("kind");
        assert_eq!(e.field, "kinds[1]");
        let e = Topics::from_lists(&["ok".into(), "".into()], &[]).expect_err("empty key");
        assert_eq!(e.field, "machines[1]");
        let many: Vec<String> = (0..=MAX_TOPICS).map(|i| format!("m{i}")).collect();
        let e = Topics::from_lists(&many, &[]).expect_err("too many");
        assert_eq!(e.field, "machines");
    }
}
