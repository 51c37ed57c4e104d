//! The results of a run: what the JSON file holds, the cells that could not be measured, and the
//! transports × sizes table the command prints.
//!
//! ```json
//! {"machine": {"cpus": 2, "cpu_model": "…", "kernel": "6.8.0"},
//!  "results": [
//!   {"transport": "pipe", "pattern": "latency", "size": 64, "iterations": 10000,
//!    "mean_ns": 4211.5, "p50_ns": 4100, "p90_ns": 4500, "p99_ns": 7000, "p999_ns": 12000,
//!    "max_ns": 40000},
//!   {"transport": "channel", "pattern": "throughput", "size": 65536, "messages": 81234,
//!    "seconds": 2.0, "msgs_per_sec": 40617.0, "bytes_per_sec": 2661875712.0}]}
//! ```
//! Latencies are one-way: half a round trip (`wake` cells, of pattern `"wake"` with the fields of
//! a latency cell: receive time − send time). Optional top-level keys: `baseline` (the floor
//! shown), `floors` (every measurement of the floor in the run), `skipped`, `suspect` (results
//! the tool's own definitions make impossible, see [`crate::sanity`]), `noise` (the floor's
//! spread, and whether the run was too noisy to compare on), `placement` (`--pin`),
//! `wake_pause_ns`, `notes` (what `--quick` cut; a peer's settings), `rounds` and `spread` (with
//! `--rounds N`: each result is the median of N interleaved rounds, and `spread` holds each
//! cell's lowest and highest value — p50 nanoseconds, or bytes per second), `runs` (a merge of
//! that many runs, whose latency cells then carry their own run's floor, `run_floor_ns`).

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use ipckit::Object;

use crate::error::{Error, Result};
use crate::placement::Placement;
use crate::sanity::{Noise, Suspect};

/// What a measurement measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pattern {
    /// Ping-pong between two processes; one-way latency = round trip / 2.
    Latency,
    /// A one-way stream as fast as it goes; the receiver acknowledges the end.
    Throughput,
    /// One message after each pause (1 ms by default), so that the receiver is asleep when it
    /// comes; one-way latency = receive time − send time (one clock for both processes).
    Wake,
}

impl Pattern {
    /// `"latency"` or `"throughput"`.
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Latency => "latency",
            Pattern::Throughput => "throughput",
            Pattern::Wake => "wake",
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Pattern {
    type Err = Error;
    fn from_str(s: &str) -> Result<Pattern> {
        match s {
            "latency" => Ok(Pattern::Latency),
            "throughput" => Ok(Pattern::Throughput),
            "wake" => Ok(Pattern::Wake),
            _ => Err(Error::invalid(
                "parse pattern",
                Object::Other(format!("{s:?}").into()),
                "expected latency, throughput or wake",
            )),
        }
    }
}

/// The machine a run was made on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// CPUs this process may run on.
    pub cpus: u64,
    /// The CPU's model name from `/proc/cpuinfo` ("unknown" if it has none).
    pub cpu_model: String,
    /// The kernel release (`/proc/sys/kernel/osrelease`).
    pub kernel: String,
}

impl Machine {
    /// The machine this process runs on.
    pub fn current() -> Machine {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                matches!(k.trim(), "model name" | "Model" | "cpu model" | "Hardware")
                    .then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".to_string());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".to_string());
        Machine {
            cpus,
            cpu_model,
            kernel,
        }
    }
}

/// One latency or wake cell: one-way latency in nanoseconds, from an HDR histogram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// The transport's name.
    pub transport: String,
    /// [`Pattern::Latency`] or [`Pattern::Wake`].
    pub pattern: Pattern,
    /// Message size in bytes.
    pub size: u64,
    /// Round trips (latency) or messages (wake) measured, after warm-up.
    pub iterations: u64,
    /// Mean one-way latency.
    pub mean_ns: f64,
    /// Median.
    pub p50_ns: u64,
    /// 90th percentile.
    pub p90_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Largest.
    pub max_ns: u64,
    /// In a report merged from runs measured apart (`bench merge`): the p50 of the floor of
    /// the run that measured this cell, the only floor it compares with; `None` if that run
    /// measured none. Unset in a single run's report, whose cells compare with its `baseline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_floor_ns: Option<u64>,
}

/// One throughput cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// The transport's name.
    pub transport: String,
    /// Always [`Pattern::Throughput`].
    pub pattern: Pattern,
    /// Message size in bytes.
    pub size: u64,
    /// Messages counted (after warm-up), all received and checked.
    pub messages: u64,
    /// From the first counted message sent to the receiver's acknowledgement received.
    pub seconds: f64,
    /// `messages / seconds`.
    pub msgs_per_sec: f64,
    /// `messages × size / seconds`.
    pub bytes_per_sec: f64,
}

/// A measured cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Measurement {
    /// A latency cell.
    Latency(Latency),
    /// A throughput cell.
    Throughput(Throughput),
}

impl Measurement {
    /// The transport's name.
    pub fn transport(&self) -> &str {
        match self {
            Measurement::Latency(l) => &l.transport,
            Measurement::Throughput(t) => &t.transport,
        }
    }

    /// The pattern.
    pub fn pattern(&self) -> Pattern {
        match self {
            Measurement::Latency(l) => l.pattern,
            Measurement::Throughput(t) => t.pattern,
        }
    }

    /// The message size in bytes.
    pub fn size(&self) -> u64 {
        match self {
            Measurement::Latency(l) => l.size,
            Measurement::Throughput(t) => t.size,
        }
    }
}

/// A cell that has no measurement, and why: the transport cannot carry the size ("n/a …"), or
/// the run failed. In the JSON file under the optional top-level `skipped`, so that a merged
/// table still says why a cell is empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    /// The transport's name.
    pub transport: String,
    /// The pattern.
    pub pattern: Pattern,
    /// Message size in bytes.
    pub size: u64,
    /// Why, in words.
    pub reason: String,
    /// Whether it failed (an error), rather than not applying.
    pub failed: bool,
}

/// The results of a run, or of several merged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Where it ran.
    pub machine: Machine,
    /// The measured cells, in the order they were measured.
    pub results: Vec<Measurement>,
    /// The floor under shared-memory latency on this machine: one cache line bounced between
    /// the two processes ([`BASELINE`](super::BASELINE)); not a transport, so in no table column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Latency>,
    /// Cells without a measurement, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
    /// Every measurement of the floor in the run: before the first transport and after each
    /// (`baseline` is the first sane one). Their spread is the run's [`noise`](Self::noise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub floors: Vec<Latency>,
    /// Results the tool's own definitions make impossible ([`crate::sanity`]), measured again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suspect: Vec<Suspect>,
    /// The floor's spread over the run, and whether the machine was too noisy to compare on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<Noise>,
    /// Where the two processes ran (`--pin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// The wake pattern's pause before each message, in nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_pause_ns: Option<u64>,
    /// What the run changed in the plan it was asked for (`--quick`'s cuts), in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// With more than one round (`--rounds`): how many. Each result is then the median round's
    /// measurement of its cell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rounds: Option<u32>,
    /// With more than one round: each cell's lowest and highest value over the rounds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spread: Vec<Spread>,
    /// Merged from runs measured apart ([`merge`](Self::merge)): how many. Each latency cell
    /// then compares with its own run's floor ([`Latency::run_floor_ns`]), not with
    /// `baseline`, which is the first run's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs: Option<u32>,
}

/// The range of one cell's values over the rounds of a run: p50 nanoseconds for latency and
/// wake cells, bytes per second for throughput cells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// The transport's name.
    pub transport: String,
    /// The pattern.
    pub pattern: Pattern,
    /// Message size in bytes.
    pub size: u64,
    /// The lowest value.
    pub lowest: f64,
    /// The highest value.
    pub highest: f64,
}

/// The value a cell is compared by: p50 nanoseconds, or bytes per second.
pub fn value(m: &Measurement) -> f64 {
    match m {
        Measurement::Latency(l) => l.p50_ns as f64,
        Measurement::Throughput(t) => t.bytes_per_sec,
    }
}

/// One result per cell from several rounds' measurements (in order of first appearance): the
/// median round's (by [`value`]; the lower of the two middle ones for an even count), and, where
/// a cell was measured more than once, its [`Spread`]. Cells for which `failed` holds are left out.
pub fn median_rounds(
    measured: Vec<Measurement>,
    failed: impl Fn(&Measurement) -> bool,
) -> (Vec<Measurement>, Vec<Spread>) {
    let mut cells: Vec<Vec<Measurement>> = Vec::new();
    for m in measured.into_iter().filter(|m| !failed(m)) {
        let key = |x: &Measurement| (x.transport().to_string(), x.pattern(), x.size());
        match cells.iter_mut().find(|c| key(&c[0]) == key(&m)) {
            Some(c) => c.push(m),
            None => cells.push(vec![m]),
        }
    }
    let mut results = Vec::new();
    let mut spread = Vec::new();
    for mut rounds in cells {
        rounds.sort_by(|a, b| value(a).total_cmp(&value(b)));
        let (lowest, highest) = (value(&rounds[0]), value(&rounds[rounds.len() - 1]));
        let median = rounds.swap_remove((rounds.len() - 1) / 2);
        if !rounds.is_empty() {
            spread.push(Spread {
                transport: median.transport().to_string(),
                pattern: median.pattern(),
                size: median.size(),
                lowest,
                highest,
            });
        }
        results.push(median);
    }
    (results, spread)
}

impl Report {
    /// An empty report for this machine.
    pub fn new(machine: Machine) -> Report {
        Report {
            machine,
            results: Vec::new(),
            baseline: None,
            skipped: Vec::new(),
            floors: Vec::new(),
            suspect: Vec::new(),
            noise: None,
            placement: None,
            wake_pause_ns: None,
            notes: Vec::new(),
            rounds: None,
            spread: Vec::new(),
            runs: None,
        }
    }

    /// The spread of a cell over the rounds, if it was measured more than once.
    pub fn spread_of(&self, transport: &str, pattern: Pattern, size: u64) -> Option<&Spread> {
        self.spread
            .iter()
            .find(|s| s.transport == transport && s.pattern == pattern && s.size == size)
    }

    /// The suspect entry of a cell whose last measurement is still impossible, if any.
    pub fn unresolved(&self, transport: &str, pattern: Pattern, size: u64) -> Option<&Suspect> {
        self.suspect.iter().find(|s| {
            s.unresolved && s.transport == transport && s.pattern == pattern && s.size == size
        })
    }

    /// Whether the run was too noisy to compare on ([`Noise::noisy`]).
    pub fn is_noisy(&self) -> bool {
        self.noise.as_ref().is_some_and(|n| n.noisy)
    }

    /// The JSON text (pretty-printed).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Parses a results file's text, checking that each cell's `pattern` matches its fields.
    pub fn from_json(text: &str, source: &str) -> Result<Report> {
        let object = || Object::Other(format!("results {source}").into());
        let report: Report = serde_json::from_str(text)
            .map_err(|e| Error::invalid("parse", object(), e.to_string()))?;
        for m in &report.results {
            let (stated, fields) = match m {
                Measurement::Latency(l) => (l.pattern, Pattern::Latency),
                Measurement::Throughput(t) => (t.pattern, Pattern::Throughput),
            };
            let fits = match stated {
                Pattern::Latency | Pattern::Wake => fields == Pattern::Latency,
                Pattern::Throughput => fields == Pattern::Throughput,
            };
            if !fits {
                return Err(Error::invalid(
                    "parse",
                    object(),
                    format!(
                        "a {stated} result of {} has the fields of a {fields}",
                        m.transport(),
                    ),
                ));
            }
        }
        Ok(report)
    }

    /// Writes the JSON file.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_json() + "\n")
            .map_err(|e| Error::os("write", Object::Path(path.into()), e))
    }

    /// Reads a JSON file.
    pub fn read_json(path: &Path) -> Result<Report> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::os("read", Object::Path(path.into()), e))?;
        Report::from_json(&text, &path.display().to_string())
    }

    /// Merges reports into one: their results in order, a later cell replacing an earlier one of
    /// the same transport, pattern and size. The machine is the first report's, and so are the
    /// `baseline` and `floors` shown; each latency cell keeps its own run's floor
    /// ([`Latency::run_floor_ns`]), since a floor measured in another run, seconds or days
    /// apart, does not compare with it. Runs measured on different placements get a note.
    pub fn merge(reports: impl IntoIterator<Item = Report>) -> Option<Report> {
        let mut reports = reports.into_iter().map(Report::into_run);
        let mut merged = reports.next()?;
        for r in reports {
            merged.runs = Some(merged.runs.unwrap_or(1) + r.runs.unwrap_or(1));
            if r.placement != merged.placement && !r.results.is_empty() {
                let describe = |p: &Option<Placement>| match p {
                    Some(p) => format!("CPUs {} and {}", p.host_cpu, p.peer_cpu),
                    None => "unpinned".to_string(),
                };
                merged.notes.push(format!(
                    "runs measured on different placements ({} and {}): their cells compare less well",
                    describe(&merged.placement),
                    describe(&r.placement)
                ));
            }
            for m in r.results {
                let other = |t: &str, p: Pattern, s: u64| {
                    (t, p, s) != (m.transport(), m.pattern(), m.size())
                };
                merged
                    .results
                    .retain(|old| other(old.transport(), old.pattern(), old.size()));
                merged
                    .spread
                    .retain(|old| other(&old.transport, old.pattern, old.size));
                merged.results.push(m);
            }
            merged.spread.extend(r.spread);
            merged.rounds = merged.rounds.max(r.rounds);
            merged.skipped.extend(r.skipped);
            merged.baseline = merged.baseline.or(r.baseline);
            merged.suspect.extend(r.suspect);
            merged.notes.extend(r.notes);
            merged.placement = merged.placement.or(r.placement);
            merged.wake_pause_ns = merged.wake_pause_ns.or(r.wake_pause_ns);
            // Files measured apart: their noise is each one's own; keep the worst.
            if r.noise.as_ref().is_some_and(|n| n.noisy) || merged.noise.is_none() {
                merged.noise = r.noise.or(merged.noise);
            }
        }
        Some(merged)
    }

    /// This report as one of several runs being merged: each latency (not wake) cell stamped
    /// with the run's floor, unless the report is itself a merge (its cells already carry theirs).
    fn into_run(mut self) -> Report {
        if self.runs.is_none() {
            let floor = self.baseline.as_ref().map(|b| b.p50_ns);
            for m in &mut self.results {
                // Wake-ups are not compared with the floor.
                if let Measurement::Latency(
                    l @ Latency {
                        pattern: Pattern::Latency,
                        ..
                    },
                ) = m
                {
                    l.run_floor_ns = floor;
                }
            }
            self.runs = Some(1);
        }
        self
    }

    /// The p50 of the floor that latency cell `l` compares with: its run's. `None` if that run
    /// measured no floor.
    pub fn floor_of(&self, l: &Latency) -> Option<u64> {
        match self.runs {
            Some(_) => l.run_floor_ns,
            None => self.baseline.as_ref().map(|b| b.p50_ns),
        }
    }

    /// The distinct floors (p50) that the report's latency cells compare with
    /// ([`floor_of`](Self::floor_of)), in order of first appearance: one for a single run, one
    /// per run in a merge of runs measured apart.
    pub fn floors_compared(&self) -> Vec<u64> {
        let mut floors = Vec::new();
        for m in &self.results {
            if let Measurement::Latency(l) = m {
                if let Some(f) = self.floor_of(l).filter(|f| !floors.contains(f)) {
                    floors.push(f);
                }
            }
        }
        floors
    }

    /// The transports, in order of first appearance (measured or skipped).
    pub fn transports(&self) -> Vec<String> {
        let mut seen = Vec::new();
        let names = self
            .results
            .iter()
            .map(|m| m.transport())
            .chain(self.skipped.iter().map(|s| s.transport.as_str()));
        for t in names {
            if !seen.iter().any(|s: &String| s == t) {
                seen.push(t.to_string());
            }
        }
        seen
    }

    /// The table of one pattern: a row per transport, a column per size, each cell with its ratio
    /// to the best of its column. `None` if the report has nothing for this pattern.
    pub fn table(&self, pattern: Pattern) -> Option<Table> {
        let sizes: BTreeSet<u64> = self
            .results
            .iter()
            .filter(|m| m.pattern() == pattern)
            .map(Measurement::size)
            .chain(
                self.skipped
                    .iter()
                    .filter(|s| s.pattern == pattern)
                    .map(|s| s.size),
            )
            .collect();
        if sizes.is_empty() {
            return None;
        }
        let sizes: Vec<u64> = sizes.into_iter().collect();
        let best: Vec<Option<f64>> = sizes
            .iter()
            .map(|&size| {
                let vals = self
                    .results
                    .iter()
                    .filter(|m| m.pattern() == pattern && m.size() == size)
                    .map(value);
                match pattern {
                    Pattern::Latency | Pattern::Wake => {
                        vals.fold(None, |b: Option<f64>, v| Some(b.map_or(v, |b| b.min(v))))
                    }
                    Pattern::Throughput => {
                        vals.fold(None, |b: Option<f64>, v| Some(b.map_or(v, |b| b.max(v))))
                    }
                }
            })
            .collect();
        let mut rows = Vec::new();
        for transport in self.transports() {
            let cells: Vec<Cell> = sizes
                .iter()
                .zip(&best)
                .map(|(&size, best)| {
                    let found = self.results.iter().find(|m| {
                        m.transport() == transport && m.pattern() == pattern && m.size() == size
                    });
                    if let Some(m) = found {
                        let v = value(m);
                        let ratio = match (pattern, best) {
                            (Pattern::Latency | Pattern::Wake, Some(b)) if *b > 0.0 => v / b,
                            (Pattern::Throughput, Some(b)) if v > 0.0 => b / v,
                            _ => 1.0,
                        };
                        return Cell::Measured {
                            measurement: m.clone(),
                            ratio,
                        };
                    }
                    let skipped = self.skipped.iter().find(|s| {
                        s.transport == transport && s.pattern == pattern && s.size == size
                    });
                    match skipped {
                        Some(s) if s.failed => Cell::Failed(s.reason.clone()),
                        Some(s) => Cell::NotApplicable(s.reason.clone()),
                        None => Cell::Missing,
                    }
                })
                .collect();
            if cells.iter().any(|c| !matches!(c, Cell::Missing)) {
                rows.push((transport, cells));
            }
        }
        Some(Table {
            pattern,
            sizes,
            rows,
        })
    }
}

/// A transports × sizes table of one pattern.
#[derive(Debug, Clone)]
pub struct Table {
    /// The pattern.
    pub pattern: Pattern,
    /// The columns: message sizes in bytes, ascending.
    pub sizes: Vec<u64>,
    /// The rows: a transport and its cells, one per size.
    pub rows: Vec<(String, Vec<Cell>)>,
}

/// One cell of a [`Table`].
#[derive(Debug, Clone)]
pub enum Cell {
    /// Measured. `ratio` is how many times worse than the best of the column (1.0 for the
    /// best): p50 latency over the lowest, or the highest bytes/s over this one.
    Measured {
        /// The measurement.
        measurement: Measurement,
        /// Times worse than the column's best.
        ratio: f64,
    },
    /// The transport cannot carry this size; the reason.
    NotApplicable(String),
    /// The measurement failed; the error.
    Failed(String),
    /// Not measured in this run.
    Missing,
}

/// `1.5 µs`, `820 ns`, `12.0 ms`.
pub fn format_ns(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 1_000_000_000.0 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// `1.25 GB/s`, `830 MB/s` (decimal units).
pub fn format_rate(bytes_per_sec: f64) -> String {
    let units = [("GB/s", 1e9), ("MB/s", 1e6), ("kB/s", 1e3)];
    for (unit, scale) in units {
        if bytes_per_sec >= scale {
            return format!("{:.2} {unit}", bytes_per_sec / scale);
        }
    }
    format!("{bytes_per_sec:.0} B/s")
}

/// `64 B`, `1 KiB`, `1 MiB`, `2 GiB`, `1500 B`.
pub fn format_size(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
impl Latency {
    /// A 64-byte cell whose every percentile, mean and maximum is `p50`, for tests.
    pub(crate) fn flat(transport: &str, pattern: Pattern, p50: u64) -> Latency {
        Latency {
            transport: transport.into(),
            pattern,
            size: 64,
            iterations: 100,
            mean_ns: p50 as f64,
            p50_ns: p50,
            p90_ns: p50,
            p99_ns: p50,
            p999_ns: p50,
            max_ns: p50,
            run_floor_ns: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_keep_the_median_cell_and_its_spread() {
        let lat = |t: &str, p50| Measurement::Latency(Latency::flat(t, Pattern::Wake, p50));
        let thr = |bytes_per_sec| {
            Measurement::Throughput(Throughput {
                transport: "pipe".into(),
                pattern: Pattern::Throughput,
                size: 64,
                messages: 1,
                seconds: 1.0,
                msgs_per_sec: 1.0,
                bytes_per_sec,
            })
        };
        let rounds = vec![
            lat("pipe", 30),
            lat("channel", 40),
            thr(5.0),
            lat("pipe", 10),
            lat("channel", 41),
            thr(7.0),
            lat("pipe", 20),
            thr(6.0),
            lat("once", 9),
            lat("broken", 1),
            lat("broken", 2),
        ];
        let (results, spread) = median_rounds(rounds, |m| m.transport() == "broken");
        let found: Vec<(&str, f64)> = results.iter().map(|m| (m.transport(), value(m))).collect();
        // In order of first appearance; the median of three, the lower middle of two.
        assert_eq!(
            found,
            [
                ("pipe", 20.0),
                ("channel", 40.0),
                ("pipe", 6.0),
                ("once", 9.0)
            ]
        );
        let ranges: Vec<(&str, Pattern, f64, f64)> = spread
            .iter()
            .map(|s| (s.transport.as_str(), s.pattern, s.lowest, s.highest))
            .collect();
        assert_eq!(
            ranges,
            [
                ("pipe", Pattern::Wake, 10.0, 30.0),
                ("channel", Pattern::Wake, 40.0, 41.0),
                ("pipe", Pattern::Throughput, 5.0, 7.0),
            ]
        );
    }

    #[test]
    fn sizes_format_in_binary_units() {
        assert_eq!(format_size(64), "64 B");
        assert_eq!(format_size(1024), "1 KiB");
        assert_eq!(format_size(1 << 20), "1 MiB");
        assert_eq!(format_size(2 << 30), "2 GiB");
    }

    /// A merged report compares each latency cell with its own run's floor, never with another
    /// run's, and a run without a floor gives its cells none; merging merged reports keeps them.
    #[test]
    fn merged_cells_keep_their_own_runs_floor() {
        let run = |floor: Option<u64>, transport: &str, p50: u64| {
            let mut r = Report::new(Machine::current());
            r.baseline = floor.map(|f| Latency::flat(crate::BASELINE, Pattern::Latency, f));
            r.results.push(Measurement::Latency(Latency::flat(
                transport,
                Pattern::Latency,
                p50,
            )));
            r
        };
        let single = run(Some(50), "a", 400);
        let Measurement::Latency(l) = &single.results[0] else {
            unreachable!()
        };
        assert_eq!(single.floor_of(l), Some(50), "one run: its baseline");

        let first = Report::merge([run(Some(50), "a", 400), run(Some(300), "b", 330)]).unwrap();
        let merged = Report::merge([first, run(None, "c", 900)]).unwrap();
        assert_eq!(merged.runs, Some(3));
        assert_eq!(merged.baseline.as_ref().map(|b| b.p50_ns), Some(50));
        let floors: Vec<(&str, Option<u64>)> = merged
            .results
            .iter()
            .map(|m| match m {
                Measurement::Latency(l) => (l.transport.as_str(), merged.floor_of(l)),
                Measurement::Throughput(_) => unreachable!(),
            })
            .collect();
        assert_eq!(floors, [("a", Some(50)), ("b", Some(300)), ("c", None)]);
        // The stamps survive the JSON file.
        let back = Report::from_json(&merged.to_json(), "merged").unwrap();
        assert_eq!(back.runs, Some(3));
        assert_eq!(back.results, merged.results);
    }

    #[test]
    fn merging_runs_on_different_placements_says_so() {
        let pinned = |host_cpu| {
            let mut r = Report::new(Machine::current());
            r.placement = Some(Placement {
                host_cpu,
                peer_cpu: host_cpu + 1,
                sharing: crate::placement::Sharing::Cache,
                detail: String::new(),
            });
            r.results.push(Measurement::Latency(Latency::flat(
                "a",
                Pattern::Latency,
                1,
            )));
            r
        };
        let same = Report::merge([pinned(0), pinned(0)]).unwrap();
        assert!(same.notes.is_empty(), "{:?}", same.notes);
        let apart = Report::merge([pinned(0), pinned(2)]).unwrap();
        assert_eq!(
            apart.notes,
            ["runs measured on different placements (CPUs 0 and 1 and CPUs 2 and 3): their cells compare less well"]
        );
    }
}
