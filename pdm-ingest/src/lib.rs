//! Ingestion for pdm, the predictive-maintenance engine.
//!
//! ```
//! use pdm_core::{MachineKey, RejectKind, Timestamp};
//! use pdm_ingest::codec::{decode, CodecConfig};
//!
//! let machine = MachineKey::new("pump-1")?;
//! let now = Timestamp::from_millis(1_767_225_600_000); // 2026-01-01T00:00:00Z
//! let payload = br#"{"ts": "2026-01-01T00:00:00Z", "values": {"temperature": 61.5, "flow": null}}"#;
//! let decoded = decode(&machine, payload, now, &CodecConfig::default())?;
//!
//! // The valid value goes through; the bad one is reported, naming the sensor.
//! assert_eq!(decoded.readings.len(), 1);
//! assert_eq!(decoded.readings[0].value, 61.5);
//! assert_eq!(decoded.problems[0].kind, RejectKind::BadValue);
//! assert!(decoded.problems[0].reason.contains("sensor 'flow'"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What is here:
//! - [`codec`]: the payload format shared by MQTT and HTTP, and its syntactic checks;
//! - [`Intake`]: the one path every payload takes (codec, then the catalog's semantic checks),
//!   producing a [`pdm_core::Batch`] with dead letters and an [`IngestReport`] for the sender;
//! - `mqtt` (feature `mqtt`, on by default): the MQTT source (QoS 1, persistent session,
//!   acknowledged to the broker only after the durable write) and a publisher;
//! - [`sim`]: a simulator of pumps, motors and compressors with injected faults, as an
//!   in-process [`pdm_core::Source`] or published to MQTT.
//!
//! The payload format, every rejection reason and the broker settings that matter are
//! described in `docs/ingestion.md`.

pub mod codec;
mod error;
mod intake;
#[cfg(feature = "mqtt")]
pub mod mqtt;
pub mod sim;

#[cfg(test)]
#[path = "../tests/common/store.rs"]
mod test_store;

pub use codec::CodecConfig;
pub use error::{IngestError, Result};
pub use intake::{IngestReport, Intake, Prepared, Rejection};
