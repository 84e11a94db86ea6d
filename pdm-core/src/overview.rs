//! The fleet at a glance: machines by health band, open alarms by severity and state, work
//! orders by status and overdue, recent dead letters and the machines scoring highest, from
//! grouped queries ([`crate::store::OverviewStore`]).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::Timestamp;
use crate::store::{LatestPrediction, OverviewStore, StoreResult};

/// A machine's latest prediction older than this puts it in [`HealthBand::Unknown`].
pub const STALE_AFTER_MS: i64 = 3_600_000;

/// How many machines [`Overview::top_anomalies`] lists.
pub const TOP: usize = 5;

/// How healthy a machine looks from its latest prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthBand {
    /// Health index at least 0.8, or (without one) a score under 80 % of the threshold.
    Good,
    /// Health 0.5 to 0.8, or a score 80 % to 100 % of the threshold.
    Fair,
    /// Health 0.2 to 0.5, or a score 1 to 1.5 times the threshold.
    Poor,
    /// Health under 0.2, or a score 1.5 times the threshold or more.
    Critical,
    /// No prediction in the last hour (no model yet, or no data).
    Unknown,
}

impl HealthBand {
    /// Its name in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthBand::Good => "good",
            HealthBand::Fair => "fair",
            HealthBand::Poor => "poor",
            HealthBand::Critical => "critical",
            HealthBand::Unknown => "unknown",
        }
    }

    /// Every band, best first.
    pub const ALL: [HealthBand; 5] = [
        HealthBand::Good,
        HealthBand::Fair,
        HealthBand::Poor,
        HealthBand::Critical,
        HealthBand::Unknown,
    ];
}

/// The band of a machine whose latest prediction is `p` (or none), at `now`.
pub fn band(p: Option<&LatestPrediction>, now: Timestamp) -> HealthBand {
    let Some(p) = p else {
        return HealthBand::Unknown;
    };
    if now.as_millis() - p.ts.as_millis() > STALE_AFTER_MS {
        return HealthBand::Unknown;
    }
    match p.health {
        Some(h) if h.is_finite() => {
            if h >= 0.8 {
                HealthBand::Good
            } else if h >= 0.5 {
                HealthBand::Fair
            } else if h >= 0.2 {
                HealthBand::Poor
            } else {
                HealthBand::Critical
            }
        }
        _ => {
            let ratio = if p.threshold > 0.0 {
                p.score / p.threshold
            } else if p.anomalous {
                1.0
            } else {
                0.0
            };
            if !ratio.is_finite() || ratio >= 1.5 {
                HealthBand::Critical
            } else if ratio >= 1.0 || p.anomalous {
                HealthBand::Poor
            } else if ratio >= 0.8 {
                HealthBand::Fair
            } else {
                HealthBand::Good
            }
        }
    }
}

/// One of the machines scoring highest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopMachine {
    /// The machine.
    pub machine: String,
    /// Its latest score.
    pub score: f64,
    /// Its model's threshold.
    pub threshold: f64,
    /// Score over threshold.
    pub ratio: f64,
    /// Its band.
    pub band: HealthBand,
    /// Health index.
    pub health: Option<f64>,
    /// Remaining useful life in seconds.
    pub rul_s: Option<f64>,
    /// Epoch milliseconds of the prediction.
    pub at: i64,
}

/// The overview.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overview {
    /// When it was computed (epoch milliseconds).
    pub at: i64,
    /// Machines registered.
    pub machines: u64,
    /// Machines by health band (every band present, zero included).
    pub machines_by_health: BTreeMap<&'static str, u64>,
    /// Open alarms.
    pub open_alarms: u64,
    /// Open alarms by severity.
    pub open_alarms_by_severity: BTreeMap<String, u64>,
    /// Open alarms by state.
    pub open_alarms_by_state: BTreeMap<String, u64>,
    /// Work orders by status.
    pub work_orders_by_status: BTreeMap<String, u64>,
    /// Work orders past due, neither resolved nor closed.
    pub overdue_work_orders: u64,
    /// Dead letters received in the last 24 hours.
    pub dead_letters_24h: u64,
    /// The machines with the highest score over threshold (at most [`TOP`], fresh predictions
    /// only), highest first.
    pub top_anomalies: Vec<TopMachine>,
}

/// Alarm precision fleet-wide: the labels of every labelled alarm, counted.
pub async fn alarm_precision<S: crate::store::WorkOrderStore + ?Sized>(
    store: &S,
) -> StoreResult<crate::store::LabelCounts> {
    let mut labels = crate::store::LabelCounts::default();
    for (_, a) in store.labelled_alarms(None).await? {
        labels.add(a.label);
    }
    Ok(labels)
}

/// Computes the overview at `now` from `store`.
pub async fn overview<S: OverviewStore + ?Sized>(
    store: &S,
    now: Timestamp,
) -> StoreResult<Overview> {
    let counts = store
        .overview_counts(now, now.add_millis(-86_400_000))
        .await?;
    let latest = store.latest_predictions().await?;
    let mut by_health: BTreeMap<&'static str, u64> =
        HealthBand::ALL.iter().map(|b| (b.as_str(), 0)).collect();
    let mut top = Vec::new();
    for p in &latest {
        let b = band(Some(p), now);
        *by_health.entry(b.as_str()).or_default() += 1;
        if b != HealthBand::Unknown {
            let ratio = if p.threshold > 0.0 {
                p.score / p.threshold
            } else {
                0.0
            };
            top.push(TopMachine {
                machine: p.machine.as_str().to_owned(),
                score: p.score,
                threshold: p.threshold,
                ratio,
                band: b,
                health: p.health,
                rul_s: p.rul_s,
                at: p.ts.as_millis(),
            });
        }
    }
    // Machines without any prediction are unknown too.
    let without = counts.machines.saturating_sub(latest.len() as u64);
    *by_health.entry(HealthBand::Unknown.as_str()).or_default() += without;
    top.sort_by(|a, b| b.ratio.total_cmp(&a.ratio).then(a.machine.cmp(&b.machine)));
    top.truncate(TOP);
    let mut by_severity = BTreeMap::new();
    let mut by_state = BTreeMap::new();
    let mut open = 0;
    for (severity, state, n) in &counts.open_alarms {
        *by_severity.entry(severity.clone()).or_default() += n;
        *by_state.entry(state.clone()).or_default() += n;
        open += n;
    }
    Ok(Overview {
        at: now.as_millis(),
        machines: counts.machines,
        machines_by_health: by_health,
        open_alarms: open,
        open_alarms_by_severity: by_severity,
        open_alarms_by_state: by_state,
        work_orders_by_status: counts.work_orders.into_iter().collect(),
        overdue_work_orders: counts.overdue_work_orders,
        dead_letters_24h: counts.dead_letters_since,
        top_anomalies: top,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MachineKey;

    fn p(score: f64, health: Option<f64>, age_ms: i64) -> LatestPrediction {
        LatestPrediction {
            machine: MachineKey::new("m").expect("key"),
            ts: Timestamp::from_millis(10_000_000 - age_ms),
            score,
            threshold: 1.0,
            anomalous: score >= 1.0,
            health,
            rul_s: None,
        }
    }

    #[test]
    fn bands_come_from_health_or_the_score() {
        let now = Timestamp::from_millis(10_000_000);
        assert_eq!(band(None, now), HealthBand::Unknown);
        assert_eq!(
            band(Some(&p(0.1, None, STALE_AFTER_MS + 1)), now),
            HealthBand::Unknown
        );
        assert_eq!(band(Some(&p(0.1, None, 0)), now), HealthBand::Good);
        assert_eq!(band(Some(&p(0.9, None, 0)), now), HealthBand::Fair);
        assert_eq!(band(Some(&p(1.2, None, 0)), now), HealthBand::Poor);
        assert_eq!(band(Some(&p(2.0, None, 0)), now), HealthBand::Critical);
        assert_eq!(
            band(Some(&p(2.0, Some(0.9), 0)), now),
            HealthBand::Good,
            "health wins"
        );
        assert_eq!(band(Some(&p(0.0, Some(0.1), 0)), now), HealthBand::Critical);
    }
}
