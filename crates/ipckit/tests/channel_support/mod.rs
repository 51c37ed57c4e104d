//! Helpers shared by the channel test suites: names with cleanup guards, checksummed messages, a
//! seeded PRNG.
#![allow(dead_code)]

use ipckit::channel;
use ipckit_testkit::{unique_name, Defer};

/// A fresh channel name and a guard that removes it even if the test panics.
pub fn channel_name(what: &str) -> (String, Defer<impl FnMut()>) {
    let name = unique_name(what);
    let n = name.clone();
    (name, Defer(move || drop(channel::remove(&n))))
}

pub fn shm_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new("/dev/shm").join(name.trim_start_matches('/'))
}

/// A tiny deterministic PRNG (xorshift64*), so failures reproduce.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// FNV-1a, the checksum carried by test messages.
pub fn fnv(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// A message: producer id (u32), sequence (u64), payload derived from both, checksum (u32).
pub fn message(producer: u32, seq: u64, len: usize) -> Vec<u8> {
    let len = len.max(16);
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&producer.to_le_bytes());
    m.extend_from_slice(&seq.to_le_bytes());
    let mut x = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(producer);
    while m.len() < len - 4 {
        x = x.rotate_left(7).wrapping_add(0x1234_5677);
        m.push(x as u8);
    }
    let sum = fnv(&m);
    m.extend_from_slice(&sum.to_le_bytes());
    m
}

/// Checks a message's checksum and returns (producer, seq).
pub fn check(m: &[u8]) -> (u32, u64) {
    assert!(m.len() >= 16, "message of {} bytes is too short", m.len());
    let (body, sum) = m.split_at(m.len() - 4);
    assert_eq!(
        fnv(body),
        u32::from_le_bytes(sum.try_into().unwrap()),
        "torn or corrupted message of {} bytes",
        m.len()
    );
    (
        u32::from_le_bytes(m[0..4].try_into().unwrap()),
        u64::from_le_bytes(m[4..12].try_into().unwrap()),
    )
}

/// utime + stime of this process in clock ticks (/proc/self/stat fields 14 and 15).
pub fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // The command name (field 2) may contain spaces: split after its closing parenthesis.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3, so fields 14 and 15 are at 11 and 12.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}
