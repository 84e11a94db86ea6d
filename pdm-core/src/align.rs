//! Row alignment: readings in, the rows a model scores out.
//!
//! A model scores rows of its channels (its feature names) at its sample period. Devices send
//! each channel when they like, so rows are formed here, by one rule shared by the live path
//! (an [`Aligner`] per machine, fed batch after batch) and by training ([`align`] over a stored
//! range, which feeds the same aligner): the two cannot disagree.
//!
//! The rules (the contract; `docs/detection.md`, "Row alignment", states them too):
//!
//! 1. **Grid.** Rows are at instants `t = k * sample_period_ms` (epoch-aligned, `k` any integer).
//!    The first instant is the first one at or after the first reading seen.
//! 2. **Value.** A row at `t` holds, for each channel, its latest reading with `ts <= t`
//!    (carried forward). A channel whose latest value is older than `max_gap_ms` at `t`
//!    (`t - ts > max_gap_ms`), or that was never seen, is *stale*: the instant gives a
//!    [`Stale`] item naming the stale channels instead of a [`Row`].
//! 3. **Final.** The row at `t` is emitted when a reading with `ts >= t + sample_period_ms`
//!    arrives on any channel. Waiting one period tolerates channels that arrive up to a period
//!    apart (separate messages) and costs one period of latency; it depends only on the
//!    readings' timestamps, never on arrival times, so it is deterministic.
//! 4. **Late.** A reading at or before the last finalized instant (the instant before the first
//!    one counts as finalized) cannot change anything that is still open: it is not used, and
//!    counted as late. (The store keeps it.)
//! 5. **Batches.** Within a batch, readings are taken in timestamp order (stable), so a batch
//!    gives the same rows whatever its order; batches that follow each other in time give the
//!    same rows however the readings are split among them.
//! 6. **Duplicates.** A reading with the timestamp of the value held for its channel is a
//!    duplicate: the first one wins (as in the store), the others are counted. A reading older
//!    than the held value (but not late) is superseded: counted, not used.
//! 7. **Gaps.** A stale condition is reported once: after a [`Stale`] item, instants with the same
//!    stale channels give nothing, until a [`Row`] (the condition ends) or a different set of
//!    stale channels (a new [`Stale`]). So a gap in the data gives at most
//!    `max_gap_ms / sample_period_ms + 1` rows, then one [`Stale`] item per channel that goes
//!    stale, however long it lasts; a far-future timestamp cannot make the aligner emit
//!    without bound.
//! 8. **Restart.** [`Aligner::resume_from`] rebuilds an aligner from the latest stored value of
//!    each channel (`TelemetryStore::latest`, one read); see there.
//!
//! ```
//! use pdm_core::align::{align, AlignConfig, Aligned, Row};
//! use pdm_core::{MachineKey, Reading, SensorKey, Timestamp};
//!
//! let m = MachineKey::new("pump-1")?;
//! let (temp, flow) = (SensorKey::new("temp")?, SensorKey::new("flow")?);
//! let config = AlignConfig {
//!     channels: vec![temp.clone(), flow.clone()],
//!     sample_period_ms: 1_000,
//!     max_gap_ms: 3_000,
//! };
//! let r = |s: &SensorKey, ms, value| Reading {
//!     machine: m.clone(),
//!     sensor: s.clone(),
//!     ts: Timestamp::from_millis(ms),
//!     value,
//! };
//! let readings = [
//!     r(&temp, 0, 60.0),
//!     r(&flow, 10, 4.0), // belongs to the row at 1000: after 0
//!     r(&temp, 1_000, 61.0),
//!     r(&temp, 2_000, 62.0), // flow's 4.0 is carried forward
//! ];
//! let rows = align(&readings, &config)?;
//! assert_eq!(rows.len(), 2); // the row at 2000 is still open: a later flow may arrive
//! assert!(matches!(&rows[0], Aligned::Stale(s) if s.channels == [flow.clone()]));
//! assert_eq!(
//!     rows[1],
//!     Aligned::Row(Row { ts: Timestamp::from_millis(1_000), values: vec![61.0, 4.0] })
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, ConfigResult};
use crate::ids::SensorKey;
use crate::model::{Latest, Reading, Timestamp};

/// The longest sample period accepted: a year, in milliseconds.
pub const MAX_SAMPLE_PERIOD_MS: u64 = 365 * 86_400_000;

/// `max_gap_ms` is at most this many sample periods: it bounds the rows a gap in the data can
/// emit at once (rule 7).
pub const MAX_GAP_PERIODS: u64 = 100_000;

/// How rows are formed for one model: its channels in column order, its sample period and how
/// long a value is carried forward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlignConfig {
    /// The channels, in the order of the row's values (the model's feature names); at least
    /// one, no duplicates.
    pub channels: Vec<SensorKey>,
    /// Milliseconds between rows, 1 to [`MAX_SAMPLE_PERIOD_MS`].
    pub sample_period_ms: u64,
    /// How long a channel's latest value is carried forward, in milliseconds: at least
    /// `sample_period_ms`, at most [`MAX_GAP_PERIODS`] periods.
    pub max_gap_ms: u64,
}

impl AlignConfig {
    /// Checks the settings, naming the first bad one (`align.<setting>`).
    pub fn check(&self) -> ConfigResult {
        if self.channels.is_empty() {
            return Err(ConfigError::new(
                "align.channels",
                "must name at least one channel",
            ));
        }
        let mut seen = BTreeMap::new();
        for (i, channel) in self.channels.iter().enumerate() {
            if let Some(first) = seen.insert(channel, i) {
                return Err(ConfigError::new(
                    format!("align.channels[{i}]"),
                    format!("{channel} is already channels[{first}]; each channel appears once"),
                ));
            }
        }
        if !(1..=MAX_SAMPLE_PERIOD_MS).contains(&self.sample_period_ms) {
            return Err(ConfigError::new(
                "align.sample_period_ms",
                format!(
                    "must be between 1 and {MAX_SAMPLE_PERIOD_MS} ms (a year) (got {})",
                    self.sample_period_ms
                ),
            ));
        }
        let most = self.sample_period_ms.saturating_mul(MAX_GAP_PERIODS);
        if !(self.sample_period_ms..=most).contains(&self.max_gap_ms) {
            return Err(ConfigError::new(
                "align.max_gap_ms",
                format!(
                    "must be between sample_period_ms ({}) and {MAX_GAP_PERIODS} periods ({most}) \
                     (got {})",
                    self.sample_period_ms, self.max_gap_ms
                ),
            ));
        }
        Ok(())
    }
}

/// One row of a model's channels at one instant of the grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The instant, a multiple of the sample period.
    pub ts: Timestamp,
    /// One value per channel, in the order of [`AlignConfig::channels`].
    pub values: Vec<f64>,
}

/// An instant that gives no row because some channels have no value recent enough.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    /// The first instant of the condition, a multiple of the sample period.
    pub ts: Timestamp,
    /// The stale channels (older than `max_gap_ms`, or never seen), in channel order.
    pub channels: Vec<SensorKey>,
}

/// What an instant of the grid gives.
#[derive(Debug, Clone, PartialEq)]
pub enum Aligned {
    /// Every channel is fresh: a row to score.
    Row(Row),
    /// A stale condition starts (or its set of channels changes); it lasts until the next
    /// [`Aligned::Row`].
    Stale(Stale),
}

impl Aligned {
    /// The instant.
    pub fn ts(&self) -> Timestamp {
        match self {
            Self::Row(r) => r.ts,
            Self::Stale(s) => s.ts,
        }
    }
}

/// Counters of an [`Aligner`], since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlignerStats {
    /// Readings that updated a channel's value.
    pub used: u64,
    /// Readings at or before the last finalized instant: not used (rule 4).
    pub late: u64,
    /// Readings with the timestamp of the value already held for their channel (rule 6).
    pub duplicates: u64,
    /// Readings older than the value held for their channel, but not late (rule 6).
    pub superseded: u64,
    /// Readings of a sensor that is not one of the channels.
    pub unknown: u64,
    /// Readings too close to the end of time for any instant of the grid to follow them.
    pub out_of_range: u64,
    /// Rows emitted.
    pub rows: u64,
    /// Stale items emitted.
    pub stale: u64,
    /// Instants of the grid that gave no row (stale, reported or not).
    pub unscored: u64,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    ts: i64,
    value: f64,
}

/// The streaming aligner of one machine (one owner task): feed it readings, collect what
/// they finalize. Memory is O(channels); readings allocate nothing, rows allocate their values.
///
/// The machine of a reading is not looked at: the caller routes each machine's readings to its
/// own aligner.
#[derive(Debug, Clone)]
pub struct Aligner {
    config: AlignConfig,
    period: i64,
    max_gap: i64,
    /// Channels sorted by key, with their column.
    index: Vec<(SensorKey, usize)>,
    /// Per channel, the latest value with `ts <= next`.
    base: Vec<Option<Sample>>,
    /// Per channel, the latest value with `next < ts < next + period`.
    ahead: Vec<Option<Sample>>,
    ahead_count: usize,
    /// The open instant; `None` before the first reading.
    next: Option<i64>,
    /// Scratch: the stale channels at the instant being decided.
    stale_now: Vec<bool>,
    /// The stale channels of the open stale condition, when `stale_open`.
    stale_mask: Vec<bool>,
    stale_open: bool,
    stats: AlignerStats,
}

impl Aligner {
    /// An aligner that has seen nothing, for a checked `config`.
    pub fn new(config: AlignConfig) -> ConfigResult<Self> {
        config.check()?;
        let n = config.channels.len();
        let mut index: Vec<(SensorKey, usize)> = config
            .channels
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, k)| (k, i))
            .collect();
        index.sort();
        // check() bounds both settings well below i64::MAX.
        let period = i64::try_from(config.sample_period_ms).unwrap_or(i64::MAX);
        let max_gap = i64::try_from(config.max_gap_ms).unwrap_or(i64::MAX);
        Ok(Self {
            config,
            period,
            max_gap,
            index,
            base: vec![None; n],
            ahead: vec![None; n],
            ahead_count: 0,
            next: None,
            stale_now: vec![false; n],
            stale_mask: vec![false; n],
            stale_open: false,
            stats: AlignerStats::default(),
        })
    }

    /// An aligner rebuilt at start-up from the latest stored value of each channel (one read of
    /// the store). Each channel holds its latest value; the open instant is the first one at or
    /// after the newest of them, so no instant finalized before the restart is emitted again.
    /// Entries of other sensors are counted as unknown; for a sensor given twice, the newer wins.
    pub fn resume_from(config: AlignConfig, latest: &[Latest]) -> ConfigResult<Self> {
        let mut this = Self::new(config)?;
        let mut newest: Option<i64> = None;
        for l in latest {
            let Some(c) = this.column(&l.sensor) else {
                this.stats.unknown += 1;
                continue;
            };
            let ts = l.ts.as_millis();
            if this.base[c].is_none_or(|s| s.ts < ts) {
                this.base[c] = Some(Sample { ts, value: l.value });
            }
            newest = newest.max(Some(ts));
        }
        if let Some(newest) = newest {
            match grid_ceil(newest, this.period) {
                Some(next) => this.next = Some(next),
                None => {
                    // No instant can follow these values: start as if nothing was stored.
                    this.stats.out_of_range += this.base.iter().flatten().count() as u64;
                    this.base.iter_mut().for_each(|b| *b = None);
                }
            }
        }
        Ok(this)
    }

    /// The configuration.
    pub fn config(&self) -> &AlignConfig {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> AlignerStats {
        self.stats
    }

    /// The open instant: the next row or stale item will be at or after it. `None` before the
    /// first reading.
    pub fn open_instant(&self) -> Option<Timestamp> {
        self.next.map(Timestamp::from_millis)
    }

    /// Takes one reading; appends to `out` what it finalizes, in time order.
    pub fn push(&mut self, reading: &Reading, out: &mut Vec<Aligned>) {
        match self.column(&reading.sensor) {
            Some(c) => self.take(c, reading.ts.as_millis(), reading.value, out),
            None => self.stats.unknown += 1,
        }
    }

    /// Takes a batch of readings, in any order (they are taken in timestamp order, stable);
    /// appends to `out` what they finalize, in time order.
    pub fn push_batch(&mut self, readings: &[Reading], out: &mut Vec<Aligned>) {
        if readings.is_sorted_by_key(|r| r.ts) {
            for r in readings {
                self.push(r, out);
            }
        } else {
            let mut sorted: Vec<&Reading> = readings.iter().collect();
            sorted.sort_by_key(|r| r.ts);
            for r in sorted {
                self.push(r, out);
            }
        }
    }

    fn column(&self, sensor: &SensorKey) -> Option<usize> {
        self.index
            .binary_search_by(|(k, _)| k.cmp(sensor))
            .ok()
            .map(|i| self.index[i].1)
    }

    fn take(&mut self, c: usize, ts: i64, value: f64, out: &mut Vec<Aligned>) {
        let next = match self.next {
            Some(next) => next,
            None => match grid_ceil(ts, self.period) {
                Some(next) => {
                    self.next = Some(next);
                    next
                }
                None => {
                    self.stats.out_of_range += 1;
                    return;
                }
            },
        };
        if next.checked_sub(self.period).is_some_and(|last| ts <= last) {
            self.stats.late += 1;
            return;
        }
        let next = match next.checked_add(self.period) {
            Some(end) if ts >= end => self.advance(next, ts, out),
            _ => next,
        };
        let ahead = ts > next;
        let slot = if ahead {
            &mut self.ahead[c]
        } else {
            &mut self.base[c]
        };
        match slot {
            Some(s) if s.ts == ts => self.stats.duplicates += 1,
            Some(s) if s.ts > ts => self.stats.superseded += 1,
            _ => {
                if ahead && slot.is_none() {
                    self.ahead_count += 1;
                }
                *slot = Some(Sample { ts, value });
                self.stats.used += 1;
            }
        }
    }

    /// Finalizes every instant `t` with `t + period <= limit`, from `next`; returns the new
    /// open instant.
    fn advance(&mut self, mut next: i64, limit: i64, out: &mut Vec<Aligned>) -> i64 {
        let p = self.period;
        while let Some(end) = next.checked_add(p).filter(|&end| end <= limit) {
            if self.ahead_count == 0 && self.stale_open {
                // Values are fixed from here to `limit`: skip, in one step, the instants that
                // would repeat the open stale condition (rule 7).
                self.mark_stale(next);
                if self.stale_now == self.stale_mask {
                    let cap = grid_floor(limit, p).unwrap_or(end);
                    let target = self.next_change(next).map_or(cap, |c| c.min(cap));
                    if target > next {
                        let skipped = (target - next) / p;
                        self.stats.unscored = self
                            .stats
                            .unscored
                            .saturating_add(u64::try_from(skipped).unwrap_or(u64::MAX));
                        next = target;
                        continue;
                    }
                }
            }
            self.decide(next, out);
            if self.ahead_count > 0 {
                for (b, a) in self.base.iter_mut().zip(self.ahead.iter_mut()) {
                    if let Some(a) = a.take() {
                        *b = Some(a);
                    }
                }
                self.ahead_count = 0;
            }
            next = end;
        }
        self.next = Some(next);
        next
    }

    /// Emits the row or the stale item of instant `t`, or nothing when it repeats the open
    /// stale condition.
    fn decide(&mut self, t: i64, out: &mut Vec<Aligned>) {
        self.mark_stale(t);
        if !self.stale_now.contains(&true) {
            let values = self.base.iter().flatten().map(|s| s.value).collect();
            out.push(Aligned::Row(Row {
                ts: Timestamp::from_millis(t),
                values,
            }));
            self.stats.rows += 1;
            self.stale_open = false;
            return;
        }
        self.stats.unscored += 1;
        if self.stale_open && self.stale_now == self.stale_mask {
            return;
        }
        let channels = self
            .config
            .channels
            .iter()
            .zip(&self.stale_now)
            .filter(|(_, &stale)| stale)
            .map(|(k, _)| k.clone())
            .collect();
        out.push(Aligned::Stale(Stale {
            ts: Timestamp::from_millis(t),
            channels,
        }));
        self.stats.stale += 1;
        self.stale_mask.copy_from_slice(&self.stale_now);
        self.stale_open = true;
    }

    fn mark_stale(&mut self, t: i64) {
        for (stale, b) in self.stale_now.iter_mut().zip(&self.base) {
            *stale = match b {
                None => true,
                Some(s) => t.checked_sub(s.ts).is_none_or(|age| age > self.max_gap),
            };
        }
    }

    /// The first instant after `t` at which a channel fresh at `t` turns stale, with the values
    /// held now; `None` when none does before the end of time.
    fn next_change(&self, t: i64) -> Option<i64> {
        self.base
            .iter()
            .zip(&self.stale_now)
            .filter(|(_, &stale)| !stale)
            .filter_map(|(b, _)| {
                let s = (*b)?;
                s.ts.checked_add(self.max_gap)?
                    .checked_add(1)
                    .and_then(|first| grid_ceil(first, self.period))
            })
            .filter(|&c| c > t)
            .min()
    }
}

/// The rows and stale items of `readings` (in any order), as an [`Aligner`] fed them as one
/// batch gives them: the rule of the live path, applied to a stored range (training). The open
/// instant at the end is not emitted: a later reading could still change it.
pub fn align(readings: &[Reading], config: &AlignConfig) -> ConfigResult<Vec<Aligned>> {
    let mut aligner = Aligner::new(config.clone())?;
    let mut out = Vec::new();
    aligner.push_batch(readings, &mut out);
    Ok(out)
}

/// The last instant of the grid at or before `ts`; `None` below the first one.
fn grid_floor(ts: i64, period: i64) -> Option<i64> {
    ts.checked_sub(ts.rem_euclid(period))
}

/// The first instant of the grid at or after `ts`; `None` past the last one.
fn grid_ceil(ts: i64, period: i64) -> Option<i64> {
    match ts.rem_euclid(period) {
        0 => Some(ts),
        r => ts.checked_add(period - r),
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::ids::MachineKey;

    fn key(s: &str) -> SensorKey {
        SensorKey::new(s).expect("test key")
    }

    fn config(channels: &[&str], period: u64, gap: u64) -> AlignConfig {
        AlignConfig {
            channels: channels.iter().map(|c| key(c)).collect(),
            sample_period_ms: period,
            max_gap_ms: gap,
        }
    }

    fn r(ch: &str, ts: i64, value: f64) -> Reading {
        Reading {
            machine: MachineKey::new("m").expect("test key"),
            sensor: key(ch),
            ts: Timestamp::from_millis(ts),
            value,
        }
    }

    fn row(ts: i64, values: &[f64]) -> Aligned {
        Aligned::Row(Row {
            ts: Timestamp::from_millis(ts),
            values: values.to_vec(),
        })
    }

    fn stale(ts: i64, channels: &[&str]) -> Aligned {
        Aligned::Stale(Stale {
            ts: Timestamp::from_millis(ts),
            channels: channels.iter().map(|c| key(c)).collect(),
        })
    }

    fn feed(aligner: &mut Aligner, readings: &[Reading]) -> Vec<Aligned> {
        let mut out = Vec::new();
        for x in readings {
            aligner.push(x, &mut out);
        }
        out
    }

    fn ab() -> Aligner {
        Aligner::new(config(&["a", "b"], 1_000, 3_000)).expect("valid")
    }

    #[test]
    fn aligner_is_send_and_sync() {
        fn is<T: Send + Sync>() {}
        is::<Aligner>();
        is::<Aligned>();
        is::<AlignConfig>();
    }

    #[test]
    fn config_errors_name_the_setting() {
        let cases = [
            (config(&[], 1_000, 1_000), "align.channels"),
            (config(&["a", "b", "a"], 1_000, 1_000), "align.channels[2]"),
            (config(&["a"], 0, 1_000), "align.sample_period_ms"),
            (
                config(&["a"], MAX_SAMPLE_PERIOD_MS + 1, MAX_SAMPLE_PERIOD_MS + 1),
                "align.sample_period_ms",
            ),
            (config(&["a"], 1_000, 999), "align.max_gap_ms"),
            (config(&["a"], 1, MAX_GAP_PERIODS + 1), "align.max_gap_ms"),
        ];
        for (c, setting) in cases {
            let err = Aligner::new(c.clone()).expect_err(setting);
            assert_eq!(err.setting, setting, "{err}");
            assert!(align(&[], &c).is_err());
        }
        let err = config(&["a", "b", "a"], 1_000, 1_000)
            .check()
            .expect_err("duplicate");
        assert_eq!(
            err.to_string(),
            "align.channels[2]: a is already channels[0]; each channel appears once"
        );
        assert!(config(&["a"], 1, MAX_GAP_PERIODS).check().is_ok());
        assert!(config(&["a"], MAX_SAMPLE_PERIOD_MS, MAX_SAMPLE_PERIOD_MS)
            .check()
            .is_ok());
    }

    #[test]
    fn values_are_carried_forward_in_channel_order() {
        let mut al = ab();
        let out = feed(
            &mut al,
            &[
                r("b", 0, 2.0),
                r("a", 0, 1.0),
                r("a", 1_000, 3.0),
                r("a", 2_000, 5.0),
            ],
        );
        assert_eq!(out, [row(0, &[1.0, 2.0]), row(1_000, &[3.0, 2.0])]);
        assert_eq!(al.open_instant(), Some(Timestamp::from_millis(2_000)));
        let s = al.stats();
        assert_eq!((s.used, s.rows, s.stale, s.unscored), (4, 2, 0, 0));
    }

    #[test]
    fn a_row_is_final_only_a_period_later() {
        let mut al = ab();
        let mut out = feed(&mut al, &[r("a", 0, 1.0), r("b", 0, 2.0), r("a", 999, 9.0)]);
        assert!(out.is_empty(), "999 is before 0 + period");
        // b arrives a period after a, in its own message: still in time for the row at 1000.
        out.extend(feed(&mut al, &[r("a", 1_500, 4.0), r("b", 1_000, 3.0)]));
        assert_eq!(out, [row(0, &[1.0, 2.0])]);
        out.extend(feed(&mut al, &[r("a", 2_000, 5.0)]));
        assert_eq!(out, [row(0, &[1.0, 2.0]), row(1_000, &[9.0, 3.0])]);
    }

    #[test]
    fn the_grid_is_epoch_aligned_and_starts_at_the_first_reading() {
        let mut al = ab();
        let out = feed(
            &mut al,
            &[r("a", 1_500, 1.0), r("b", 1_600, 2.0), r("a", 3_000, 3.0)],
        );
        assert_eq!(out, [row(2_000, &[1.0, 2.0])]);
        // Negative timestamps floor towards minus infinity.
        let mut al = ab();
        let out = feed(
            &mut al,
            &[r("a", -1_500, 1.0), r("b", -1_500, 2.0), r("a", 0, 3.0)],
        );
        assert_eq!(out, [row(-1_000, &[1.0, 2.0])]);
    }

    #[test]
    fn a_channel_never_seen_is_stale() {
        let mut al = ab();
        let out = feed(
            &mut al,
            &[
                r("a", 0, 1.0),
                r("a", 1_000, 2.0),
                r("b", 1_000, 7.0),
                r("a", 2_000, 3.0),
            ],
        );
        assert_eq!(out, [stale(0, &["b"]), row(1_000, &[2.0, 7.0])]);
        assert_eq!(al.stats().unscored, 1);
    }

    #[test]
    fn a_channel_silent_past_max_gap_is_stale_once_then_recovers() {
        let mut al = ab();
        let mut readings = vec![r("b", 0, 9.0)];
        for k in 0..=9 {
            readings.push(r("a", k * 1_000, k as f64));
            if k == 8 {
                readings.push(r("b", 8_000, 8.0));
            }
        }
        readings.push(r("a", 10_000, 10.0));
        let out = feed(&mut al, &readings);
        assert_eq!(
            out,
            [
                row(0, &[0.0, 9.0]),
                row(1_000, &[1.0, 9.0]),
                row(2_000, &[2.0, 9.0]),
                row(3_000, &[3.0, 9.0]), // 3000 - 0 = max_gap: still fresh
                stale(4_000, &["b"]),    // one item for 4000..=7000
                row(8_000, &[8.0, 8.0]),
                row(9_000, &[9.0, 8.0]),
            ]
        );
        let s = al.stats();
        assert_eq!((s.rows, s.stale, s.unscored), (6, 1, 4));
    }

    #[test]
    fn late_readings_are_counted_and_not_used() {
        let mut al = ab();
        let mut out = feed(
            &mut al,
            &[
                r("a", 0, 1.0),
                r("b", 0, 2.0),
                r("a", 1_000, 3.0),
                r("b", 1_000, 4.0),
            ],
        );
        out.extend(feed(&mut al, &[r("a", 2_000, 5.0)]));
        assert_eq!(out.len(), 2);
        // 1000 is finalized: a reading at or before it is late, even for the channel that was
        // silent since.
        out.extend(feed(&mut al, &[r("b", 1_000, 40.0), r("b", 500, 40.0)]));
        assert_eq!(al.stats().late, 2);
        out.extend(feed(&mut al, &[r("a", 3_000, 6.0)]));
        assert_eq!(out.last(), Some(&row(2_000, &[5.0, 4.0])));
    }

    #[test]
    fn duplicates_keep_the_first_and_older_readings_are_superseded() {
        let mut al = ab();
        let out = feed(
            &mut al,
            &[
                r("a", 0, 1.0),
                r("b", 0, 2.0),
                r("a", 0, 100.0),  // duplicate
                r("a", 500, 5.0),  // ahead of 0
                r("a", 500, 50.0), // duplicate of the value ahead
                r("a", 400, 4.0),  // older than the value ahead
                r("b", 1_000, 3.0),
                r("a", 1_000, 6.0),
                r("a", 900, 9.0), // older than the value held for 1000
                r("a", 2_000, 7.0),
            ],
        );
        assert_eq!(out, [row(0, &[1.0, 2.0]), row(1_000, &[6.0, 3.0])]);
        let s = al.stats();
        assert_eq!((s.duplicates, s.superseded, s.used), (2, 2, 6));
    }

    #[test]
    fn unknown_sensors_are_counted() {
        let mut al = ab();
        let out = feed(&mut al, &[r("c", 0, 1.0), r("c", 5_000, 1.0)]);
        assert!(out.is_empty());
        assert_eq!(al.stats().unknown, 2);
        assert_eq!(al.open_instant(), None);
    }

    #[test]
    fn a_gap_emits_a_bounded_number_of_items() {
        let mut al = ab();
        let mut out = feed(&mut al, &[r("a", 0, 1.0), r("b", 2_000, 2.0)]);
        assert_eq!(out, [stale(0, &["b"])]);
        // No data for a very long time: rows while both are fresh, then one item each time
        // the set of stale channels changes, then nothing.
        out.clear();
        out.extend(feed(&mut al, &[r("a", 1_000_000_000, 3.0)]));
        assert_eq!(
            out,
            [
                row(2_000, &[1.0, 2.0]),
                row(3_000, &[1.0, 2.0]),
                stale(4_000, &["a"]),
                stale(6_000, &["a", "b"]),
            ]
        );
        let s = al.stats();
        // 0 and 1000 before, then 4000, 5000, 6000 and everything from 7000 on.
        assert_eq!(s.unscored, 2 + 3 + (1_000_000_000 - 7_000) / 1_000);
        // Data again: rows again once both are fresh.
        out.clear();
        out.extend(feed(
            &mut al,
            &[r("b", 1_000_000_000, 4.0), r("a", 1_000_001_000, 5.0)],
        ));
        assert_eq!(out, [row(1_000_000_000, &[3.0, 4.0])]);
    }

    #[test]
    fn a_far_future_timestamp_is_bounded_and_makes_the_rest_late() {
        let mut al = ab();
        let mut out = feed(&mut al, &[r("a", 0, 1.0), r("b", 0, 2.0)]);
        out.extend(feed(&mut al, &[r("a", i64::MAX, 3.0)]));
        assert_eq!(
            out,
            [
                row(0, &[1.0, 2.0]),
                row(1_000, &[1.0, 2.0]),
                row(2_000, &[1.0, 2.0]),
                row(3_000, &[1.0, 2.0]),
                stale(4_000, &["a", "b"]),
            ]
        );
        out.clear();
        out.extend(feed(&mut al, &[r("b", 5_000, 4.0), r("a", i64::MAX, 3.0)]));
        assert!(out.is_empty());
        let s = al.stats();
        assert_eq!((s.late, s.duplicates), (1, 1));
    }

    #[test]
    fn i64_extremes_do_not_overflow() {
        let extremes = [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX];
        for period in [1, 7, 1_000, MAX_SAMPLE_PERIOD_MS] {
            for gap in [period, period * MAX_GAP_PERIODS] {
                for &first in &extremes {
                    let mut al = Aligner::new(AlignConfig {
                        channels: vec![key("a"), key("b")],
                        sample_period_ms: period,
                        max_gap_ms: gap,
                    })
                    .expect("valid");
                    let mut out = Vec::new();
                    for &ts in std::iter::once(&first).chain(&extremes) {
                        al.push(&r("a", ts, 1.0), &mut out);
                        al.push(&r("b", ts, 1.0), &mut out);
                    }
                    // Bounded: the rows of one gap and the stale items of two channels.
                    assert!(out.len() as u64 <= 3 * (MAX_GAP_PERIODS + 1) + 4);
                    assert!(out.windows(2).all(|w| w[0].ts() < w[1].ts()));
                }
            }
        }
        // Nothing of the grid follows i64::MAX with a period of 1000.
        let mut al = ab();
        assert!(feed(&mut al, &[r("a", i64::MAX, 1.0)]).is_empty());
        assert_eq!(al.stats().out_of_range, 1);
        assert_eq!(al.open_instant(), None);
    }

    #[test]
    fn resume_rebuilds_from_the_latest_values() {
        let latest = |s: &str, ts: i64, value: f64| Latest {
            sensor: key(s),
            ts: Timestamp::from_millis(ts),
            value,
        };
        let c = config(&["a", "b"], 1_000, 3_000);
        let mut al = Aligner::resume_from(
            c.clone(),
            &[
                latest("a", 1_990, 1.0),
                latest("b", 1_500, 2.0),
                latest("z", 0, 0.0),
            ],
        )
        .expect("valid");
        assert_eq!(al.open_instant(), Some(Timestamp::from_millis(2_000)));
        assert_eq!(al.stats().unknown, 1);
        let out = feed(
            &mut al,
            &[r("a", 1_000, 9.0), r("b", 2_000, 3.0), r("a", 3_000, 4.0)],
        );
        assert_eq!(out, [row(2_000, &[1.0, 3.0])]);
        assert_eq!(al.stats().late, 1);

        // The same as an aligner that saw the whole history, from the open instant on.
        let history = [
            r("a", 0, 0.5),
            r("b", 1_500, 2.0),
            r("a", 1_990, 1.0),
            r("b", 2_000, 3.0),
            r("a", 3_000, 4.0),
        ];
        let full = align(&history, &c).expect("valid");
        let from_open: Vec<_> = full
            .into_iter()
            .filter(|x| x.ts() >= Timestamp::from_millis(2_000))
            .collect();
        assert_eq!(from_open, out);

        let empty = Aligner::resume_from(c, &[]).expect("valid");
        assert_eq!(empty.open_instant(), None);
    }

    /// A stream of three channels at about a second apart, with jitter, dropped and repeated
    /// readings, and gaps; sorted by time.
    fn stream(rng: &mut StdRng) -> Vec<Reading> {
        let mut out = Vec::new();
        let mut t: i64 = rng.random_range(-5_000..5_000);
        for _ in 0..400 {
            if rng.random_ratio(1, 40) {
                t += rng.random_range(2_000..20_000); // a gap
            }
            t += rng.random_range(200..1_200);
            for ch in ["a", "b", "c"] {
                if rng.random_ratio(1, 8) {
                    continue; // dropped
                }
                // Jitter below the smallest step: a channel's timestamps stay distinct, so only
                // replays (same value) share one; channels still arrive out of order.
                let ts = t + rng.random_range(0..200);
                let value = f64::from(rng.random_range(-1_000..1_000)) / 10.0;
                out.push(r(ch, ts, value));
                if rng.random_ratio(1, 20) {
                    out.push(r(ch, ts, value)); // replayed
                }
            }
        }
        out.sort_by_key(|x| x.ts);
        out
    }

    /// Compares two outputs, naming the first difference (outputs are long).
    fn same(got: &[Aligned], want: &[Aligned], what: &str) {
        if let Some(i) = (0..got.len().max(want.len())).find(|&i| got.get(i) != want.get(i)) {
            panic!(
                "{what}: item {i} differs: {:?} against {:?} ({} items against {})",
                got.get(i),
                want.get(i),
                got.len(),
                want.len()
            );
        }
    }

    #[test]
    fn any_split_into_batches_in_any_order_gives_the_rows_of_align() {
        for seed in 0..40 {
            let mut rng = StdRng::seed_from_u64(seed);
            let readings = stream(&mut rng);
            let period = [500, 1_000, 1_300][seed as usize % 3];
            let c = config(
                &["a", "b", "c"],
                period,
                period * [1, 3, 10][(seed as usize / 3) % 3],
            );
            let whole = align(&readings, &c).expect("valid");
            assert!(
                whole.iter().any(|x| matches!(x, Aligned::Row(_))),
                "seed {seed}"
            );
            assert!(whole.windows(2).all(|w| w[0].ts() < w[1].ts()));

            let mut shuffled = readings.clone();
            shuffled.shuffle(&mut rng);
            same(
                &align(&shuffled, &c).expect("valid"),
                &whole,
                &format!("seed {seed}, shuffled"),
            );

            let mut reference = Aligner::new(c.clone()).expect("valid");
            let one_by_one = feed(&mut reference, &readings);
            same(&one_by_one, &whole, &format!("seed {seed}, one by one"));

            for _ in 0..5 {
                let mut al = Aligner::new(c.clone()).expect("valid");
                let mut out = Vec::new();
                let mut rest = &readings[..];
                while !rest.is_empty() {
                    let n = rng.random_range(1..=rest.len().min(60));
                    let mut batch = rest[..n].to_vec();
                    batch.shuffle(&mut rng);
                    al.push_batch(&batch, &mut out);
                    rest = &rest[n..];
                }
                same(&out, &whole, &format!("seed {seed}, in batches"));
                assert_eq!(al.stats(), reference.stats(), "seed {seed}");
            }
        }
    }

    #[test]
    fn readings_out_of_order_across_batches_give_the_rows_of_the_readings_not_late() {
        // The live case: some readings arrive after later ones (another message, a retry). Those
        // that arrive too late are dropped; every other one counts as if it had come in time.
        for seed in 0..30 {
            let mut rng = StdRng::seed_from_u64(200 + seed);
            let sorted = stream(&mut rng);
            let mut arrival: Vec<(usize, &Reading)> = sorted
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    let delay = if rng.random_ratio(1, 6) {
                        rng.random_range(1..12)
                    } else {
                        0
                    };
                    (i + delay, x)
                })
                .collect();
            arrival.sort_by_key(|(at, _)| *at);
            let c = config(&["a", "b", "c"], 1_000, 3_000);
            let period = 1_000;
            let mut al = Aligner::new(c.clone()).expect("valid");
            let mut out = Vec::new();
            let mut on_time = Vec::new();
            let mut late = 0;
            for (_, x) in arrival {
                let open = al.open_instant().map(Timestamp::as_millis);
                if open.is_some_and(|o| x.ts.as_millis() <= o - period) {
                    late += 1;
                } else {
                    on_time.push(x.clone());
                }
                al.push(x, &mut out);
            }
            assert!(late > 0, "seed {seed}: the test should see late readings");
            assert_eq!(al.stats().late, late, "seed {seed}");
            same(
                &out,
                &align(&on_time, &c).expect("valid"),
                &format!("seed {seed}, out of order"),
            );
        }
    }

    #[test]
    fn every_instant_matches_a_naive_reading_of_the_rules() {
        // Visit every instant from the first to the last final one, with values found by a
        // direct search of the readings and the "report a stale condition once" rule: the
        // aligner, which skips the instants of a long silence, must give exactly this.
        for (seed, period, gap) in
            (0..24).map(|s| (s, [1_000, 700][s as usize % 2], [1, 3][s as usize / 2 % 2]))
        {
            let mut rng = StdRng::seed_from_u64(100 + seed);
            let readings = stream(&mut rng);
            let c = config(&["a", "b", "c"], period, period * gap);
            let (p, max_gap) = (period as i64, (period * gap) as i64);
            let first = readings[0].ts.as_millis();
            let newest = readings
                .iter()
                .map(|x| x.ts.as_millis())
                .max()
                .unwrap_or(first);
            let mut want = Vec::new();
            let mut open: Option<Vec<SensorKey>> = None;
            let mut t = grid_ceil(first, p).expect("in range");
            while t + p <= newest {
                let latest: Vec<Option<&Reading>> = c
                    .channels
                    .iter()
                    .map(|k| {
                        readings
                            .iter()
                            .filter(|x| &x.sensor == k && x.ts.as_millis() <= t)
                            .max_by_key(|x| x.ts)
                    })
                    .collect();
                let fresh =
                    |x: &Option<&Reading>| x.is_some_and(|x| t - x.ts.as_millis() <= max_gap);
                let stale: Vec<SensorKey> = c
                    .channels
                    .iter()
                    .zip(&latest)
                    .filter(|(_, x)| !fresh(x))
                    .map(|(k, _)| k.clone())
                    .collect();
                if stale.is_empty() {
                    // Replays carry the same value, so any of the latest will do.
                    want.push(row(
                        t,
                        &latest.iter().flatten().map(|x| x.value).collect::<Vec<_>>(),
                    ));
                    open = None;
                } else if open.as_ref() != Some(&stale) {
                    want.push(Aligned::Stale(Stale {
                        ts: Timestamp::from_millis(t),
                        channels: stale.clone(),
                    }));
                    open = Some(stale);
                }
                t += p;
            }
            let got = align(&readings, &c).expect("valid");
            assert!(
                want.iter().any(|x| matches!(x, Aligned::Row(_))),
                "seed {seed}"
            );
            same(&got, &want, &format!("seed {seed}, naive"));
        }
    }
}
