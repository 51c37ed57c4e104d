//! POSIX IPC: shared memory, named and unnamed semaphores, message queues.
//!
//! POSIX objects are named by a path-like string (`/name`, one leading slash and no other) and live in
//! `/dev/shm` and `/dev/mqueue` until unlinked. Every name is validated before any system call, so a
//! name cannot escape those directories.
//!
//! # References
//! [shm_overview(7)](https://man7.org/linux/man-pages/man7/shm_overview.7.html),
//! [sem_overview(7)](https://man7.org/linux/man-pages/man7/sem_overview.7.html),
//! [mq_overview(7)](https://man7.org/linux/man-pages/man7/mq_overview.7.html)

pub mod mq;
pub mod sem;
pub mod shm;
