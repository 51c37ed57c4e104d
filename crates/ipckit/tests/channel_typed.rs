//! Typed channel ends (`channel::typed`): fixed-layout values between real processes (a child
//! re-executing this test binary), values written and read in place, and a message that is not
//! one value refused without harm.

use std::process::Child;

use ipckit::bytemuck::{Pod, Zeroable};
use ipckit::channel::{typed, Options, Producer};
use ipckit::Error;
use ipckit_testkit::{child_role, spawn_self};

mod channel_support;
use channel_support::channel_name;

const NAME_VAR: &str = "IPCKIT_TEST_CHANNEL";
const COUNT: u64 = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
struct Tick {
    seq: u64,
    price: f64,
    flags: [u32; 4],
}

fn tick(seq: u64) -> Tick {
    Tick {
        seq,
        price: seq as f64 * 0.5,
        flags: [seq as u32, !(seq as u32), 7, 9],
    }
}

/// A child killed and reaped if the test fails before waiting for it.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn values_cross_processes_in_order_and_intact() {
    if child_role().is_some() {
        let name = std::env::var(NAME_VAR).unwrap();
        let mut tx = typed::Producer::<Tick>::new(Producer::open(&name).unwrap());
        for seq in 0..COUNT {
            if seq % 2 == 0 {
                tx.send(&tick(seq)).unwrap();
            } else {
                // In place: each field at its offset.
                let slot = tx.reserve().unwrap();
                slot.shared().write(0, &seq).unwrap();
                slot.shared().write(8, &(seq as f64 * 0.5)).unwrap();
                slot.shared().write(16, &tick(seq).flags).unwrap();
                slot.commit();
            }
        }
        tx.into_inner().close().unwrap();
        return;
    }
    let (name, _guard) = channel_name("typed");
    let mut rx = typed::Consumer::<Tick>::new(Options::new().consumer(&name).unwrap());
    let child = spawn_self("values_cross_processes_in_order_and_intact", "producer")
        .env(NAME_VAR, &name)
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let mut next = 0;
    while let Some(value) = rx.recv().unwrap() {
        assert_eq!(value, tick(next));
        next += 1;
    }
    assert_eq!(next, COUNT);
    assert!(child.0.wait().unwrap().success());
}

#[test]
fn a_message_that_is_not_one_value_is_corrupt_and_the_next_one_is_received() {
    let channel = Options::new().anonymous().unwrap();
    let mut bytes = channel.producer().unwrap();
    let mut rx = typed::Consumer::<Tick>::new(channel.consumer().unwrap());
    bytes.send(&[1, 2, 3]).unwrap();
    let mut tx = typed::Producer::<Tick>::new(bytes);
    tx.send(&tick(5)).unwrap();
    let err = rx.try_recv().unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("a message of 3 bytes"), "{err}");
    assert_eq!(rx.try_recv().unwrap(), Some(tick(5)));
    let err = rx.try_recv().unwrap_err();
    assert!(matches!(err, Error::WouldBlock { .. }), "{err}");

    // In place: the slot is checked to be one value long.
    tx.send(&tick(6)).unwrap();
    let slot = rx.recv_ref().unwrap().expect("a value");
    assert_eq!(slot.shared().read::<u64>(0).unwrap(), 6);
}

#[test]
fn a_value_larger_than_the_lane_is_too_large_and_nothing_is_sent() {
    #[derive(Clone, Copy, Pod, Zeroable)]
    #[repr(C)]
    struct Big([u8; 8192]);
    let channel = Options::new().lane_capacity(4096).anonymous().unwrap();
    let mut tx = typed::Producer::<Big>::new(channel.producer().unwrap());
    let mut rx = channel.consumer().unwrap();
    let err = tx.send(&Big([0; 8192])).unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    let err = rx.try_recv().unwrap_err();
    assert!(matches!(err, Error::WouldBlock { .. }), "{err}");
}

/// `channel::serialized`: serde values (postcard) across processes, size checked before the lane
/// is touched, and messages that are not one value refused.
#[cfg(feature = "serde")]
mod serialized {
    use ipckit::channel::{serialized, Options, Producer};
    use ipckit::Error;
    use ipckit_testkit::{child_role, spawn_self};
    use serde::{Deserialize, Serialize};

    use super::{channel_name, KillOnDrop, NAME_VAR};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Job {
        Copy { from: String, to: String },
        Sum(Vec<u32>),
        Stop,
    }

    fn job(i: u32) -> Job {
        match i % 3 {
            0 => Job::Copy {
                from: format!("/in/{i}"),
                to: "é/out".repeat(i as usize % 7),
            },
            1 => Job::Sum((0..i % 50).collect()),
            _ => Job::Stop,
        }
    }

    #[test]
    fn serde_values_cross_processes_in_order_and_intact() {
        const TEST: &str = "serialized::serde_values_cross_processes_in_order_and_intact";
        if child_role().is_some() {
            let name = std::env::var(NAME_VAR).unwrap();
            let mut tx = serialized::Producer::<Job>::new(Producer::open(&name).unwrap());
            for i in 0..5000 {
                tx.send(&job(i)).unwrap();
            }
            tx.into_inner().close().unwrap();
            return;
        }
        let (name, _guard) = channel_name("serde");
        let mut rx = serialized::Consumer::<Job>::new(Options::new().consumer(&name).unwrap());
        let child = spawn_self(TEST, "producer")
            .env(NAME_VAR, &name)
            .spawn()
            .unwrap();
        let mut child = KillOnDrop(child);
        let mut i = 0;
        while let Some(value) = rx.recv().unwrap() {
            assert_eq!(value, job(i));
            i += 1;
        }
        assert_eq!(i, 5000);
        assert!(child.0.wait().unwrap().success());
    }

    #[test]
    fn an_encoding_larger_than_the_lane_is_refused_before_the_lane_is_touched() {
        let channel = Options::new().lane_capacity(4096).anonymous().unwrap();
        let mut tx = serialized::Producer::<Job>::new(channel.producer().unwrap());
        let mut rx = channel.consumer().unwrap();
        let err = tx.send(&Job::Sum(vec![u32::MAX; 2000])).unwrap_err();
        assert!(matches!(err, Error::TooLarge { .. }), "{err}");
        let err = rx.try_recv().unwrap_err();
        assert!(matches!(err, Error::WouldBlock { .. }), "{err}");
    }

    #[test]
    fn a_message_that_is_not_one_value_is_corrupt_and_the_next_one_is_received() {
        let channel = Options::new().anonymous().unwrap();
        let mut bytes = channel.producer().unwrap();
        let mut rx = serialized::Consumer::<Job>::new(channel.consumer().unwrap());
        bytes.send(&[9]).unwrap(); // no such variant
        bytes.send(&[2, 0]).unwrap(); // Stop and a byte after it
        bytes.send(&[1, 0xff, 0xff, 0xff, 0xff, 0x0f]).unwrap(); // 4 G numbers in 5 bytes
        let mut tx = serialized::Producer::<Job>::new(bytes);
        tx.send(&Job::Stop).unwrap();
        for _ in 0..3 {
            let err = rx.try_recv().unwrap_err();
            assert!(matches!(err, Error::Corrupt { .. }), "{err}");
        }
        assert_eq!(rx.try_recv().unwrap(), Some(Job::Stop));
    }
}
