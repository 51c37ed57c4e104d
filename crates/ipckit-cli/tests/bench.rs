//! `ipckit bench`: a tiny run writes JSON of the documented schema and a well-formed SVG that
//! names every transport it plots; n/a cells say why; merge joins files; bad flags are one line.
//! No test looks at how fast anything was.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn ipckit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ipckit"))
        .args(args)
        .output()
        .expect("run ipckit")
}

/// A fresh directory for one test's files, removed at the end (also on panic).
struct Dir(PathBuf);

impl Dir {
    fn new(what: &str) -> Dir {
        let d = ipckit_testkit::unique_path(what);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn file(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every transport of the bench: ipckit's, and the channel's zero-copy path.
const TRANSPORTS: [&str; 14] = [
    "pipe",
    "fifo",
    "unix-stream",
    "unix-seqpacket",
    "unix-dgram",
    "tcp",
    "sysv-msg",
    "posix-mq",
    "sysv-shm+sem",
    "mmap+futex",
    "channel",
    "channel-spin",
    "channel-zc",
    "signal",
];

const TINY: [&str; 6] = ["--iterations", "50", "--duration", "100ms", "--sizes", "64"];

/// Checks one results file against the schema: keys and JSON types, per pattern.
fn check_schema(doc: &Value) -> Vec<(String, String, u64)> {
    let machine = &doc["machine"];
    assert!(machine["cpus"].is_u64(), "{machine}");
    assert!(machine["cpu_model"].is_string(), "{machine}");
    assert!(machine["kernel"].is_string(), "{machine}");
    let mut top: Vec<&str> = doc
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    top.sort_unstable();
    let optional = [
        "baseline",
        "skipped",
        "floors",
        "suspect",
        "noise",
        "placement",
        "wake_pause_ns",
        "notes",
        "rounds",
        "spread",
        "runs",
    ];
    top.retain(|k| !optional.contains(k));
    assert_eq!(
        top,
        ["machine", "results"],
        "machine, results, optional {optional:?}: {doc}"
    );
    for s in doc
        .get("suspect")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        // An impossible result: which, why, how often measured again, and whether it still is.
        assert!(s["transport"].is_string() && s["reason"].is_string(), "{s}");
        assert!(s["size"].is_u64() && s["retries"].is_u64(), "{s}");
        assert!(s["unresolved"].is_boolean(), "{s}");
    }
    if let Some(n) = doc.get("noise") {
        for k in ["floor_min_ns", "floor_max_ns"] {
            assert!(n[k].is_u64(), "{k} in {n}");
        }
        assert!(n["spread"].is_number() && n["threshold"].is_number(), "{n}");
        assert!(n["noisy"].is_boolean(), "{n}");
    }
    for f in doc
        .get("floors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        check_cell(f);
    }
    for s in doc
        .get("skipped")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        // A cell without a measurement: which, and why.
        assert!(s["transport"].is_string() && s["reason"].is_string(), "{s}");
        assert!(s["size"].is_u64() && s["failed"].is_boolean(), "{s}");
        assert!(
            matches!(
                s["pattern"].as_str(),
                Some("latency" | "throughput" | "wake")
            ),
            "{s}"
        );
    }
    if let Some(b) = doc.get("baseline") {
        // The floor: a latency cell of the cache-line bounce, never among the results.
        check_cell(b);
        assert_eq!(
            (b["transport"].as_str(), b["pattern"].as_str()),
            (Some("cache-line"), Some("latency")),
            "{b}"
        );
    }
    let results = doc["results"].as_array().expect("results array");
    let mut cells = Vec::new();
    for r in results {
        let (transport, pattern, size) = check_cell(r);
        assert_ne!(transport, "cache-line", "the floor is not a transport: {r}");
        cells.push((transport, pattern, size));
    }
    cells
}

/// Checks one cell's keys and JSON types for its pattern; returns transport, pattern and size.
fn check_cell(r: &Value) -> (String, String, u64) {
    {
        let obj = r.as_object().unwrap();
        let transport = r["transport"].as_str().expect("transport").to_string();
        let pattern = r["pattern"].as_str().expect("pattern").to_string();
        let size = r["size"].as_u64().expect("size");
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        match pattern.as_str() {
            "latency" | "wake" => {
                let mut want = vec![
                    "transport",
                    "pattern",
                    "size",
                    "iterations",
                    "mean_ns",
                    "p50_ns",
                    "p90_ns",
                    "p99_ns",
                    "p999_ns",
                    "max_ns",
                ];
                // Merged from several runs: the floor of the cell's own run, if it had one.
                if let Some(f) = obj.get("run_floor_ns") {
                    assert!(f.is_u64(), "{r}");
                    want.push("run_floor_ns");
                }
                want.sort_unstable();
                assert_eq!(keys, want, "{r}");
                assert!(r["iterations"].as_u64().unwrap() >= 1, "{r}");
                assert!(r["mean_ns"].is_number(), "{r}");
                for k in ["p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns"] {
                    assert!(r[k].is_u64(), "{k} in {r}");
                }
                let p = |k: &str| r[k].as_u64().unwrap();
                assert!(
                    p("p50_ns") <= p("p90_ns") && p("p90_ns") <= p("p99_ns"),
                    "{r}"
                );
                assert!(
                    p("p99_ns") <= p("p999_ns") && p("p999_ns") <= p("max_ns"),
                    "{r}"
                );
            }
            "throughput" => {
                let mut want = vec![
                    "transport",
                    "pattern",
                    "size",
                    "messages",
                    "seconds",
                    "msgs_per_sec",
                    "bytes_per_sec",
                ];
                want.sort_unstable();
                assert_eq!(keys, want, "{r}");
                assert!(r["messages"].as_u64().unwrap() >= 1, "{r}");
                for k in ["seconds", "msgs_per_sec", "bytes_per_sec"] {
                    assert!(r[k].as_f64().unwrap() > 0.0, "{k} in {r}");
                }
            }
            other => panic!("pattern {other:?} in {r}"),
        }
        (transport, pattern, size)
    }
}

/// Parses the SVG as XML and returns the text of every `<text>` element.
fn svg_texts(path: &Path) -> Vec<String> {
    let svg = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("the SVG is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(|t| t.trim().to_string())
        .collect()
}

#[test]
fn a_tiny_run_of_every_transport_writes_the_schema_and_a_chart_naming_them() {
    let dir = Dir::new("bench");
    let (json, svg) = (dir.file("r.json"), dir.file("r.svg"));
    let mut args = TINY.to_vec();
    args.extend(["--json", &json, "--svg", &svg]);
    let out = ipckit(&[&["bench"][..], &args].concat());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");

    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let cells = check_schema(&doc);
    for name in TRANSPORTS {
        let has = |pattern: &str, size: u64| {
            cells
                .iter()
                .any(|c| c.0 == name && c.1 == pattern && c.2 == size)
        };
        if name == "signal" {
            // Latency only, at one int; 64 bytes is n/a, and the table says why.
            assert!(has("latency", 4), "signal latency at 4 bytes");
            assert!(!has("latency", 64) && !has("throughput", 64));
            assert!(stdout.contains("sigqueue carries one int"), "{stdout}");
        } else {
            assert!(has("latency", 64), "{name} latency");
            assert!(has("throughput", 64), "{name} throughput");
            assert!(has("wake", 64), "{name} wake");
        }
        assert!(stdout.contains(name), "the table names {name}:\n{stdout}");
    }

    // Latency was measured, so the floor was too: in the JSON, under the table, in the chart.
    assert!(doc.get("baseline").is_some(), "{doc}");
    assert!(stdout.contains("floor: cache-line bounced"), "{stdout}");
    let texts = svg_texts(Path::new(&svg));
    assert!(
        texts.iter().any(|t| t.starts_with("cache-line (floor")),
        "{texts:?}"
    );
    for name in TRANSPORTS {
        assert!(
            texts.iter().any(|t| t == name),
            "the chart names {name}: {texts:?}"
        );
    }
}

/// Issue #14: the wake pattern times each message from send to receive after a pause, for every
/// transport that can carry a send time, and reports p50 and p99 in the table and the JSON.
#[test]
fn the_wake_pattern_reports_p50_and_p99_of_each_transport() {
    let dir = Dir::new("bench-wake");
    let json = dir.file("w.json");
    let out = ipckit(&[
        "bench",
        "--transports",
        "pipe,channel,channel-zc",
        "--pattern",
        "wake",
        "--sizes",
        "64,16",
        "--iterations",
        "20",
        "--wake-pause",
        "1ms",
        "--json",
        &json,
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("wake-up: one-way p50 / p99"), "{stdout}");
    assert!(stdout.contains("needs 32 bytes"), "16 B is n/a: {stdout}");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let cells = check_schema(&doc);
    for name in ["pipe", "channel", "channel-zc"] {
        let cell = doc["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["transport"] == name && r["pattern"] == "wake")
            .unwrap_or_else(|| panic!("{name} wake in {cells:?}"));
        assert_eq!(cell["size"], 64, "{cell}");
        assert_eq!(cell["iterations"], 20, "{cell}");
        assert!(cell["p50_ns"].as_u64() <= cell["p99_ns"].as_u64(), "{cell}");
    }
    assert!(
        cells.iter().all(|c| c.1 == "wake"),
        "only wake was asked for: {cells:?}"
    );
}

/// Issue #14: `--rounds N` measures the plan N times with the transports taking turns, and
/// reports each cell's median round with the lowest and highest, in the table and the JSON.
#[test]
fn rounds_report_the_median_cell_and_its_spread() {
    let dir = Dir::new("bench-rounds");
    let json = dir.file("r.json");
    let mut args = vec![
        "bench",
        "--transports",
        "pipe,channel",
        "--pattern",
        "throughput",
    ];
    args.extend(TINY);
    args.extend(["--rounds", "3", "--json", &json]);
    let out = ipckit(&args);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("rounds: 3, the transports taking turns"),
        "{stdout}"
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let cells = check_schema(&doc);
    assert_eq!(
        cells.len(),
        2,
        "one result per cell, not per round: {cells:?}"
    );
    assert_eq!(doc["rounds"], 3, "{doc}");
    for name in ["pipe", "channel"] {
        let cell = doc["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["transport"] == name)
            .unwrap();
        let spread = doc["spread"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["transport"] == name && s["pattern"] == "throughput" && s["size"] == 64)
            .unwrap_or_else(|| panic!("{name} in {doc}"));
        let (lo, hi) = (
            spread["lowest"].as_f64().unwrap(),
            spread["highest"].as_f64().unwrap(),
        );
        let median = cell["bytes_per_sec"].as_f64().unwrap();
        assert!(lo <= median && median <= hi, "{name}: {lo} {median} {hi}");
        let row = stdout
            .lines()
            .find(|l| l.contains(&format!(" {name} ")))
            .unwrap();
        assert!(row.contains('[') && row.contains('–'), "{row}");
    }
}

/// A results file as a run writes it: one impossible cell (below the floor, still after two
/// more measurements), one cell re-measured into a possible one, the floor's samples and noise.
fn suspect_report(floors: [u64; 2], noisy: bool) -> String {
    let lat = |t: &str, p: &str, size: u64, p50: u64| {
        format!(
            r#"{{"transport":"{t}","pattern":"{p}","size":{size},"iterations":10,"mean_ns":{p50}.0,
            "p50_ns":{p50},"p90_ns":{p50},"p99_ns":{p50},"p999_ns":{p50},"max_ns":{p50}}}"#
        )
    };
    let (lo, hi) = (floors[0].min(floors[1]), floors[0].max(floors[1]));
    format!(
        r#"{{"machine":{{"cpus":2,"cpu_model":"x","kernel":"y"}},
        "results":[{},{},{}],
        "baseline":{},"floors":[{},{}],
        "suspect":[
          {{"transport":"channel-spin","pattern":"latency","size":64,"reason":"one-way p50 3 ns is below the floor (100 ns)","retries":2,"unresolved":true}},
          {{"transport":"channel","pattern":"latency","size":64,"reason":"one-way p50 5 ns is below the floor (100 ns)","retries":1,"unresolved":false}}],
        "noise":{{"floor_min_ns":{lo},"floor_max_ns":{hi},"spread":{},"threshold":2.0,"noisy":{noisy}}}}}"#,
        lat("channel-spin", "latency", 64, 3),
        lat("channel", "latency", 64, 900),
        lat("pipe", "latency", 64, 4000),
        lat("cache-line", "latency", 8, lo),
        lat("cache-line", "latency", 8, floors[0]),
        lat("cache-line", "latency", 8, floors[1]),
        hi as f64 / lo as f64,
    )
}

/// Issue #14: a result the tool's own definitions make impossible is flagged in the table (and
/// kept in the JSON), never the "lowest" of the run; a noisy run says so instead of ratios.
#[test]
fn impossible_cells_are_flagged_and_a_noisy_run_gives_no_ratios() {
    let dir = Dir::new("bench-sanity");
    let (steady, noisy, out_json) = (dir.file("s.json"), dir.file("n.json"), dir.file("o.json"));
    std::fs::write(&steady, suspect_report([100, 150], false)).unwrap();
    std::fs::write(&noisy, suspect_report([33, 166], true)).unwrap();

    let out = ipckit(&["bench", "merge", &steady, "--json", &out_json]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let spin = stdout.lines().find(|l| l.contains("channel-spin")).unwrap();
    assert!(spin.contains(" ! ["), "flagged: {stdout}");
    assert!(
        stdout.contains("impossible: one-way p50 3 ns is below the floor"),
        "{stdout}"
    );
    assert!(stdout.contains("measured again (1×)"), "{stdout}");
    // The lowest possible cell is the channel's, not the impossible one.
    assert!(stdout.contains("lowest: channel at 64 B"), "{stdout}");
    assert!(!stdout.contains("warning"), "{stdout}");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&out_json).unwrap()).unwrap();
    check_schema(&doc);
    assert_eq!(doc["suspect"][0]["unresolved"], true, "{doc}");

    let out = ipckit(&["bench", "merge", &noisy]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("warning: this machine was too noisy to compare on"),
        "{stdout}"
    );
    assert!(stdout.contains("33 ns to 166 ns"), "{stdout}");
    assert!(!stdout.contains("lowest:"), "no confident line: {stdout}");
    assert!(!stdout.contains(" ×"), "no ratios: {stdout}");
}

/// Issue #14: a cell whose rounds differ more than threefold (a slowdown of the machine hit
/// some of them) is marked in the table, and the run says how many there are; steady cells are
/// not marked.
#[test]
fn cells_whose_rounds_differ_more_than_threefold_are_marked_unsteady() {
    let dir = Dir::new("bench-unsteady");
    let file = dir.file("r.json");
    let tput = |t: &str, bps: f64| {
        format!(
            r#"{{"transport":"{t}","pattern":"throughput","size":65536,"messages":10,"seconds":1.0,"msgs_per_sec":{},"bytes_per_sec":{bps}}}"#,
            bps / 65536.0
        )
    };
    let spread = |t: &str, lo: f64, hi: f64| {
        format!(
            r#"{{"transport":"{t}","pattern":"throughput","size":65536,"lowest":{lo},"highest":{hi}}}"#
        )
    };
    std::fs::write(
        &file,
        format!(
            r#"{{"machine":{{"cpus":2,"cpu_model":"x","kernel":"y"}},"results":[{},{}],"rounds":3,"spread":[{},{}]}}"#,
            tput("channel", 2.41e9),
            tput("pipe", 1.19e9),
            spread("channel", 2.39e9, 38.26e9),
            spread("pipe", 1.11e9, 1.26e9),
        ),
    )
    .unwrap();
    let out = ipckit(&["bench", "merge", &file]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("unsteady: 1 of 2 cells"), "{stdout}");
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| l.contains(&format!(" {name} ")))
            .unwrap_or_else(|| panic!("no {name} row: {stdout}"))
            .to_string()
    };
    assert!(row("channel").contains("38.26 GB/s] ~ ["), "{stdout}");
    assert!(!row("pipe").contains(" ~ "), "{stdout}");
    assert!(
        stdout.contains("unsteady: its rounds differ more than 3×"),
        "{stdout}"
    );
}

/// Issue #14: `--pin` says where the two processes ran and what their CPUs share, and the floor
/// is measured there too.
#[test]
fn pin_reports_the_placement_and_measures_the_floor_on_it() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        eprintln!("skipped: --pin needs two CPUs, this process may use {cpus}");
        return;
    }
    let dir = Dir::new("bench-pin");
    let json = dir.file("p.json");
    let mut args = vec![
        "bench",
        "--pin",
        "--transports",
        "channel-spin",
        "--pattern",
        "latency",
    ];
    args.extend(TINY);
    args.extend(["--json", &json]);
    let out = ipckit(&args);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("pinned: this process on CPU "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        [
            "one core",
            "sharing the L",
            "sharing no cache",
            "does not describe"
        ]
        .iter()
        .any(|s| line.contains(s)),
        "{line}"
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    check_schema(&doc);
    let p = &doc["placement"];
    assert_ne!(p["host_cpu"], p["peer_cpu"], "{p}");
    assert!(
        matches!(
            p["sharing"].as_str(),
            Some("core" | "cache" | "neither" | "unknown")
        ),
        "{p}"
    );
    assert!(doc["baseline"].is_object(), "the floor was measured: {doc}");

    // The same two CPUs the other way round, asked for by number.
    let (host, peer) = (
        p["host_cpu"].as_u64().unwrap(),
        p["peer_cpu"].as_u64().unwrap(),
    );
    let swapped = format!("--pin={peer},{host}");
    let mut args = vec![
        "bench",
        &swapped,
        "--transports",
        "channel-spin",
        "--pattern",
        "latency",
    ];
    args.extend(TINY);
    args.extend(["--json", &json]);
    let out = ipckit(&args);
    assert!(out.status.success(), "{:?}", text(&out));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(
        (&doc["placement"]["host_cpu"], &doc["placement"]["peer_cpu"]),
        (&Value::from(peer), &Value::from(host)),
        "{doc}"
    );
}

/// Issue #14: `--quick` bounds what it is given (`--sizes 2G` too) and says what it cut.
#[test]
fn quick_cuts_sizes_it_cannot_measure_in_time_and_says_so() {
    let out = ipckit(&[
        "bench",
        "--quick",
        "--transports",
        "pipe",
        "--pattern",
        "latency",
        "--sizes",
        "64,2G",
        "--duration",
        "1h",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("note: --quick measures sizes up to 1 MiB: 2 GiB left out"),
        "{stdout}"
    );
    assert!(stdout.contains("100.00 ms per cell at most"), "{stdout}");
    let header = stdout
        .lines()
        .find(|l| l.contains("latency: one-way p50"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        header.contains("64 B") && !header.contains("GiB"),
        "only 64 B measured: {header}"
    );
}

#[test]
fn sizes_a_transport_cannot_carry_are_na_with_the_reason() {
    let dir = Dir::new("bench-na");
    let json = dir.file("r.json");
    let out = ipckit(&[
        "bench",
        "--transports",
        "sysv-msg,posix-mq",
        "--sizes",
        "64,1M",
        "--pattern",
        "latency",
        "--iterations",
        "20",
        "--duration",
        "100ms",
        "--json",
        &json,
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("n/a"), "{stdout}");
    assert!(stdout.contains("msgmax"), "{stdout}");
    assert!(stdout.contains("msgsize_max"), "{stdout}");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let cells = check_schema(&doc);
    assert!(
        cells.iter().all(|c| c.2 == 64),
        "only 64-byte cells measured: {cells:?}"
    );
    assert_eq!(cells.len(), 2);
}

#[test]
fn merge_joins_result_files_into_one_table_json_and_chart() {
    let dir = Dir::new("bench-merge");
    let (a, b, c) = (dir.file("a.json"), dir.file("b.json"), dir.file("c.json"));
    for (file, transport) in [(&a, "pipe"), (&b, "tcp"), (&c, "signal")] {
        let out = ipckit(
            &[
                &["bench", "--transports", transport][..],
                &TINY,
                &["--json", file.as_str()],
            ]
            .concat(),
        );
        assert!(out.status.success(), "{:?}", text(&out));
    }
    // A peer's file written by another tool, with a transport ipckit does not know.
    let peer = dir.file("peer.json");
    std::fs::write(
        &peer,
        r#"{"machine":{"cpus":2,"cpu_model":"x","kernel":"y"},"results":[
        {"transport":"iceoryx2","pattern":"latency","size":64,"iterations":10,"mean_ns":900.0,
         "p50_ns":800,"p90_ns":900,"p99_ns":1000,"p999_ns":1100,"max_ns":1200}]}"#,
    )
    .unwrap();
    let (json, svg) = (dir.file("m.json"), dir.file("m.svg"));
    let out = ipckit(&[
        "bench", "merge", &a, &b, &c, &peer, "--json", &json, "--svg", &svg,
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // The n/a cells of a merged file still say why.
    assert!(stdout.contains("sigqueue carries one int"), "{stdout}");
    for name in ["pipe", "tcp", "iceoryx2"] {
        assert!(stdout.contains(name), "{name} in\n{stdout}");
    }
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let cells = check_schema(&doc);
    for name in ["pipe", "tcp", "iceoryx2"] {
        assert!(cells.iter().any(|c| c.0 == name), "{name} in {cells:?}");
    }
    let texts = svg_texts(Path::new(&svg));
    for name in ["pipe", "tcp", "iceoryx2"] {
        assert!(texts.iter().any(|t| t == name), "{name} in {texts:?}");
    }
}

/// Runs measured apart do not share a floor: merged, each latency is compared with its own
/// run's (here the fastest cell is 1.1× its run's floor, 6.6× the first run's).
#[test]
fn merge_compares_each_latency_with_its_own_runs_floor() {
    let dir = Dir::new("bench-merge-floors");
    let run = |file: &str, floor: u64, transport: &str, p50: u64| {
        let cell = |t: &str, p: u64| {
            format!(
                r#"{{"transport":"{t}","pattern":"latency","size":64,"iterations":10,"mean_ns":{p}.0,"p50_ns":{p},"p90_ns":{p},"p99_ns":{p},"p999_ns":{p},"max_ns":{p}}}"#
            )
        };
        let path = dir.file(file);
        std::fs::write(
            &path,
            format!(
                r#"{{"machine":{{"cpus":2,"cpu_model":"x","kernel":"y"}},"results":[{}],"baseline":{}}}"#,
                cell(transport, p50),
                cell("cache-line", floor)
            ),
        )
        .unwrap();
        path
    };
    let (a, b) = (
        run("a.json", 50, "slow", 400),
        run("b.json", 300, "fast", 330),
    );
    let svg = dir.file("merged.svg");
    let out = ipckit(&["bench", "merge", &a, &b, "--svg", &svg]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("merged from 2 runs measured apart: each latency compares with its own run's floor (p50 50 ns, 300 ns)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("lowest: fast at 64 B, 1.1× its run's floor"),
        "{stdout}"
    );
    // The chart draws each run's floor, not the first run's alone.
    let texts = svg_texts(Path::new(&svg));
    assert!(
        texts
            .iter()
            .any(|t| t == "cache-line (floor, 8 B) of each run: 50 ns, 300 ns"),
        "{texts:?}"
    );
}

#[test]
fn bad_flags_and_files_are_one_line_errors() {
    for args in [
        &["bench", "--transports", "carrier-pigeon"][..],
        &["bench", "--sizes", "12Q"],
        &["bench", "--duration", "soon"],
        &["bench", "--pattern", "sideways"],
        &["bench", "--wake-pause", "0s"],
        &["bench", "merge", "/nonexistent/ipckit.json"],
    ] {
        let out = ipckit(args);
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "{args:?}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("ipckit: "), "{args:?}: {stderr}");
    }
}

#[test]
fn bad_sizes_and_durations_are_usage_errors_in_the_commands_one_grammar() {
    for (args, complaint) in [
        (&["bench", "--sizes", "64,12Q"][..], "is not a size"),
        (&["bench", "--sizes", "1.5"], "is not a size"),
        (&["bench", "--duration", "100"], "is not a duration"),
        (&["bench", "--duration", "soon"], "is not a duration"),
        (&["send", "x", "--chunk", "4Ki"], "is not a size"),
        (&["recv", "x", "--timeout", "60"], "is not a duration"),
    ] {
        let out = ipckit(args);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(complaint), "{args:?}: {stderr}");
    }
}

/// Issue #13: every command-line mistake of bench is exit 2 and found before the run (no table
/// is printed first): an unwritable --json or --svg, an unknown transport, a size of 0.
#[test]
fn mistakes_are_usage_errors_found_before_the_run() {
    let mut cases: Vec<Vec<&str>> = vec![
        vec!["--json", "/nonexistent/x.json"],
        vec!["--svg", "/nonexistent/x.svg"],
        vec!["--transports", "carrier-pigeon"],
        vec!["--sizes", "0"],
        vec!["--pin=0,0"],
        vec!["--pin=0,100000"],
        vec!["--pin=first"],
        vec!["--pin=0"],
        vec!["--rounds", "0"],
        vec!["--rounds", "101"],
    ];
    for case in &mut cases {
        let mut args = vec!["bench", "--transports", "pipe", "--pattern", "latency"];
        args.extend(TINY);
        args.append(case);
        let out = ipckit(&args);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: ran first: {stdout}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    }
    let out = ipckit(&[
        "bench",
        "merge",
        "/nonexistent/a.json",
        "--json",
        "/nonexistent/b.json",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out).1);
}

/// The `/dev/shm` names a bench run of process `pid` created: `ipckit-bench-<pid>-…` for
/// `channel-zc`, `ipckit-host-<pid>-…` for the `channel` transport.
fn created_by(pid: u32) -> Vec<String> {
    let prefixes = [
        format!("ipckit-bench-{pid}-"),
        format!("ipckit-host-{pid}-"),
    ];
    let mut names: Vec<String> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| prefixes.iter().any(|p| n.starts_with(p)))
        .collect();
    names.sort();
    names
}

/// The processes `pid`'s threads have started and not yet reaped.
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("children")).ok())
        .flat_map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Starts a bench of `transport` whose one cell streams for a minute, and returns it with its
/// peer once the peer has mapped both of the run's channels; the guard removes what the run
/// left in `/dev/shm` (after the assertions, which look first).
fn bench_with_its_peer_holding_the_channels(
    transport: &str,
) -> (
    ipckit_testkit::Kid,
    u32,
    ipckit_testkit::Defer<impl FnMut()>,
) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ipckit"));
    cmd.args([
        "bench",
        "--transports",
        transport,
        "--sizes",
        "64",
        "--pattern",
        "throughput",
        "--duration",
        "60s",
    ]);
    let bench = ipckit_testkit::start(cmd);
    let pid = bench.pid() as u32;
    let cleanup = ipckit_testkit::Defer(move || {
        for name in created_by(pid) {
            let _ = std::fs::remove_file(Path::new("/dev/shm").join(name));
        }
    });
    let mut peer = None;
    ipckit_testkit::wait_until("the peer to map both channels", || {
        peer = children(pid).into_iter().find(|&c| {
            let maps = std::fs::read_to_string(format!("/proc/{c}/maps")).unwrap_or_default();
            let names = created_by(pid);
            names.len() == 2
                && names
                    .iter()
                    .all(|n| maps.contains(&format!("/dev/shm/{n}")))
        });
        peer.is_some()
    });
    (bench, peer.unwrap(), cleanup)
}

/// For `channel-zc` and `channel`: sends `signal` to the peer or to the bench once the peer
/// holds the channels, and checks that the bench exits with `code`, its peer gone and nothing
/// it created left in `/dev/shm`.
fn signalled_runs_leave_nothing(signal: &str, to_the_peer: bool, code: i32) {
    for transport in ["channel-zc", "channel"] {
        let (bench, peer, _cleanup) = bench_with_its_peer_holding_the_channels(transport);
        let pid = bench.pid() as u32;
        let target = if to_the_peer { peer } else { pid };
        let sent = Command::new("kill")
            .args([signal, &target.to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill {signal} {target}");
        let status = bench.wait();
        assert_eq!(status.code(), Some(code), "{transport}: exit status");
        assert!(
            !Path::new(&format!("/proc/{peer}")).exists(),
            "{transport}: the peer {peer} was ended and reaped"
        );
        assert_eq!(
            created_by(pid),
            Vec::<String>::new(),
            "{transport}: left behind"
        );
    }
}

#[test]
fn a_peer_killed_while_it_holds_the_channels_leaves_none_behind() {
    // The cell fails (exit 1); the bench leaves last, and its ends remove the channels.
    signalled_runs_leave_nothing("-KILL", true, 1);
}

#[test]
fn an_interrupted_run_ends_its_peer_and_removes_what_it_created() {
    // SIGINT stops the run at once (exit 130). The bench keeps its ends until it has ended and
    // reaped its peer, which never leaves the channels it held: leaving last, the bench's ends
    // remove them.
    signalled_runs_leave_nothing("-INT", false, 130);
}
