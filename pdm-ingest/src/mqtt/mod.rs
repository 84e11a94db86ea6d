//! MQTT ingestion: the [`MqttSource`] (subscriber) and the [`MqttPublisher`].
//!
//! The source subscribes at QoS 1 with a persistent session (clean session off) and manual
//! acknowledgements: each message is decoded through [`crate::Intake`], sent into the engine,
//! and acknowledged to the broker (PUBACK) only once the engine reports its batch durably
//! stored. A message whose batch is not stored is never acknowledged; the broker redelivers it
//! after the source reconnects, which it does by itself when a store write fails.
//!
//! Broker settings matter: with acknowledgement after commit, the broker's in-flight window
//! (Mosquitto `max_inflight_messages`, 20 by default) bounds throughput, and past its queue
//! limit (`max_queued_messages`, 1000 by default) Mosquitto drops QoS 1 messages for a slow
//! subscriber. See `docs/ingestion.md` for the recommended settings.

mod config;
mod publisher;
mod source;

pub use config::{redact_url, MqttConnectionConfig, MqttPublisherConfig, MqttSourceConfig};
pub use publisher::MqttPublisher;
pub use source::{MqttSource, MqttState, MqttStatus};
