//! The live event bus: what happens on the live path, for push clients (SSE, WebSocket).
//!
//! Readings, predictions, alarm events and job progress are published here by the parts that
//! produce them (the live owners, the alarm stage, the job runner). Each event gets an id that
//! grows by one per event, is serialized to JSON once, and is kept in a bounded replay buffer,
//! so a client that reconnects with the last id it saw (`Last-Event-ID`) gets what it missed if
//! the buffer still holds it, and is told when it does not.
//!
//! Publishing never waits: the bus is a [`tokio::sync::broadcast`] channel, and a subscriber
//! that falls behind by more than the channel's capacity is told it lagged
//! ([`broadcast::error::RecvError::Lagged`]); the server then drops it. A slow client never
//! slows the engine.
//!
//! ```
//! use pdm_core::bus::{Bus, PushKind};
//! let bus = Bus::new(16, 64);
//! let first = bus.publish(PushKind::Job, None, &serde_json::json!({"job": 1, "progress": 0.5}));
//! let sub = bus.subscribe(Some(first.saturating_sub(1)));
//! assert_eq!(sub.replay.len(), 1);
//! assert!(!sub.missed);
//! assert_eq!(&*sub.replay[0].data, r#"{"job":1,"progress":0.5}"#);
//! ```

mod filter;

pub use filter::{Filter, TopicError, Topics, MAX_TOPICS};

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::broadcast;

use crate::ids::MachineKey;

/// What an event is about; the names are the SSE `event:` field and the filter values.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum PushKind {
    /// Readings of one machine, as stored (a batch's readings of the machine).
    Reading,
    /// A prediction of a machine's live model.
    Prediction,
    /// An alarm event (`pdm_core::notify::AlarmNotification`), after it was stored.
    Alarm,
    /// Progress or the end of a background job.
    Job,
}

impl PushKind {
    /// Every kind.
    pub const ALL: &'static [PushKind] = &[
        PushKind::Reading,
        PushKind::Prediction,
        PushKind::Alarm,
        PushKind::Job,
    ];

    /// The stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            PushKind::Reading => "reading",
            PushKind::Prediction => "prediction",
            PushKind::Alarm => "alarm",
            PushKind::Job => "job",
        }
    }

    /// The kind named `s`.
    pub fn parse(s: &str) -> Option<PushKind> {
        Self::ALL.iter().copied().find(|k| k.as_str() == s)
    }
}

/// One published event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEvent {
    /// Grows by one per event published on this bus, and across restarts; the SSE `id:`.
    pub id: u64,
    /// What it is about.
    pub kind: PushKind,
    /// The machine it concerns, if one (a job may concern none).
    pub machine: Option<MachineKey>,
    /// The payload, serialized once as JSON.
    pub data: Arc<str>,
}

impl PushEvent {
    /// The event as one JSON object, `{"id", "kind", "machine", "data"}` (the WebSocket's
    /// frame; `data` is the payload as published, `machine` `null` when none).
    pub fn to_json(&self) -> String {
        let machine = match &self.machine {
            // Keys are slugs: nothing in them needs escaping.
            Some(m) => format!("\"{}\"", m.as_str()),
            None => "null".to_owned(),
        };
        format!(
            r#"{{"id":{},"kind":"{}","machine":{},"data":{}}}"#,
            self.id,
            self.kind.as_str(),
            machine,
            self.data
        )
    }
}

/// What [`Bus::subscribe`] gives: the buffered events after the id asked for, then the live
/// channel (which starts exactly after the last replayed event).
#[derive(Debug)]
pub struct Subscription {
    /// Buffered events after the id asked for, oldest first.
    pub replay: Vec<Arc<PushEvent>>,
    /// Events after the id asked for were dropped from the buffer before this subscription:
    /// the client missed some (it should reload what it shows).
    pub missed: bool,
    /// The events published from now on.
    pub rx: broadcast::Receiver<Arc<PushEvent>>,
    /// The id of the last event published before this subscription (one less than the first
    /// id `rx` can receive): where a client that missed events stands once it reloaded.
    pub head: u64,
    /// How many of `replay` [`Subscription::next`] has handed out.
    replayed: usize,
    /// [`Subscription::next`] has told of `missed`.
    told_missed: bool,
}

/// What [`Subscription::next`] gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// The next event (a replayed one, then the live ones, in id order).
    Event(Arc<PushEvent>),
    /// The client missed events the buffer no longer holds (given first, once, instead of the
    /// partial replay): it should reload what it shows; the events after `head` follow.
    Missed {
        /// The id of the last event before the ones that follow (the client's new position).
        head: u64,
    },
    /// The subscriber fell this many events behind the channel: it must be dropped (and may
    /// reconnect with the last id it saw).
    Lagged(u64),
    /// The bus is gone.
    Closed,
}

impl Subscription {
    /// The next thing to tell the client: a reset when it missed events, the replay, then the
    /// live events. Waits only for the live channel.
    pub async fn next(&mut self) -> Next {
        if self.missed && !self.told_missed {
            self.told_missed = true;
            // The tail that is still buffered is older than the state the client reloads:
            // replaying it would only repeat what the reload shows.
            self.replayed = self.replay.len();
            return Next::Missed { head: self.head };
        }
        if let Some(e) = self.replay.get(self.replayed) {
            self.replayed += 1;
            return Next::Event(e.clone());
        }
        match self.rx.recv().await {
            Ok(e) => Next::Event(e),
            Err(broadcast::error::RecvError::Lagged(n)) => Next::Lagged(n),
            Err(broadcast::error::RecvError::Closed) => Next::Closed,
        }
    }
}

struct Ring {
    next_id: u64,
    events: VecDeque<Arc<PushEvent>>,
}

/// The first id of a bus: the start time in microseconds, so that ids keep growing across
/// restarts (a process publishes far fewer than a million events a second) and an id from
/// before a restart is recognised as such.
fn first_id() -> u64 {
    u64::try_from(crate::model::Timestamp::now().as_millis())
        .unwrap_or(0)
        .saturating_mul(1_000)
        .max(1)
}

/// The bus: a broadcast channel and a bounded replay buffer.
pub struct Bus {
    tx: broadcast::Sender<Arc<PushEvent>>,
    ring: Mutex<Ring>,
    replay: usize,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("replay", &self.replay)
            .field("subscribers", &self.tx.receiver_count())
            .finish()
    }
}

impl Bus {
    /// A bus keeping the last `replay` events for resuming clients, whose subscribers may fall
    /// `channel` events behind before they are told they lagged (both at least 1).
    pub fn new(replay: usize, channel: usize) -> Arc<Bus> {
        let (tx, _) = broadcast::channel(channel.max(1));
        Arc::new(Bus {
            tx,
            ring: Mutex::new(Ring {
                next_id: first_id(),
                events: VecDeque::with_capacity(replay.clamp(1, 65_536)),
            }),
            replay: replay.max(1),
        })
    }

    /// Publishes an event (serializing `data` once); returns its id. Never waits.
    pub fn publish(
        &self,
        kind: PushKind,
        machine: Option<&MachineKey>,
        data: &impl Serialize,
    ) -> u64 {
        let data: Arc<str> = match serde_json::to_string(data) {
            Ok(s) => s.into(),
            // The payloads are the crate's own types: this would be a bug, not bad input.
            Err(e) => format!(r#"{{"error":"cannot serialize the event: {e}"}}"#).into(),
        };
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let id = ring.next_id;
        ring.next_id += 1;
        let event = Arc::new(PushEvent {
            id,
            kind,
            machine: machine.cloned(),
            data,
        });
        if ring.events.len() == self.replay {
            ring.events.pop_front();
        }
        ring.events.push_back(event.clone());
        // Sent under the lock, so the channel's order is the ids' order and a subscriber's
        // replay and channel neither overlap nor leave a gap.
        let _ = self.tx.send(event);
        id
    }

    /// Subscribes; with `after` (the last id a client saw), the buffered events after it are
    /// replayed first.
    pub fn subscribe(&self, after: Option<u64>) -> Subscription {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let rx = self.tx.subscribe();
        let (replay, missed) = match after {
            None => (Vec::new(), false),
            Some(after) => {
                let replay: Vec<_> = ring
                    .events
                    .iter()
                    .filter(|e| e.id > after)
                    .cloned()
                    .collect();
                let oldest = ring.events.front().map_or(ring.next_id, |e| e.id);
                // Ids after `after` that are no longer buffered; or an id this bus never gave
                // (from before a restart, or another server): what came since is unknown.
                let missed = after.saturating_add(1) < oldest || after >= ring.next_id;
                (replay, missed)
            }
        };
        Subscription {
            replay,
            missed,
            rx,
            head: ring.next_id.saturating_sub(1),
            replayed: 0,
            told_missed: false,
        }
    }

    /// The id the next event will get (the last published is one less).
    pub fn next_id(&self) -> u64 {
        self.ring.lock().unwrap_or_else(|e| e.into_inner()).next_id
    }

    /// How many subscribers are connected.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> MachineKey {
        MachineKey::new(s).expect("key")
    }

    #[tokio::test]
    async fn replays_after_an_id_then_streams_without_gap() {
        let bus = Bus::new(3, 16);
        let m = key("pump-1");
        let first = bus.next_id();
        for i in 0..5 {
            bus.publish(PushKind::Reading, Some(&m), &i);
        }
        // Ids first..first+4; the buffer holds the last 3.
        let sub = bus.subscribe(Some(first + 2));
        let ids: Vec<u64> = sub.replay.iter().map(|e| e.id - first).collect();
        assert_eq!(ids, [3, 4]);
        assert!(!sub.missed);
        let mut rx = sub.rx;
        bus.publish(PushKind::Alarm, Some(&m), &"x");
        let next = rx.recv().await.expect("event");
        assert_eq!((next.id - first, next.kind), (5, PushKind::Alarm));
        assert_eq!(&*next.data, r#""x""#);

        // Asked after the first: the second was dropped from the buffer.
        let old = bus.subscribe(Some(first));
        assert!(old.missed);
        assert_eq!(old.replay.first().map(|e| e.id - first), Some(3));
        // Up to date, or new: nothing missed.
        assert!(!bus.subscribe(Some(first + 5)).missed);
        assert!(!bus.subscribe(None).missed);
        assert!(bus.subscribe(None).replay.is_empty());
        // An id this bus never gave (before a restart, another server's): nothing to replay,
        // and the client is told it may have missed events.
        let future = bus.subscribe(Some(first + 1_000));
        assert!(future.replay.is_empty() && future.missed);
        // A new bus (a restart, a millisecond later at least) gives ids above the old one's.
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(Bus::new(3, 16).next_id() > first + 5);
    }

    #[tokio::test]
    async fn a_slow_subscriber_lags_and_the_publisher_never_waits() {
        let bus = Bus::new(4, 2);
        let mut rx = bus.subscribe(None).rx;
        for i in 0..10 {
            bus.publish(PushKind::Prediction, None, &i);
        }
        assert!(matches!(
            rx.recv().await,
            Err(broadcast::error::RecvError::Lagged(8))
        ));
    }

    #[tokio::test]
    async fn next_tells_of_a_gap_once_then_streams() {
        let bus = Bus::new(2, 16);
        let m = key("fan-1");
        let first = bus.next_id();
        for i in 0..4 {
            bus.publish(PushKind::Reading, Some(&m), &i);
        }
        // The buffer holds first+2 and first+3; after first, first+1 is gone.
        let mut sub = bus.subscribe(Some(first));
        assert_eq!(sub.next().await, Next::Missed { head: first + 3 });
        bus.publish(PushKind::Job, None, &"j");
        let Next::Event(e) = sub.next().await else {
            panic!("an event")
        };
        // The partial replay is skipped: the reload covers it.
        assert_eq!((e.id, e.kind), (first + 4, PushKind::Job));
        assert_eq!(
            e.to_json(),
            format!(
                r#"{{"id":{},"kind":"job","machine":null,"data":"j"}}"#,
                first + 4
            )
        );

        // Nothing missed: the replay, then the live events.
        let mut sub = bus.subscribe(Some(first + 2));
        let mut ids = Vec::new();
        for _ in 0..2 {
            match sub.next().await {
                Next::Event(e) => ids.push(e.id - first),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(ids, [3, 4]);
        bus.publish(PushKind::Alarm, Some(&m), &1);
        let Next::Event(e) = sub.next().await else {
            panic!("an event")
        };
        assert_eq!(
            e.to_json(),
            format!(
                r#"{{"id":{},"kind":"alarm","machine":"fan-1","data":1}}"#,
                first + 5
            )
        );

        // A subscriber that falls behind the channel is told so.
        let small = Bus::new(2, 2);
        let mut sub = small.subscribe(None);
        for i in 0..5 {
            small.publish(PushKind::Reading, None, &i);
        }
        assert_eq!(sub.next().await, Next::Lagged(3));
        drop(small);
    }

    #[test]
    fn kinds_have_stable_names() {
        for k in PushKind::ALL {
            assert_eq!(PushKind::parse(k.as_str()), Some(*k));
            assert_eq!(
                serde_json::to_string(k).expect("ser"),
                format!("\"{}\"", k.as_str())
            );
        }
        assert_eq!(PushKind::parse("readings"), None);
    }
}
