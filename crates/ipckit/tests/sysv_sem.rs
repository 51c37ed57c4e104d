//! System V semaphore sets: values, atomic op lists, blocking and timed waits across processes,
//! SEM_UNDO, removal, interoperability with C, and the examples built on them.

use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use ipckit::sysv::sem::{OwnedSemSet, SemOp, SemSet};
use ipckit::{Error, Key};
use ipckit_testkit::interrupt::set_handler;
use ipckit_testkit::task::Task;
use ipckit_testkit::{
    child_role, example_bin, run_for_stdout, spawn_self, start, unique_key, wait_until, CProgram,
    Defer, Kid,
};

/// A new private set of `n` semaphores, removed when the handle drops (also on panic).
fn private_set(n: usize) -> OwnedSemSet {
    SemSet::create_exclusive(Key::PRIVATE, n)
        .expect("create semaphore set")
        .into_owned()
}

/// Re-runs the test `test` in a child that plays `action` on the set `set` (see [`play`]).
fn spawn_child(test: &str, action: &str, set: &SemSet) -> Kid {
    start(spawn_self(test, &format!("{action}:{}", set.id())))
}

/// The child side: `action:set-id`. A failed assertion here makes the child exit non-zero.
fn play(role: &str) {
    let (action, id) = role.split_once(':').expect("role is action:id");
    let set = SemSet::from_id(id.parse().expect("set id"));
    match action {
        "post" => set.post(0).unwrap(),
        "wait" => set.wait(0).unwrap(),
        "wait-zero" => set.op(&[SemOp::wait_zero(0)]).unwrap(),
        "take" => {
            set.wait(0).unwrap();
            assert_eq!(set.get(0).unwrap(), 0);
        }
        "take-undo" => {
            set.wait_undo(0).unwrap();
            assert_eq!(set.get(0).unwrap(), 0);
        }
        "take-undo-then-block" => {
            set.wait_undo(0).unwrap();
            // Semaphore 1 stays 0: this blocks until the process is killed or the set removed.
            let _ = set.wait(1);
        }
        "interrupted-wait" => interrupted(&set, |set| set.wait(0).unwrap()),
        "interrupted-wait-timeout" => interrupted(&set, |set| {
            assert!(set.wait_timeout(0, Duration::from_secs(120)).unwrap())
        }),
        "expect-eidrm" => {
            let err = set
                .wait(0)
                .expect_err("wait must fail once the set is removed");
            assert_eq!(err.raw_os_error(), Some(libc::EIDRM), "{err}");
        }
        other => panic!("unknown role {other}"),
    }
}

/// The set a SIGUSR1 handler posts semaphore 1 of, so its run is visible from outside.
static SIGNALLED_SET: AtomicI32 = AtomicI32::new(-1);

extern "C" fn post_semaphore_1(_signal: libc::c_int) {
    let mut op = libc::sembuf {
        sem_num: 1,
        sem_op: 1,
        sem_flg: 0,
    };
    // SAFETY: semop is a plain system call (async-signal-safe) on a sembuf that lives on this
    // stack frame for the duration of the call.
    unsafe { libc::semop(SIGNALLED_SET.load(Ordering::SeqCst), &mut op, 1) };
}

/// Runs `wait` (which blocks on semaphore 0) while a helper thread interrupts it with a signal:
/// once the handler has run (semaphore 1 is 1) and the waiter is blocked again, the helper posts
/// semaphore 0. `wait` only succeeds if the interrupted call was retried.
fn interrupted(set: &SemSet, wait: impl FnOnce(&SemSet)) {
    SIGNALLED_SET.store(set.id(), Ordering::SeqCst);
    // Without SA_RESTART (and semop is never restarted anyway) the blocked call fails with EINTR.
    set_handler(libc::SIGUSR1, post_semaphore_1);
    let waiter = Task::current();
    let helper_set = *set;
    let helper = std::thread::spawn(move || {
        let set = helper_set;
        wait_until("the waiter to block", || set.ncnt(0).unwrap() == 1);
        // `waiter` is the thread that called `interrupted`, alive until it joins us.
        waiter.signal(libc::SIGUSR1);
        wait_until("the handler to run", || set.get(1).unwrap() == 1);
        wait_until("the waiter to block again", || set.ncnt(0).unwrap() == 1);
        set.post(0).unwrap();
    });
    wait(set);
    helper.join().unwrap();
}

#[test]
fn create_exclusive_fails_when_the_key_exists_and_open_finds_the_set() {
    let key = Key::new(unique_key());
    let set = SemSet::create_exclusive(key, 2).unwrap().into_owned();
    assert_eq!(SemSet::open(key).unwrap().id(), set.id());
    assert_eq!(SemSet::create(key, 2).unwrap().id(), set.id());
    let err = SemSet::create_exclusive(key, 2).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
    let err = SemSet::open(Key::new(unique_key())).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    assert_eq!(set.stat().unwrap().perm.key, key);
}

#[test]
fn bad_nsems_mode_or_private_open_is_rejected_before_semget() {
    let err = SemSet::create_exclusive(Key::PRIVATE, 0).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    let err = SemSet::options()
        .create(true)
        .open(Key::PRIVATE)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    let err = SemSet::options().nsems(1).open(Key::PRIVATE).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    let err = SemSet::options()
        .nsems(1)
        .mode(0o1600)
        .create(true)
        .open(Key::PRIVATE)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
}

#[test]
fn values_set_get_get_all_and_set_all() {
    let set = private_set(3);
    assert_eq!(set.nsems().unwrap(), 3);
    assert_eq!(set.get_all().unwrap(), vec![0, 0, 0]);
    set.set(1, 5).unwrap();
    assert_eq!(set.get(1).unwrap(), 5);
    assert_eq!(set.get_all().unwrap(), vec![0, 5, 0]);
    set.set_all(&[1, 2, 32767]).unwrap();
    assert_eq!(set.get_all().unwrap(), vec![1, 2, 32767]);
    assert_eq!(set.get(2).unwrap(), 32767);
}

#[test]
fn bad_semaphore_numbers_and_values_are_invalid_arguments_and_change_nothing() {
    let set = private_set(2);
    set.set_all(&[4, 6]).unwrap();
    let invalid = |r: ipckit::Result<()>| {
        let err = r.unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    };
    invalid(set.set(2, 1));
    invalid(set.get(2).map(drop));
    invalid(set.ncnt(7).map(drop));
    invalid(set.last_pid(2).map(drop));
    invalid(set.set(0, -1));
    invalid(set.set(0, 32768));
    invalid(set.set_all(&[1]));
    invalid(set.set_all(&[1, 2, 3]));
    invalid(set.set_all(&[1, 40000]));
    invalid(set.op(&[]));
    assert_eq!(set.get_all().unwrap(), vec![4, 6]);
    let err = set.get(2).unwrap_err();
    assert!(err.to_string().contains("outside the set of 2"), "{err}");
}

#[test]
fn op_set_that_would_block_on_its_second_op_changes_nothing() {
    let set = private_set(2);
    set.set_all(&[1, 0]).unwrap();
    let both = [SemOp::wait(0), SemOp::wait(1)];
    assert!(!set.try_op(&both).unwrap());
    assert_eq!(set.get_all().unwrap(), vec![1, 0]);
    assert!(!set.op_timeout(&both, Duration::from_millis(20)).unwrap());
    assert_eq!(set.get_all().unwrap(), vec![1, 0]);
    set.post(1).unwrap();
    assert!(set.try_op(&both).unwrap());
    assert_eq!(set.get_all().unwrap(), vec![0, 0]);
    // Several ops on one semaphore apply in order, all or nothing.
    set.op(&[SemOp::new(0, 3), SemOp::new(0, -2)]).unwrap();
    assert_eq!(set.get(0).unwrap(), 1);
}

#[test]
fn long_op_lists_apply_all_or_nothing() {
    let set = private_set(12);
    let posts: Vec<SemOp> = (0..12).map(SemOp::post).collect();
    set.op(&posts).unwrap();
    assert_eq!(set.get_all().unwrap(), vec![1; 12]);
    let mut takes: Vec<SemOp> = (0..12).map(SemOp::wait).collect();
    takes.push(SemOp::wait(11));
    assert!(!set.try_op(&takes).unwrap());
    assert_eq!(set.get_all().unwrap(), vec![1; 12]);
    takes.pop();
    assert!(set.try_op(&takes).unwrap());
    assert_eq!(set.get_all().unwrap(), vec![0; 12]);
}

#[test]
fn try_wait_returns_false_on_zero_and_leaves_the_value() {
    let set = private_set(1);
    assert!(!set.try_wait(0).unwrap());
    assert_eq!(set.get(0).unwrap(), 0);
    set.set(0, 2).unwrap();
    assert!(set.try_wait(0).unwrap());
    assert_eq!(set.get(0).unwrap(), 1);
    // A caller's own nowait flag in a blocking op is a WouldBlock error, not a wait.
    set.set(0, 0).unwrap();
    let err = set.op(&[SemOp::wait(0).nowait()]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock, "{err}");
}

#[test]
fn op_timeout_times_out_then_succeeds_after_a_post_from_another_process() {
    const TEST: &str = "op_timeout_times_out_then_succeeds_after_a_post_from_another_process";
    if let Some(role) = child_role() {
        return play(&role);
    }
    let set = private_set(1);
    assert!(!set.wait_timeout(0, Duration::from_millis(30)).unwrap());
    assert_eq!(set.get(0).unwrap(), 0);
    let poster = spawn_child(TEST, "post", &set);
    assert!(set.wait_timeout(0, Duration::from_secs(60)).unwrap());
    assert!(poster.wait().success());
    assert_eq!(set.get(0).unwrap(), 0);
}

#[test]
fn blocked_waiter_is_released_by_post_and_counted_by_ncnt() {
    const TEST: &str = "blocked_waiter_is_released_by_post_and_counted_by_ncnt";
    if let Some(role) = child_role() {
        return play(&role);
    }
    let set = private_set(1);
    assert_eq!(set.ncnt(0).unwrap(), 0);
    let waiter = spawn_child(TEST, "wait", &set);
    wait_until("the child to block in semop", || set.ncnt(0).unwrap() == 1);
    set.post(0).unwrap();
    assert!(waiter.wait().success());
    assert_eq!(set.ncnt(0).unwrap(), 0);
    assert_eq!(set.get(0).unwrap(), 0, "the waiter took the posted unit");
}

#[test]
fn wait_for_zero_is_counted_by_zcnt_and_released_when_the_value_reaches_zero() {
    const TEST: &str = "wait_for_zero_is_counted_by_zcnt_and_released_when_the_value_reaches_zero";
    if let Some(role) = child_role() {
        return play(&role);
    }
    let set = private_set(1);
    set.set(0, 1).unwrap();
    let waiter = spawn_child(TEST, "wait-zero", &set);
    wait_until("the child to wait for zero", || set.zcnt(0).unwrap() == 1);
    set.wait(0).unwrap();
    assert!(waiter.wait().success());
    assert_eq!(set.zcnt(0).unwrap(), 0);
}

#[test]
fn last_pid_is_the_pid_of_the_last_operator() {
    const TEST: &str = "last_pid_is_the_pid_of_the_last_operator";
    if let Some(role) = child_role() {
        return play(&role);
    }
    let set = private_set(2);
    assert_eq!(set.last_pid(0).unwrap(), 0);
    set.post(0).unwrap();
    assert_eq!(set.last_pid(0).unwrap(), std::process::id() as i32);
    let poster = spawn_child(TEST, "post", &set);
    let pid = poster.pid();
    assert!(poster.wait().success());
    assert_eq!(set.last_pid(0).unwrap(), pid);
    assert_eq!(set.get(0).unwrap(), 2);
    assert_eq!(set.last_pid(1).unwrap(), 0, "semaphore 1 was never touched");
}

#[test]
fn undo_gives_a_semaphore_back_when_its_holder_exits() {
    const TEST: &str = "undo_gives_a_semaphore_back_when_its_holder_exits";
    if let Some(role) = child_role() {
        return play(&role);
    }
    let set = private_set(1);
    set.set(0, 1).unwrap();
    assert!(spawn_child(TEST, "take-undo", &set).wait().success());
    assert_eq!(set.get(0).unwrap(), 1);
}

#[test]
fn without_undo_a_holder_that_exits_keeps_the_semaphore_taken() {
    const TEST: &str = "without_undo_a_holder_that_exits_keeps_the_semaphore_taken";
    if let Some(role) = child_role() {
        return play(&role);
    }
    let set = private_set(1);
    set.set(0, 1).unwrap();
    assert!(spawn_child(TEST, "take", &set).wait().success());
    assert_eq!(set.get(0).unwrap(), 0);
    assert!(!set.try_wait(0).unwrap(), "everyone else would now block");
}

#[test]
fn undo_gives_a_semaphore_back_when_its_holder_is_killed() {
    const TEST: &str = "undo_gives_a_semaphore_back_when_its_holder_is_killed";
    if let Some(role) = child_role() {
        return play(&role);
    }
    let set = private_set(2);
    set.set(0, 1).unwrap();
    let holder = spawn_child(TEST, "take-undo-then-block", &set);
    wait_until("the child to hold semaphore 0 and block", || {
        set.ncnt(1).unwrap() == 1
    });
    assert_eq!(set.get(0).unwrap(), 0);
    assert!(!holder.kill().success());
    assert_eq!(set.get(0).unwrap(), 1);
}

#[test]
fn wait_interrupted_by_a_signal_is_retried() {
    const TEST: &str = "wait_interrupted_by_a_signal_is_retried";
    if let Some(role) = child_role() {
        return play(&role);
    }
    let set = private_set(2);
    assert!(spawn_child(TEST, "interrupted-wait", &set).wait().success());
    assert_eq!(set.get_all().unwrap(), vec![0, 1]);
}

#[test]
fn timed_wait_interrupted_by_a_signal_is_retried() {
    const TEST: &str = "timed_wait_interrupted_by_a_signal_is_retried";
    if let Some(role) = child_role() {
        return play(&role);
    }
    let set = private_set(2);
    assert!(spawn_child(TEST, "interrupted-wait-timeout", &set)
        .wait()
        .success());
    assert_eq!(set.get_all().unwrap(), vec![0, 1]);
}

#[test]
fn remove_wakes_a_blocked_waiter_with_eidrm() {
    const TEST: &str = "remove_wakes_a_blocked_waiter_with_eidrm";
    if let Some(role) = child_role() {
        return play(&role);
    }
    let set = private_set(1);
    let id = set.id();
    let waiter = spawn_child(TEST, "expect-eidrm", &set);
    wait_until("the child to block in semop", || set.ncnt(0).unwrap() == 1);
    set.remove().unwrap();
    assert!(waiter.wait().success());
    assert!(SemSet::from_id(id).stat().is_err());
}

#[test]
fn stat_reports_mode_times_and_owner_changes() {
    let set = SemSet::options()
        .nsems(2)
        .mode(0o640)
        .exclusive(true)
        .open(Key::PRIVATE)
        .unwrap()
        .into_owned();
    let st = set.stat().unwrap();
    assert_eq!(st.nsems, 2);
    assert_eq!(st.perm.permissions(), 0o640);
    assert!(st.perm.key.is_private());
    assert_eq!(st.otime, None, "no semop yet");
    assert!(st.ctime.is_some());
    set.post(1).unwrap();
    assert!(set.stat().unwrap().otime.is_some());
    set.set_mode(0o604).unwrap();
    assert_eq!(set.stat().unwrap().perm.permissions(), 0o604);
    assert!(set.set_mode(0o4777).is_err());
    // The creator keeps control after giving the set away, so removal still works.
    set.set_owner(54321, 54322).unwrap();
    let st = set.stat().unwrap();
    assert_eq!((st.perm.uid, st.perm.gid), (54321, 54322));
    assert_ne!(st.perm.cuid, 54321);
}

#[test]
fn owned_set_is_removed_on_drop_unless_released() {
    let id = {
        let set = private_set(1);
        set.id()
    };
    assert!(
        SemSet::from_id(id).stat().is_err(),
        "dropped set still exists"
    );
    let kept = private_set(1).into_inner();
    let _cleanup = Defer(|| {
        let _ = kept.remove();
    });
    assert_eq!(kept.stat().unwrap().nsems, 1);
}

const C_CREATES_SET: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <sys/ipc.h>
#include <sys/sem.h>

union semun { int val; struct semid_ds *buf; unsigned short *array; };

int main(int argc, char **argv) {
    if (argc != 2) return 10;
    key_t key = (key_t)strtol(argv[1], NULL, 0);
    int id = semget(key, 3, IPC_CREAT | IPC_EXCL | 0600);
    if (id < 0) { perror("semget"); return 11; }
    unsigned short values[3] = {4, 0, 9};
    union semun arg;
    arg.array = values;
    if (semctl(id, 0, SETALL, arg) < 0) { perror("SETALL"); return 12; }
    arg.val = 7;
    if (semctl(id, 1, SETVAL, arg) < 0) { perror("SETVAL"); return 13; }
    struct sembuf take = {2, -1, 0};
    if (semop(id, &take, 1) < 0) { perror("semop"); return 14; }
    printf("%d\n", id);
    return 0;
}
"#;

#[test]
fn ipckit_reads_a_set_a_c_program_created_and_set() {
    let key = Key::new(unique_key());
    let exe = CProgram::compile("sem_creator", C_CREATES_SET);
    let _cleanup = Defer(|| {
        if let Ok(set) = SemSet::open(key) {
            let _ = set.remove();
        }
    });
    let mut cmd = Command::new(&exe);
    cmd.arg(key.value().to_string());
    let (pid, stdout) = run_for_stdout(cmd);
    let printed: i32 = stdout.trim().parse().unwrap();

    let set = SemSet::open(key).unwrap();
    assert_eq!(set.id(), printed);
    assert_eq!(set.get_all().unwrap(), vec![4, 7, 8]);
    assert_eq!(set.last_pid(2).unwrap(), pid);
    let st = set.stat().unwrap();
    assert_eq!(
        (st.nsems, st.perm.permissions(), st.perm.key),
        (3, 0o600, key)
    );
    set.remove().unwrap();
}

const C_BLOCKS_IN_SEMOP: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <sys/ipc.h>
#include <sys/sem.h>

int main(int argc, char **argv) {
    if (argc != 2) return 10;
    int id = atoi(argv[1]);
    /* Both at once: one from semaphore 0 (0 until ipckit posts) and two from semaphore 1. */
    struct sembuf ops[2] = {{0, -1, 0}, {1, -2, 0}};
    if (semop(id, ops, 2) < 0) { perror("semop"); return 11; }
    if (semctl(id, 0, GETVAL) != 0) return 12;
    if (semctl(id, 1, GETVAL) != 0) return 13;
    if (semctl(id, 2, GETVAL) != 5) return 14; /* set by ipckit before the post */
    return 0;
}
"#;

#[test]
fn c_program_blocked_in_semop_is_released_by_an_ipckit_post() {
    let exe = CProgram::compile("sem_waiter", C_BLOCKS_IN_SEMOP);
    let set = private_set(3);
    set.set(1, 2).unwrap();
    let mut cmd = Command::new(&exe);
    cmd.arg(set.id().to_string());
    let waiter = start(cmd);
    wait_until("the C program to block in semop", || {
        set.ncnt(0).unwrap() == 1
    });
    assert_eq!(set.get(1).unwrap(), 2, "a blocked op list applies nothing");
    set.set(2, 5).unwrap();
    set.post(0).unwrap();
    let status = waiter.wait();
    assert!(status.success(), "C program's verdict: {status}");
    assert_eq!(set.get_all().unwrap(), vec![0, 0, 5]);
}

/// Runs an example binary with `args`; returns its stdout, failing the test on a non-zero exit.
fn run_example(name: &str, args: &[&str]) -> String {
    let out = Command::new(example_bin(name))
        .args(args)
        .output()
        .expect("run example");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} {args:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn handshake_example_reads_every_written_value_exactly_once() {
    let out = run_example("sysv_handshake", &["--writers", "3", "--values", "200"]);
    assert!(
        out.contains("600 values from 3 writers read exactly once"),
        "{out}"
    );
}

#[test]
fn letters_example_with_the_semaphore_sees_no_foreign_letter() {
    let out = run_example("sysv_letters", &["--rounds", "2000"]);
    assert!(
        out.contains("2 processes x 2000 rounds: 0 rounds saw a foreign letter"),
        "{out}"
    );
}

#[test]
fn letters_example_unprotected_reports_races_without_failing() {
    let out = run_example("sysv_letters", &["--rounds", "500", "--unprotected"]);
    assert!(
        out.contains("2 processes x 500 rounds") && out.contains("unprotected"),
        "{out}"
    );
}
