//! Results the tool's own definitions make impossible, and machines too noisy to compare on.
//!
//! - **The floor** is one cache line bounced between the two processes (`baseline.rs`): nothing
//!   moves a message between two processes in less. A floor above [`FLOOR_MAX_NS`] is not a
//!   cache line moving but the processes waiting for a CPU: it is suspect and measured again.
//! - **A cell below the floor**: a latency or wake cell whose p50 is below the lowest sane floor
//!   of the run (less [`FLOOR_TOLERANCE`] for the histogram's rounding) cannot be: it is suspect
//!   and measured again.
//! - **Noise**: the floor is measured before the first transport and after each; if its p50
//!   moved by more than [`NOISE_SPREAD`]× during the run (as a VM's vCPUs move between cores),
//!   or no floor was sane, numbers taken seconds apart do not compare, and the report says so
//!   instead of printing confident ratios.
//!
//! - **Unsteady cells**: with several rounds, a cell whose rounds differ by more than
//!   [`ROUND_SPREAD`]× (highest over lowest) was hit by a slowdown of the machine in some of them
//!   — on the bench's VM whole rounds of a stream ran 10× slower while the floor stayed put —
//!   so its median compares less well than its neighbours'. The table marks it.
//!
//! Everything here is a pure function of measurements, so it is tested on synthetic ones.

use serde::{Deserialize, Serialize};

use crate::results::{format_ns, Latency, Measurement, Pattern, Spread};

/// A floor above this (10 µs) is the processes waiting for a CPU, not a cache line moving.
pub const FLOOR_MAX_NS: u64 = 10_000;
/// The most the floor's p50 may move within a run (largest over smallest) before the machine is
/// called too noisy to compare on.
pub const NOISE_SPREAD: f64 = 2.0;
/// How far below the floor a p50 may read before it is impossible: the histogram keeps three
/// significant digits, and the floor and the cell are two samples of one distribution's edge.
pub const FLOOR_TOLERANCE: f64 = 0.95;

/// The most a cell's rounds may differ (highest value over lowest) before the cell is unsteady.
/// The rounds of a steady cell on the bench's VM stay within 2× (wake-ups, the widest, within
/// 1.8×); a slowdown of the machine makes a stream's round 10–15× slower.
pub const ROUND_SPREAD: f64 = 3.0;

/// A result the tool's definitions make impossible: which, why, and how often it was measured
/// again. In the JSON file under the optional top-level `suspect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suspect {
    /// The transport's name (`cache-line` for the floor).
    pub transport: String,
    /// The pattern.
    pub pattern: Pattern,
    /// Message size in bytes.
    pub size: u64,
    /// What was impossible about the first result.
    pub reason: String,
    /// How many times it was measured again.
    pub retries: u32,
    /// Whether the last measurement is still impossible (then the table flags it).
    pub unresolved: bool,
}

/// The spread of the floor over a run. In the JSON file under the optional top-level `noise`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Noise {
    /// The lowest p50 of the floors judged (all of them, but see `trimmed`).
    pub floor_min_ns: u64,
    /// The highest.
    pub floor_max_ns: u64,
    /// How many floors were left out at each end before judging: with three rounds or more,
    /// the lowest and highest tenth, since each cell is then the median of its rounds, which a
    /// passing slowdown in one round does not move.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub trimmed: u32,
    /// Highest over lowest.
    pub spread: f64,
    /// [`NOISE_SPREAD`].
    pub threshold: f64,
    /// Whether the machine was too noisy to compare on: `spread > threshold`, or every floor was
    /// above [`FLOOR_MAX_NS`].
    pub noisy: bool,
}

/// What is impossible about a floor, if anything.
pub fn floor_problem(floor: &Latency) -> Option<String> {
    (floor.p50_ns > FLOOR_MAX_NS).then(|| {
        format!(
            "a cache line took {} to move (p50), above the {} the floor can take: the processes waited for a CPU",
            format_ns(floor.p50_ns as f64),
            format_ns(FLOOR_MAX_NS as f64)
        )
    })
}

/// The lowest p50 of the sane floors (those without a [`floor_problem`]), if any.
pub fn lowest_floor(floors: &[Latency]) -> Option<u64> {
    floors
        .iter()
        .filter(|f| floor_problem(f).is_none())
        .map(|f| f.p50_ns)
        .min()
}

/// What is impossible about a cell, given the lowest sane floor of its run: a latency or wake
/// p50 below the floor (with [`FLOOR_TOLERANCE`]). Throughput is not bounded by the floor (a
/// stream overlaps its messages).
pub fn cell_problem(m: &Measurement, floor_p50: Option<u64>) -> Option<String> {
    let (Measurement::Latency(l), Some(floor)) = (m, floor_p50) else {
        return None;
    };
    if !matches!(l.pattern, Pattern::Latency | Pattern::Wake) {
        return None;
    }
    ((l.p50_ns as f64) < floor as f64 * FLOOR_TOLERANCE).then(|| {
        format!(
            "one-way p50 {} is below the floor ({}): no message moves faster than a cache line",
            format_ns(l.p50_ns as f64),
            format_ns(floor as f64)
        )
    })
}

/// Whether a cell's rounds differ by more than [`ROUND_SPREAD`]× (a round that measured nothing,
/// at zero, counts as differing).
pub fn unsteady(spread: &Spread) -> bool {
    spread.lowest <= 0.0 || spread.highest / spread.lowest > ROUND_SPREAD
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The floor's spread over a run of `rounds` rounds; `None` without floors.
pub fn noise(floors: &[Latency], rounds: u32) -> Option<Noise> {
    let mut p50s: Vec<u64> = floors.iter().map(|f| f.p50_ns).collect();
    p50s.sort_unstable();
    let trimmed = if rounds >= 3 { p50s.len() / 10 } else { 0 };
    let judged = &p50s[trimmed..p50s.len() - trimmed];
    let (&min, &max) = (judged.first()?, judged.last()?);
    let spread = max as f64 / min.max(1) as f64;
    Some(Noise {
        floor_min_ns: min,
        floor_max_ns: max,
        trimmed: trimmed as u32,
        spread,
        threshold: NOISE_SPREAD,
        noisy: spread > NOISE_SPREAD || lowest_floor(floors).is_none(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lat(transport: &str, pattern: Pattern, p50: u64) -> Latency {
        Latency::flat(transport, pattern, p50)
    }

    fn floor(p50: u64) -> Latency {
        lat(crate::BASELINE, Pattern::Latency, p50)
    }

    /// Issue #14: a busy machine printed `floor: p50 4.00 ms` without a word.
    #[test]
    fn a_floor_above_ten_microseconds_is_impossible() {
        assert_eq!(floor_problem(&floor(120)), None);
        assert_eq!(floor_problem(&floor(FLOOR_MAX_NS)), None);
        let why = floor_problem(&floor(4_000_000)).unwrap();
        assert!(why.contains("4.00 ms"), "{why}");
        // A floor that is not sane is no floor to compare with.
        assert_eq!(
            lowest_floor(&[floor(4_000_000), floor(150), floor(90)]),
            Some(90)
        );
        assert_eq!(lowest_floor(&[floor(4_000_000)]), None);
    }

    /// Issue #14: `lowest: channel-spin at 64 B, 0.0× the floor` was printed without a word.
    #[test]
    fn a_latency_or_wake_below_the_floor_is_impossible() {
        let m = |pattern, p50| Measurement::Latency(lat("channel-spin", pattern, p50));
        assert!(cell_problem(&m(Pattern::Latency, 40), Some(100)).is_some());
        assert!(cell_problem(&m(Pattern::Wake, 40), Some(100)).is_some());
        // At the floor, or within the histogram's rounding of it: possible.
        assert_eq!(cell_problem(&m(Pattern::Latency, 100), Some(100)), None);
        assert_eq!(cell_problem(&m(Pattern::Latency, 96), Some(100)), None);
        assert_eq!(cell_problem(&m(Pattern::Latency, 300), Some(100)), None);
        // Without a sane floor nothing is compared.
        assert_eq!(cell_problem(&m(Pattern::Latency, 1), None), None);
        // Throughput is not bounded by the floor.
        let t = Measurement::Throughput(crate::Throughput {
            transport: "pipe".into(),
            pattern: Pattern::Throughput,
            size: 64,
            messages: 1,
            seconds: 1.0,
            msgs_per_sec: 1e12,
            bytes_per_sec: 64e12,
        });
        assert_eq!(cell_problem(&t, Some(100)), None);
    }

    #[test]
    fn a_floor_that_moves_more_than_the_threshold_makes_the_run_noisy() {
        assert_eq!(noise(&[], 1), None);
        let steady = noise(&[floor(100), floor(120), floor(190)], 1).unwrap();
        assert!(!steady.noisy, "{steady:?}");
        assert_eq!((steady.floor_min_ns, steady.floor_max_ns), (100, 190));
        // 33 to 166 ns between samples of one run (the VM).
        let moving = noise(&[floor(33), floor(166), floor(40)], 1).unwrap();
        assert!(moving.noisy, "{moving:?}");
        assert!((moving.spread - 166.0 / 33.0).abs() < 1e-9);
        // Every floor insane: noisy whatever the spread.
        assert!(
            noise(&[floor(4_000_000), floor(4_100_000)], 1)
                .unwrap()
                .noisy
        );
    }

    /// Issue #14: a run printed `channel` streaming 64 KiB at "2.41 GB/s [2.39 GB/s–38.26 GB/s]"
    /// as confidently as its steady cells (two of three rounds ran 15× slower, the floor steady).
    #[test]
    fn a_cell_whose_rounds_differ_more_than_threefold_is_unsteady() {
        let spread = |lowest: f64, highest: f64| Spread {
            transport: "channel".into(),
            pattern: Pattern::Throughput,
            size: 65536,
            lowest,
            highest,
        };
        assert!(unsteady(&spread(2.39e9, 38.26e9)));
        assert!(!unsteady(&spread(35.35e9, 37.58e9)));
        // Latency in nanoseconds: a wake-up's usual spread is steady, a tripled p50 is not.
        assert!(!unsteady(&spread(21_300.0, 38_560.0)));
        assert!(unsteady(&spread(891.0, 2_870.0)));
        assert!(!unsteady(&spread(100.0, 300.0)));
        assert!(unsteady(&spread(0.0, 1.0)));
    }

    /// With three rounds or more each cell is a median, so a tenth of the floors at each end
    /// may be off (measured: 46 floors, 40 of them at 60–65 ns, three at 40 and three at
    /// 205–215 ns while the vCPUs moved); in a single round every floor counts.
    #[test]
    fn with_rounds_the_outer_tenths_of_the_floors_are_left_out() {
        let mut floors: Vec<Latency> = (0..40).map(|i| floor(60 + i % 6)).collect();
        floors.extend([40, 40, 40, 205, 210, 215].map(floor));
        let single = noise(&floors, 1).unwrap();
        assert!(single.noisy && single.trimmed == 0, "{single:?}");
        let rounds = noise(&floors, 3).unwrap();
        assert!(!rounds.noisy, "{rounds:?}");
        assert_eq!(
            (rounds.floor_min_ns, rounds.floor_max_ns, rounds.trimmed),
            (60, 65, 4)
        );
        // A noisy machine stays noisy: a fifth of the floors off at one end.
        floors.extend([300; 8].map(floor));
        assert!(noise(&floors, 3).unwrap().noisy);
    }
}
