//! The sensors aggregate (each sensor belongs to a machine).

use async_trait::async_trait;

use super::StoreResult;
use crate::ids::{MachineKey, SensorKey};
use crate::model::{NewSensor, Sensor, SensorUpdate};

/// Stores the sensors of machines.
#[async_trait]
pub trait SensorStore: Send + Sync + 'static {
    /// Registers a sensor; [`StoreError::NotFound`](super::StoreError::NotFound) without the machine,
    /// [`StoreError::Conflict`](super::StoreError::Conflict) when the key exists.
    async fn create_sensor(&self, machine: &MachineKey, s: &NewSensor) -> StoreResult<Sensor>;
    /// Registers a sensor (and its machine) unless it exists; returns it either way.
    async fn ensure_sensor(&self, machine: &MachineKey, key: &SensorKey) -> StoreResult<Sensor>;
    /// One sensor.
    async fn get_sensor(&self, machine: &MachineKey, key: &SensorKey) -> StoreResult<Sensor>;
    /// Sensors of one machine, ordered by key.
    async fn list_sensors(&self, machine: &MachineKey) -> StoreResult<Vec<Sensor>>;
    /// All sensors of all machines.
    async fn list_all_sensors(&self) -> StoreResult<Vec<Sensor>>;
    /// Updates a sensor.
    async fn update_sensor(
        &self,
        machine: &MachineKey,
        key: &SensorKey,
        u: &SensorUpdate,
    ) -> StoreResult<Sensor>;
    /// Deletes a sensor with its readings.
    async fn delete_sensor(&self, machine: &MachineKey, key: &SensorKey) -> StoreResult<()>;
}
