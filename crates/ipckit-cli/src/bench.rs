//! `ipckit bench`: latency and throughput of every transport between two processes, as a table
//! (and `--json`, `--svg`); `ipckit bench merge` joins result files. The measuring is
//! the `ipckit-bench` crate; this file parses flags, shows progress and prints.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use comfy_table::{presets, CellAlignment, Table as Grid};
use ipckit_bench::{self as bench, Cell, Pattern, PeerCommand, Plan, Report, Transport};

/// The hidden subcommand the bench re-executes this binary with, to run the peer process.
pub const PEER_SUBCOMMAND: &str = "bench-peer";

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<BenchCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Merge result files (from `--json`, or another tool writing the same schema, such as the
    /// iceoryx2 peer in benches/peers) into one table, and optionally one JSON file and chart.
    Merge(MergeArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// A short run (500 round trips, at most 100 ms per cell) that stays under 30 seconds
    /// whatever else is given: sizes up to 1 MiB, at most 5 of them, cells shortened to fit the
    /// plan's own time bound; what it cut is printed as a note.
    #[arg(long)]
    quick: bool,
    /// Only these transports (comma-separated): pipe, fifo, unix-stream, unix-seqpacket,
    /// unix-dgram, tcp, sysv-msg, posix-mq, sysv-shm+sem, mmap+futex, channel, channel-spin,
    /// channel-zc (the channel written and read in place), channel-async (the channel awaited on
    /// tokio), signal.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    transports: Vec<String>,
    /// Message sizes (comma-separated; K, M: powers of 1024, KB, MB: of 1000). Default
    /// 64,1K,8K,64K,1M; signal is measured at 4 bytes besides.
    #[arg(long, value_delimiter = ',', value_name = "LIST", value_parser = crate::units::parse_size)]
    sizes: Vec<u64>,
    /// Only one pattern: latency (ping-pong), throughput (one-way stream) or wake (one message
    /// after each pause, so that the receiver sleeps; one-way time from send to receive).
    #[arg(long, value_name = "latency|throughput|wake")]
    pattern: Option<String>,
    /// Latency: round trips per cell; wake: messages per cell (at most; --duration caps the
    /// time). Default 10000.
    #[arg(long, value_name = "N")]
    iterations: Option<u64>,
    /// Wake: the sender's pause before each message (default 1ms).
    #[arg(long, value_name = "TIME", value_parser = crate::units::parse_duration)]
    wake_pause: Option<std::time::Duration>,
    /// Throughput: how long each cell streams; latency: the most a cell takes (e.g. 2s, 100ms).
    #[arg(long, value_name = "TIME", value_parser = crate::units::parse_duration)]
    duration: Option<std::time::Duration>,
    /// Run the two processes on two fixed CPUs (sched_setaffinity): the first two this process
    /// may use, or --pin=A,B (this process on A, its peer on B). The report says whether they
    /// share a core (SMT siblings), a cache, or neither; the floor is measured there too.
    #[arg(long, value_name = "A,B", num_args = 0..=1, require_equals = true, default_missing_value = "")]
    pin: Option<String>,
    /// Measure the whole plan N times, the transports taking turns (A B A B): each cell shows
    /// the median round, with the lowest and highest after it. Numbers measured seconds apart
    /// on a shared machine do not compare; medians of interleaved rounds do. Default 1.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: Option<u32>,
    /// Also write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also draw latency and throughput by message size as an SVG chart in FILE.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
}

#[derive(clap::Args)]
struct MergeArgs {
    /// Result files to merge; a later file's cell replaces an earlier one's.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Write the merged results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Draw the merged results as an SVG chart in FILE.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    match args.command {
        Some(BenchCommand::Merge(m)) => merge(m),
        None => measure(args.run),
    }
}

/// The hidden peer subcommand: the other process of each measurement.
pub fn peer(args: Vec<String>) -> Result<ExitCode> {
    bench::peer_main(&args).context("bench peer")?;
    Ok(ExitCode::SUCCESS)
}

/// The plan the flags ask for, and what `--quick` cut from it to stay within its budget.
fn plan(args: &RunArgs) -> Result<(Plan, Vec<String>)> {
    let mut plan = if args.quick {
        Plan::quick()
    } else {
        Plan::new()
    };
    if !args.transports.is_empty() {
        plan.transports = args
            .transports
            .iter()
            .map(|t| t.trim().parse::<Transport>())
            .collect::<Result<_, _>>()?;
    }
    if !args.sizes.is_empty() {
        plan.sizes = args.sizes.clone();
        if plan.sizes.contains(&0) {
            bail!("a message size of 0 bytes cannot carry a sequence number");
        }
    }
    if let Some(p) = &args.pattern {
        plan.patterns = vec![p.parse::<Pattern>()?];
    }
    if let Some(n) = args.iterations {
        if n == 0 {
            bail!("--iterations must be at least 1");
        }
        plan.iterations = n;
    }
    if let Some(d) = args.duration {
        plan.duration = d;
        if plan.duration.is_zero() {
            bail!("--duration must be longer than 0");
        }
    }
    if let Some(rounds) = args.rounds {
        plan.rounds = rounds;
    }
    if let Some(pause) = args.wake_pause {
        if pause.is_zero() {
            bail!("--wake-pause must be longer than 0");
        }
        plan.wake_pause = pause;
    }
    if let Some(pin) = &args.pin {
        plan.pin = true;
        if !pin.is_empty() {
            let cpus: Vec<usize> = pin
                .split(',')
                .map(|c| c.trim().parse())
                .collect::<Result<_, _>>()
                .with_context(|| format!("--pin={pin}: expected two CPU numbers, A,B"))?;
            let [a, b] = cpus[..] else {
                bail!("--pin={pin}: expected two CPU numbers, A,B");
            };
            if let Err(why) = bench::check_cpus(a, b) {
                bail!("--pin={pin}: {why}");
            }
            plan.cpus = Some((a, b));
        }
    }
    let cuts = if args.quick {
        plan.fit(bench::QUICK_BUDGET)
    } else {
        Vec::new()
    };
    Ok((plan, cuts))
}

/// Whether a result file can be written where it is asked for, found by opening it for writing
/// (not truncated; removed again if this made it): checked before a run, not after it.
fn check_output(flag: &str, path: Option<&Path>) -> Result<()> {
    let Some(path) = path else { return Ok(()) };
    let existed = path.symlink_metadata().is_ok();
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("{flag} {}", path.display()))?;
    if !existed {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

fn measure(args: RunArgs) -> Result<ExitCode> {
    // Command-line mistakes are found before the run: exit 2.
    let (plan, cuts) = match plan(&args).and_then(|plan| {
        check_output("--json", args.json.as_deref())?;
        check_output("--svg", args.svg.as_deref())?;
        Ok(plan)
    }) {
        Ok(plan) => plan,
        Err(e) => return Ok(crate::send::usage(&format!("{e:#}"))),
    };
    let peer = PeerCommand {
        program: std::env::current_exe().context("the path of this program")?,
        args: vec![PEER_SUBCOMMAND.into()],
    };
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(plan.cell_count() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} cells  {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    if plan
        .transports
        .contains(&Transport::Ipc(ipckit::transport::TransportKind::Signal))
    {
        // Before the signal thread starts, as `bench::run` asks.
        ipckit::transport::prepare_signals().context("block the transport's signals")?;
    }
    // On SIGINT, SIGTERM or SIGHUP the run stops: the cell being measured fails at once, its
    // peer is ended and what the run created is removed; then leave as the signal says.
    let interrupts = crate::leave::install()?;
    let stop = plan.stop.clone();
    interrupts.on_signal(move || stop.stop());
    let result = bench::run(&plan, &peer, &mut |p| {
        bar.set_position(p.done as u64);
        match p.cell {
            Some((pattern, size)) => bar.set_message(format!(
                "{} {pattern} {}",
                p.transport,
                bench::format_size(size)
            )),
            None => bar.set_message(format!("{} done", p.transport)),
        }
    });
    bar.finish_and_clear();
    if let Some(code) = interrupts.exit_code() {
        return Ok(code);
    }
    let mut report = result?;
    report.notes.extend(cuts);
    finish(&report, args.json.as_deref(), args.svg.as_deref())?;
    let failed = report.skipped.iter().filter(|s| s.failed).count();
    if failed > 0 {
        bail!("{failed} cell(s) failed: see the notes under the tables");
    }
    Ok(ExitCode::SUCCESS)
}

fn merge(args: MergeArgs) -> Result<ExitCode> {
    if let Err(e) = check_output("--json", args.json.as_deref())
        .and_then(|()| check_output("--svg", args.svg.as_deref()))
    {
        return Ok(crate::send::usage(&format!("{e:#}")));
    }
    let reports = args
        .files
        .iter()
        .map(|f| Report::read_json(f))
        .collect::<Result<Vec<_>, _>>()?;
    let merged = Report::merge(reports).context("no result files")?;
    finish(&merged, args.json.as_deref(), args.svg.as_deref())?;
    Ok(ExitCode::SUCCESS)
}

/// Prints the tables and writes the files asked for.
fn finish(report: &Report, json: Option<&Path>, svg: Option<&Path>) -> Result<()> {
    let mut text = format!(
        "{} · {} CPUs · Linux {}\n",
        report.machine.cpu_model, report.machine.cpus, report.machine.kernel
    );
    if let Some(p) = &report.placement {
        text.push_str(&format!(
            "pinned: this process on CPU {}, its peer on CPU {}: {}\n",
            p.host_cpu, p.peer_cpu, p.detail
        ));
    }
    for note in &report.notes {
        text.push_str(&format!("note: {note}\n"));
    }
    if let Some(rounds) = report.rounds {
        text.push_str(&format!(
            "rounds: {rounds}, the transports taking turns; each cell is the median round, [lowest–highest] after it\n"
        ));
    }
    let unsteady = report
        .spread
        .iter()
        .filter(|s| bench::sanity::unsteady(s))
        .count();
    if unsteady > 0 {
        text.push_str(&format!(
            "unsteady: {unsteady} of {} cells' rounds differ more than {}× (marked ~: their medians compare less well)\n",
            report.spread.len(),
            bench::sanity::ROUND_SPREAD
        ));
    }
    if let Some(n) = report.noise.as_ref().filter(|n| n.noisy) {
        let why = if n.spread > n.threshold {
            let trimmed = match n.trimmed {
                0 => String::new(),
                k => format!(" (the {k} lowest and {k} highest floors left out)"),
            };
            format!(
                "the floor's p50 ranged from {} to {} during the run{trimmed} ({:.1}×, above the {:.1}× this tool accepts)",
                bench::format_ns(n.floor_min_ns as f64),
                bench::format_ns(n.floor_max_ns as f64),
                n.spread,
                n.threshold,
            )
        } else {
            format!(
                "no measurement of the floor came under {} (the processes waited for a CPU)",
                bench::format_ns(bench::sanity::FLOOR_MAX_NS as f64)
            )
        };
        text.push_str(&format!(
            "warning: this machine was too noisy to compare on: {why}; the tables show what was measured, without ratios, and no ratio from this run holds\n"
        ));
    }
    let mut notes = Notes::default();
    for pattern in [Pattern::Latency, Pattern::Wake, Pattern::Throughput] {
        if let Some(table) = report.table(pattern) {
            text.push('\n');
            text.push_str(&render(report, &table, &mut notes));
            text.push('\n');
            if pattern == Pattern::Latency {
                text.push_str(&floor_line(report, &table));
            }
        }
    }
    text.push_str(&notes.render());
    crate::output::emit(&text)?;
    if let Some(path) = json {
        report.write_json(path)?;
    }
    if let Some(path) = svg {
        std::fs::write(path, bench::render_svg(report)?)
            .with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
}

/// The baseline under the latency table: the floor, and how close the table's lowest latency
/// comes to it. Empty without a baseline.
fn floor_line(report: &Report, table: &bench::Table) -> String {
    let Some(floor) = &report.baseline else {
        return String::new();
    };
    let mut text = format!(
        "floor: {} bounced between the two processes (8 B, no system call): p50 {}, mean {}\n",
        floor.transport,
        bench::format_ns(floor.p50_ns as f64),
        bench::format_ns(floor.mean_ns),
    );
    // The lowest p50 of the whole table: how close the best transport comes to the floor of
    // its run (in a merged report, each cell's own).
    let fastest = table
        .rows
        .iter()
        .flat_map(|(t, cells)| {
            table
                .sizes
                .iter()
                .zip(cells)
                .map(move |(&size, c)| (t, size, c))
        })
        .filter_map(|(t, size, cell)| match cell {
            Cell::Measured {
                measurement: bench::Measurement::Latency(l),
                ..
            } if report.unresolved(t, l.pattern, size).is_none() => {
                Some((t, size, l.p50_ns, report.floor_of(l)?))
            }
            _ => None,
        })
        .min_by_key(|&(_, _, p50, _)| p50);
    if let Some(s) = report
        .suspect
        .iter()
        .find(|s| s.transport == bench::BASELINE && s.unresolved)
    {
        text.push_str(&format!(
            "floor suspect: {} (measured {} more times)\n",
            s.reason, s.retries
        ));
    }
    if report.floors.len() > 1 {
        let lo = report.floors.iter().map(|f| f.p50_ns).min().unwrap_or(0);
        let hi = report.floors.iter().map(|f| f.p50_ns).max().unwrap_or(0);
        text.push_str(&format!(
            "floor measured {} times in the run (before the first transport and after each): p50 {} to {}\n",
            report.floors.len(),
            bench::format_ns(lo as f64),
            bench::format_ns(hi as f64),
        ));
    }
    let merged_runs = report.runs.filter(|&n| n > 1);
    if let Some(runs) = merged_runs {
        let floors: Vec<String> = report
            .floors_compared()
            .iter()
            .map(|&f| bench::format_ns(f as f64))
            .collect();
        text.push_str(&format!(
            "merged from {runs} runs measured apart: each latency compares with its own run's floor (p50 {})\n",
            floors.join(", ")
        ));
    }
    if report.is_noisy() {
        return text;
    }
    if let Some((transport, size, p50, floor)) = fastest {
        let whose = if merged_runs.is_some() {
            "its run's floor"
        } else {
            "the floor"
        };
        text.push_str(&format!(
            "lowest: {transport} at {}, {:.1}× {whose}\n",
            bench::format_size(size),
            p50 as f64 / floor.max(1) as f64
        ));
    }
    text
}

/// Footnotes for n/a and failed cells: each distinct reason once, numbered.
#[derive(Default)]
struct Notes {
    reasons: BTreeMap<String, usize>,
}

impl Notes {
    fn mark(&mut self, transport: &str, reason: &str) -> usize {
        let key = format!("{transport}: {reason}");
        let next = self.reasons.len() + 1;
        *self.reasons.entry(key).or_insert(next)
    }

    fn render(&self) -> String {
        let mut lines: Vec<(usize, &String)> = self.reasons.iter().map(|(r, &n)| (n, r)).collect();
        lines.sort();
        lines
            .into_iter()
            .map(|(n, r)| format!("[{n}] {r}\n"))
            .collect()
    }
}

fn render(report: &Report, table: &bench::Table, notes: &mut Notes) -> String {
    let mut grid = Grid::new();
    grid.load_preset(presets::UTF8_FULL_CONDENSED);
    let title = match table.pattern {
        Pattern::Latency => "latency: one-way p50 (×: times the column's lowest)",
        Pattern::Throughput => "throughput (×: times below the column's highest)",
        Pattern::Wake => "wake-up: one-way p50 / p99 after a pause (×: p50 over the lowest)",
    };
    let mut title = title.to_string();
    if let (Pattern::Wake, Some(ns)) = (table.pattern, report.wake_pause_ns) {
        title = title.replace(
            "a pause",
            &format!("a {} pause", bench::format_ns(ns as f64)),
        );
    }
    if report.is_noisy() {
        // No ratio holds on a noisy machine: say what was measured, no more.
        title = title.split(" (×").next().unwrap_or_default().to_string();
    }
    let mut header = vec![title];
    header.extend(table.sizes.iter().map(|&s| bench::format_size(s)));
    grid.set_header(header);
    for (transport, cells) in &table.rows {
        let mut row = vec![comfy_table::Cell::new(transport)];
        for cell in cells {
            let text = match cell {
                Cell::Measured { measurement, ratio } => {
                    let value = match measurement {
                        bench::Measurement::Latency(l) if l.pattern == Pattern::Wake => format!(
                            "{} / {}",
                            bench::format_ns(l.p50_ns as f64),
                            bench::format_ns(l.p99_ns as f64)
                        ),
                        bench::Measurement::Latency(l) => bench::format_ns(l.p50_ns as f64),
                        bench::Measurement::Throughput(t) => bench::format_rate(t.bytes_per_sec),
                    };
                    let m = measurement;
                    let mut text = if report.is_noisy() {
                        value
                    } else {
                        format!("{value} ×{ratio:.2}")
                    };
                    if let Some(s) = report.spread_of(transport, m.pattern(), m.size()) {
                        let show = |v: f64| match m {
                            bench::Measurement::Latency(_) => bench::format_ns(v),
                            bench::Measurement::Throughput(_) => bench::format_rate(v),
                        };
                        text.push_str(&format!(" [{}–{}]", show(s.lowest), show(s.highest)));
                        if bench::sanity::unsteady(s) {
                            let why = format!(
                                "unsteady: its rounds differ more than {}× (a slowdown of the machine in some of them), so its median compares less well than a steady cell's",
                                bench::sanity::ROUND_SPREAD
                            );
                            text.push_str(&format!(" ~ [{}]", notes.mark(transport, &why)));
                        }
                    }
                    let suspect = report.suspect.iter().find(|s| {
                        s.transport == *transport && s.pattern == m.pattern() && s.size == m.size()
                    });
                    match suspect {
                        Some(s) if s.unresolved => {
                            let why = format!(
                                "impossible: {} (measured {} more times)",
                                s.reason, s.retries
                            );
                            text.push_str(&format!(" ! [{}]", notes.mark(transport, &why)));
                        }
                        Some(s) => {
                            let why = format!(
                                "measured again ({}×): the first result was impossible: {}",
                                s.retries, s.reason
                            );
                            text.push_str(&format!(" [{}]", notes.mark(transport, &why)));
                        }
                        None => {}
                    }
                    text
                }
                Cell::NotApplicable(reason) => format!("n/a [{}]", notes.mark(transport, reason)),
                Cell::Failed(reason) => format!("failed [{}]", notes.mark(transport, reason)),
                Cell::Missing => "–".to_string(),
            };
            row.push(comfy_table::Cell::new(text).set_alignment(CellAlignment::Right));
        }
        grid.add_row(row);
    }
    grid.to_string()
}
