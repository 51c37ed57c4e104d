//! A chat through System V shared memory, woken by signals, run without a terminal.
//!
//! Two processes: a **reader** creates a FIFO and sends its PID through it; the **writer** reads
//! the PID, creates a private shared-memory segment ([`ipckit::sysv::shm`]), and for each text line
//! puts the line in the segment and wakes the reader with `SIGUSR1`, sent with `sigqueue` and the
//! line's number as its value. The reader receives signals through a [`SignalFd`] — ordinary code,
//! no handler — prints the line, and answers with `SIGUSR1` carrying the same number, which frees
//! the segment for the next line (without that answer a fast writer would overwrite a line before
//! it is read). The segment's id travels to the reader as the value of a first `SIGUSR2`. An end
//! marker in the segment's header ends both sides.
//!
//! `SIGINT` is one more signal each side reads from its `SignalFd`: on it, each side returns
//! normally, so every object it created is removed by its owning handle — the FIFO by the reader,
//! the segment by the writer — and exits with status 130. With `--interrupt` the writer sends lines
//! without end and this program sends `SIGINT` to both, as a terminal's Ctrl+C would (they share a
//! process group), after the third line; then it checks that the FIFO and the segment are gone.
//!
//! The signal is also the memory barrier: the writer fills the segment before `sigqueue`, the
//! reader looks at it after reading the signal, and the kernel's locking of the signal queue
//! orders the two.
//!
//! usage: `signal_chat [--interrupt] [--fifo PATH] [LINE...]` — the roles re-run this program as
//! `signal_chat --role reader FIFO` and `signal_chat --role writer FIFO (--endless | LINE...)`.

use std::error::Error;
use std::io::{BufRead, BufReader, Read, Write};
use std::mem::size_of;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitCode, ExitStatus, Stdio};
use std::time::Duration;

use bytemuck::{Pod, Zeroable};
use ipckit::pipe::Fifo;
use ipckit::signal::{self, Signal, SignalFd, SignalInfo, SignalSet};
use ipckit::sysv::shm::{Attachment, ReadOnlyAttachment, Segment};
use ipckit::Key;
use ipckit::DEFAULT_MODE;

const USAGE: &str = "usage: signal_chat [--interrupt] [--fifo PATH] [LINE...]";

const DEFAULT_LINES: [&str; 5] = [
    "hello through shared memory",
    "each line wakes the reader with SIGUSR1",
    "the reader answers, so no line is overwritten",
    "no signal handler runs any code",
    "goodbye",
];

/// The longest either side waits for the other before giving up.
const PATIENCE: Duration = Duration::from_secs(20);
/// With `--interrupt`, SIGINT is sent after this many lines.
const INTERRUPT_AFTER: usize = 3;
/// The exit status of a side stopped by SIGINT (128 + 2, as shells report it).
const EXIT_INTERRUPTED: i32 = 130;

const SEGMENT_SIZE: usize = 4096;
const TEXT_OFFSET: usize = size_of::<Header>();
const TEXT_CAPACITY: usize = SEGMENT_SIZE - TEXT_OFFSET;

/// The start of the segment: which line it holds.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Header {
    /// The line's number, from 1; also the value of the signal announcing it.
    seq: u32,
    /// Length in bytes of the text that follows the header.
    len: u32,
    /// 1 for the end marker (no text), else 0.
    end: u32,
    reserved: u32,
}

type Res<T> = Result<T, Box<dyn Error>>;

/// How a side finished without error.
enum Ended {
    Done,
    Interrupted,
}

/// The signals both sides read: SIGINT, SIGUSR1 (a line / its acknowledgement), SIGUSR2 (the
/// segment's id).
fn chat_signals() -> SignalSet {
    SignalSet::from([Signal::INT, Signal::USR1, Signal::USR2])
}

/// Blocks the chat's signals — first thing in `main`, before any thread exists — and opens the
/// descriptor that receives them.
fn inbox() -> Res<SignalFd> {
    let signals = chat_signals();
    signal::block(&signals)?;
    Ok(SignalFd::new(&signals)?)
}

/// The next signal, or an error if the other side stayed silent too long.
fn next(inbox: &SignalFd) -> Res<SignalInfo> {
    inbox
        .recv_timeout(PATIENCE)?
        .ok_or_else(|| format!("no signal from the other side within {PATIENCE:?}").into())
}

/// `sigqueue` to the other side. If it is gone (`ESRCH`) because a SIGINT to both of us stopped it,
/// our own SIGINT is already pending: `kill` to a process group queues to every member before any
/// of them runs. Then this side is interrupted too.
fn send(inbox: &SignalFd, to: u32, sig: Signal, value: i32) -> Res<Ended> {
    match signal::queue(to, sig, value) {
        Ok(()) => Ok(Ended::Done),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
            while let Some(info) = inbox.try_recv()? {
                if info.signal == Signal::INT {
                    return Ok(Ended::Interrupted);
                }
            }
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}

// ----------------------------------------------------------------------------------------------
// The reader
// ----------------------------------------------------------------------------------------------

fn reader(fifo_path: &Path) -> Res<Ended> {
    let inbox = inbox()?;
    // Ours: removed when this function returns, whether done, interrupted or failed.
    let fifo = Fifo::create(fifo_path, DEFAULT_MODE)?.into_owned();
    println!("ready");
    std::io::stdout().flush()?;

    let mut to_writer = fifo.open_write_timeout(PATIENCE)?;
    to_writer.write_all(&std::process::id().to_ne_bytes())?;
    drop(to_writer);

    let (writer, segment) = loop {
        let info = next(&inbox)?;
        match info.signal {
            Signal::INT => return Ok(Ended::Interrupted),
            Signal::USR2 => {
                let segment = Segment::from_id(info.value).attach_read_only()?;
                break (info.sender_pid, segment);
            }
            _ => eprintln!(
                "reader: {} from {} before the segment, ignored",
                info.signal, info.sender_pid
            ),
        }
    };
    if let Ended::Interrupted = send(&inbox, writer, Signal::USR1, 0)? {
        return Ok(Ended::Interrupted); // attached, but the writer is gone
    }

    loop {
        let info = next(&inbox)?;
        if info.signal == Signal::INT {
            return Ok(Ended::Interrupted);
        }
        if info.signal != Signal::USR1 || info.sender_pid != writer {
            eprintln!("reader: {} from {}, ignored", info.signal, info.sender_pid);
            continue;
        }
        let line = read_line(&segment, info.value)?;
        match &line {
            None => println!("end"),
            Some(text) => println!("line {}: {text}", info.value),
        }
        std::io::stdout().flush()?;
        // Read: the segment is free again.
        if let Ended::Interrupted = send(&inbox, writer, Signal::USR1, info.value)? {
            return Ok(Ended::Interrupted);
        }
        if line.is_none() {
            return Ok(Ended::Done);
        }
    }
}

/// The line announced by the signal value `seq`, or `None` for the end marker. The segment is
/// written by another process, so everything is checked before use.
fn read_line(segment: &ReadOnlyAttachment, seq: i32) -> Res<Option<String>> {
    let header = segment.read::<Header>(0)?;
    if i64::from(header.seq) != i64::from(seq) {
        return Err(format!(
            "the segment holds line {}, the signal announced {seq}",
            header.seq
        )
        .into());
    }
    let len = header.len as usize;
    if len > TEXT_CAPACITY || header.end > 1 {
        return Err(format!("corrupt header: len {len}, end {}", header.end).into());
    }
    if header.end == 1 {
        return Ok(None);
    }
    let mut text = vec![0; len];
    segment.read_at(TEXT_OFFSET, &mut text)?;
    let text = String::from_utf8(text).map_err(|e| format!("line {seq} is not UTF-8: {e}"))?;
    Ok(Some(text))
}

// ----------------------------------------------------------------------------------------------
// The writer
// ----------------------------------------------------------------------------------------------

fn writer(fifo_path: &Path, lines: impl Iterator<Item = String>) -> Res<Ended> {
    let inbox = inbox()?;
    let mut from_reader = Fifo::new(fifo_path).open_read_timeout(PATIENCE)?;
    let mut pid = [0u8; 4];
    from_reader.read_exact(&mut pid)?;
    drop(from_reader);
    let reader = u32::from_ne_bytes(pid);

    // Ours: removed when this function returns (the kernel waits for the reader to detach).
    let segment = Segment::options()
        .size(SEGMENT_SIZE)
        .create(true)
        .open(Key::PRIVATE)?
        .into_owned();
    let memory = segment.attach()?;
    println!("segment {}", segment.id());
    std::io::stdout().flush()?;

    let exchange = |seq: u32, sig: Signal, value: i32| -> Res<Ended> {
        match send(&inbox, reader, sig, value)? {
            Ended::Done => wait_for_answer(&inbox, reader, seq),
            Ended::Interrupted => Ok(Ended::Interrupted),
        }
    };
    if let Ended::Interrupted = exchange(0, Signal::USR2, segment.id())? {
        return Ok(Ended::Interrupted);
    }
    let mut seq = 0;
    for line in lines {
        seq += 1;
        write_line(&memory, seq, Some(&line))?;
        if let Ended::Interrupted = exchange(seq, Signal::USR1, seq as i32)? {
            return Ok(Ended::Interrupted);
        }
    }
    seq += 1;
    write_line(&memory, seq, None)?;
    exchange(seq, Signal::USR1, seq as i32)
}

/// Puts line `seq` (or the end marker, for `None`) into the segment: text first, then the header.
fn write_line(memory: &Attachment, seq: u32, text: Option<&str>) -> Res<()> {
    let bytes = text.unwrap_or("").as_bytes();
    if bytes.len() > TEXT_CAPACITY {
        return Err(format!(
            "line {seq} has {} bytes; the segment holds {TEXT_CAPACITY}",
            bytes.len()
        )
        .into());
    }
    memory.write_at(TEXT_OFFSET, bytes)?;
    let header = Header {
        seq,
        len: bytes.len() as u32,
        end: u32::from(text.is_none()),
        reserved: 0,
    };
    memory.write(0, &header)?;
    Ok(())
}

/// Waits for the reader's SIGUSR1 carrying `seq`; SIGINT interrupts.
fn wait_for_answer(inbox: &SignalFd, reader: u32, seq: u32) -> Res<Ended> {
    loop {
        let info = next(inbox)?;
        match info.signal {
            Signal::INT => return Ok(Ended::Interrupted),
            Signal::USR1 if info.sender_pid == reader && info.value == seq as i32 => {
                return Ok(Ended::Done)
            }
            _ => eprintln!(
                "writer: {} from {} with value {}, ignored",
                info.signal, info.sender_pid, info.value
            ),
        }
    }
}

// ----------------------------------------------------------------------------------------------
// The demonstration: both roles as child processes, then the checks
// ----------------------------------------------------------------------------------------------

struct Options {
    interrupt: bool,
    fifo: PathBuf,
    lines: Vec<String>,
}

fn parse_options(args: Vec<String>) -> Res<Options> {
    let mut options = Options {
        interrupt: false,
        fifo: std::env::temp_dir().join(format!("ipckit-signal-chat-{}.fifo", std::process::id())),
        lines: Vec::new(),
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--interrupt" => options.interrupt = true,
            "--fifo" => options.fifo = args.next().ok_or(USAGE)?.into(),
            "-h" | "--help" => return Err(USAGE.into()),
            "--" => options.lines.extend(args.by_ref()),
            s if s.starts_with("--") => return Err(format!("unknown option {s}\n{USAGE}").into()),
            _ => options.lines.push(arg),
        }
    }
    if options.lines.is_empty() {
        options.lines = DEFAULT_LINES.iter().map(|s| s.to_string()).collect();
    }
    Ok(options)
}

/// The two children; on an early return they are interrupted and waited for, so they clean up.
struct Children {
    pgid: u32,
    running: Vec<Child>,
}

impl Drop for Children {
    fn drop(&mut self) {
        if !self.running.is_empty() {
            let _ = signal::kill_group(self.pgid, Signal::INT);
            for child in &mut self.running {
                let _ = child.wait();
            }
        }
    }
}

fn first_line(out: &mut BufReader<ChildStdout>, who: &str) -> Res<String> {
    let mut line = String::new();
    if out.read_line(&mut line)? == 0 {
        return Err(format!("the {who} exited before saying anything").into());
    }
    Ok(line.trim_end().to_string())
}

fn describe(status: ExitStatus) -> String {
    match status.code() {
        Some(0) => "finished".to_string(),
        Some(EXIT_INTERRUPTED) => "was interrupted".to_string(),
        _ => format!("failed ({status})"),
    }
}

fn demonstrate(options: Options) -> Res<bool> {
    let exe = std::env::current_exe()?;
    let mut reader = Command::new(&exe)
        .args(["--role", "reader"])
        .arg(&options.fifo)
        .stdout(Stdio::piped())
        .process_group(0) // a new group, which the writer joins: Ctrl+C's target
        .spawn()?;
    let pgid = reader.id();
    let mut reader_out = BufReader::new(reader.stdout.take().ok_or("no stdout")?);
    let mut children = Children {
        pgid,
        running: vec![reader],
    };
    let said = first_line(&mut reader_out, "reader")?;
    if said != "ready" {
        return Err(format!("the reader said {said:?}").into());
    }

    let mut writer = Command::new(&exe);
    writer.args(["--role", "writer"]).arg(&options.fifo);
    if options.interrupt {
        writer.arg("--endless");
    } else {
        writer.arg("--").args(&options.lines);
    }
    let mut writer = writer
        .stdout(Stdio::piped())
        .process_group(pgid as i32)
        .spawn()?;
    let writer_pid = writer.id();
    let mut writer_out = BufReader::new(writer.stdout.take().ok_or("no stdout")?);
    children.running.push(writer);
    let said = first_line(&mut writer_out, "writer")?;
    let segment_id: i32 = said
        .strip_prefix("segment ")
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| format!("the writer said {said:?}"))?;
    println!("writer {writer_pid} created segment {segment_id}");

    let mut received = Vec::new();
    let mut ended = false;
    for line in reader_out.lines() {
        let line = line?;
        println!("reader: {line}");
        if line == "end" {
            ended = true;
        } else if let Some((_, text)) = line.split_once(": ") {
            received.push(text.to_string());
            if options.interrupt && received.len() == INTERRUPT_AFTER {
                println!("sending SIGINT to process group {pgid}");
                signal::kill_group(pgid, Signal::INT)?;
            }
        }
    }
    let mut statuses = Vec::new();
    for mut child in std::mem::take(&mut children.running) {
        statuses.push(child.wait()?);
    }
    let (reader_status, writer_status) = (statuses[0], statuses[1]);
    println!(
        "reader {}, writer {}",
        describe(reader_status),
        describe(writer_status)
    );

    let mut ok = true;
    let expected_exit = if options.interrupt {
        EXIT_INTERRUPTED
    } else {
        0
    };
    if reader_status.code() != Some(expected_exit) || writer_status.code() != Some(expected_exit) {
        println!("expected both to exit with {expected_exit}");
        ok = false;
    }
    if options.interrupt {
        let prefix_ok = received.len() >= INTERRUPT_AFTER
            && received
                .iter()
                .enumerate()
                .all(|(i, text)| *text == format!("message {}", i + 1));
        if !prefix_ok || ended {
            println!("expected messages 1, 2, 3 … in order and no end marker: {received:?}");
            ok = false;
        }
    } else if received != options.lines || !ended {
        println!(
            "expected all {} lines in order and the end marker",
            options.lines.len()
        );
        ok = false;
    }

    // Nothing may be left: neither the FIFO nor the segment (an id can be reused by a newer
    // segment, so a segment under the id that the writer did not create does not count).
    if std::fs::symlink_metadata(&options.fifo).is_ok() {
        println!("the FIFO {} was left behind", options.fifo.display());
        ok = false;
    }
    if let Ok(stat) = Segment::from_id(segment_id).stat() {
        if stat.cpid == writer_pid {
            println!("segment {segment_id} was left behind");
            ok = false;
        }
    }
    if ok {
        if options.interrupt {
            println!(
                "signal_chat --interrupt: SIGINT after {} lines; both sides removed what they created \
                 (FIFO {}, segment {segment_id})",
                received.len(),
                options.fifo.display()
            );
        } else {
            println!(
                "signal_chat: {} lines received in order through segment {segment_id}; FIFO and segment removed",
                received.len()
            );
        }
    }
    Ok(ok)
}

fn run_role(args: &[String]) -> Res<Ended> {
    match args {
        [role, fifo] if role == "reader" => reader(Path::new(fifo)),
        [role, fifo, flag] if role == "writer" && flag == "--endless" => {
            writer(Path::new(fifo), (1..).map(|n| format!("message {n}")))
        }
        [role, fifo, dashes, lines @ ..] if role == "writer" && dashes == "--" => {
            writer(Path::new(fifo), lines.iter().cloned())
        }
        _ => Err(format!("bad role arguments {args:?}").into()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--role") {
        let role = args.get(1).cloned().unwrap_or_default();
        return match run_role(&args[1..]) {
            Ok(Ended::Done) => ExitCode::SUCCESS,
            Ok(Ended::Interrupted) => ExitCode::from(EXIT_INTERRUPTED as u8),
            Err(e) => {
                eprintln!("signal_chat {role}: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match parse_options(args).and_then(demonstrate) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("signal_chat: {e}");
            ExitCode::from(2)
        }
    }
}
