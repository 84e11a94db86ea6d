//! Running the simulator in (accelerated) real time: in process, or published to MQTT.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pdm_core::source::SourceError;
use pdm_core::{
    Ack, Batch, Catalog, NewMachine, NewSensor, Origin, SensorKey, Source, SourceContext,
    StoreError, Timestamp,
};
use tokio::time::Instant;

use super::Simulator;
use crate::Intake;

/// Readings gathered before handing a batch to the engine when the simulation runs behind
/// (catching up on the past): fewer, larger batches.
const BATCH_READINGS: usize = 5_000;

/// Paces ticks: simulated time advances `speed` times as fast as real time, and never past
/// the wall clock when clamped.
struct Pacer {
    real_start: Instant,
    sim_start: i64,
    speed: f64,
    clamp_to_now: bool,
}

impl Pacer {
    fn new(sim: &Simulator, clamp_to_now: bool) -> Self {
        Self {
            real_start: Instant::now(),
            sim_start: sim.start().as_millis(),
            speed: sim.speed(),
            clamp_to_now,
        }
    }

    /// When the tick at simulated time `ts` is due.
    fn due(&self, ts: Timestamp) -> Instant {
        let secs = (ts.as_millis() - self.sim_start) as f64 / 1000.0 / self.speed;
        // Bounded so the conversion cannot fail; a simulation of 30 years is not paced further.
        let offset = Duration::from_secs_f64(secs.clamp(0.0, 1e9));
        let mut due = self.real_start + offset;
        if self.clamp_to_now {
            let ahead = ts.as_millis() - Timestamp::now().as_millis();
            if ahead > 0 {
                due = due.max(Instant::now() + Duration::from_millis(ahead.unsigned_abs()));
            }
        }
        due
    }
}

/// Registers the simulator's machines (with their kind) and sensors (with unit and plausible
/// range) in the catalog, leaving those that exist alone. Returns how many sensors were new.
pub async fn register_machines(catalog: &Catalog, sim: &Simulator) -> Result<usize, StoreError> {
    let mut created = 0;
    for (key, kind) in sim.machines() {
        if !catalog.has_machine(&key) {
            let machine = NewMachine {
                key: key.clone(),
                name: None,
                kind: Some(kind.as_str().to_owned()),
                description: Some(format!("simulated {}", kind.as_str())),
            };
            match catalog.create_machine(&machine).await {
                Ok(_) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        for spec in kind.sensors() {
            let Ok(sensor) = SensorKey::new(spec.key) else {
                continue;
            };
            let new = NewSensor {
                key: sensor,
                unit: Some(spec.unit.to_owned()),
                min: Some(spec.min),
                max: Some(spec.max),
            };
            match catalog.create_sensor(&key, &new).await {
                Ok(_) => created += 1,
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(created)
}

/// Feeds the simulator's samples into the engine in (accelerated) real time, through the
/// same [`Intake`] as MQTT and HTTP (origin `simulator`).
#[derive(Debug)]
pub struct SimulatorSource {
    sim: Simulator,
    intake: Arc<Intake>,
}

impl SimulatorSource {
    /// A source running `sim`, validating through `intake`.
    pub fn new(sim: Simulator, intake: Arc<Intake>) -> Self {
        Self { sim, intake }
    }
}

#[async_trait]
impl Source for SimulatorSource {
    fn name(&self) -> &str {
        "simulator"
    }

    async fn run(self: Box<Self>, ctx: SourceContext) -> Result<(), SourceError> {
        let SimulatorSource { mut sim, intake } = *self;
        let SourceContext {
            sink, mut shutdown, ..
        } = ctx;
        if sim.register {
            let created = register_machines(intake.catalog(), &sim).await?;
            tracing::info!(
                machines = sim.machines().len(),
                sensors_created = created,
                "simulated machines registered"
            );
        }
        let pacer = Pacer::new(&sim, sim.clamp_to_now);
        let mut batch = Batch::default();
        while let Some(ts) = sim.next_ts() {
            let due = pacer.due(ts);
            if due > Instant::now() {
                // Caught up: hand over what is gathered before waiting.
                if !flush(&sink, &mut batch).await {
                    return Ok(());
                }
                tokio::select! {
                    biased;
                    _ = shutdown.wait() => break,
                    _ = tokio::time::sleep_until(due) => {}
                }
            }
            if shutdown.is_triggered() {
                break;
            }
            let Some(tick) = sim.next_tick() else { break };
            for sample in tick.samples {
                if sample.values.is_empty() {
                    continue;
                }
                sink.metrics().message(Origin::Simulator);
                let payload = sample.payload();
                // The simulated clock is the time window's reference: replaying the past or
                // running ahead is the point of a simulation.
                match intake
                    .prepare_topic(Origin::Simulator, &sample.topic(), &payload, sample.ts)
                    .await
                {
                    Ok(mut prepared) => batch.append(&mut prepared.batch),
                    Err(e) => {
                        tracing::warn!(machine = %sample.machine, error = %e, "simulated sample dropped");
                    }
                }
            }
            if batch.readings.len() >= BATCH_READINGS && !flush(&sink, &mut batch).await {
                return Ok(());
            }
        }
        flush(&sink, &mut batch).await;
        Ok(())
    }
}

/// Hands the gathered batch to the engine; false when the engine is closed.
async fn flush(sink: &pdm_core::BatchSink, batch: &mut Batch) -> bool {
    if batch.is_empty() {
        return true;
    }
    sink.send(std::mem::take(batch), Ack::none()).await.is_ok()
}

/// What [`publish_to_mqtt`] did.
#[cfg(feature = "mqtt")]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishSummary {
    /// Messages published (one per machine and tick, dropouts excepted).
    pub messages: u64,
    /// Readings in them.
    pub readings: u64,
    /// Simulated time of the last tick published.
    pub last_ts: Option<Timestamp>,
}

/// Publishes the simulation to an MQTT broker at QoS 1, one message per machine and tick on
/// `pdm/{machine}/telemetry`, paced like the in-process source, until the configured duration
/// is over or `shutdown` is signalled; then waits for the broker's acknowledgements and
/// disconnects. This is `pdm-server simulate --mqtt-url ...`.
#[cfg(feature = "mqtt")]
pub async fn publish_to_mqtt(
    config: &crate::mqtt::MqttPublisherConfig,
    mut sim: Simulator,
    mut shutdown: pdm_core::Shutdown,
) -> Result<PublishSummary, crate::IngestError> {
    let publisher = config.connect()?;
    let connect_wait = Duration::from_secs(config.connection.connect_timeout_secs.max(1) * 3);
    tokio::select! {
        biased;
        _ = shutdown.wait() => {
            let _ = publisher.disconnect(Duration::from_secs(1)).await;
            return Ok(PublishSummary::default());
        }
        connected = publisher.wait_connected(connect_wait) => connected?,
    }
    tracing::info!(
        machines = sim.machines().len(),
        speed = sim.speed(),
        "publishing simulated telemetry"
    );
    let pacer = Pacer::new(&sim, sim.clamp_to_now);
    let mut summary = PublishSummary::default();
    while let Some(ts) = sim.next_ts() {
        let due = pacer.due(ts);
        if due > Instant::now() {
            tokio::select! {
                biased;
                _ = shutdown.wait() => break,
                _ = tokio::time::sleep_until(due) => {}
            }
        }
        if shutdown.is_triggered() {
            break;
        }
        let Some(tick) = sim.next_tick() else { break };
        for sample in tick.samples {
            if sample.values.is_empty() {
                continue;
            }
            publisher.publish(&sample.topic(), sample.payload()).await?;
            summary.messages += 1;
            summary.readings += sample.values.len() as u64;
        }
        summary.last_ts = Some(tick.ts);
    }
    publisher.disconnect(Duration::from_secs(30)).await?;
    tracing::info!(
        messages = summary.messages,
        readings = summary.readings,
        "simulation published"
    );
    Ok(summary)
}
