//! Unix domain sockets: connections and datagrams between processes on one machine, addressed by
//! a path or a Linux abstract name.
//!
//! The trap removed: a server that died leaves its socket file behind and the next `bind` fails.
//! Here a bound socket unlinks its file on drop, and [`StreamListener::bind_replacing`] replaces a
//! stale one but never a regular file.
//!
//! - Stream: std's [`UnixStream`] is the connection; [`StreamListener`] and [`connect_stream`]
//!   add abstract addresses, file handling and ipckit errors.
//! - Datagram: std's [`UnixDatagram`], bound with [`DatagramSocket`].
//! - Seqpacket, which std lacks: [`SeqpacketListener`] and [`SeqpacketConn`], a connection that
//!   keeps message boundaries.
//!
//! # References
//! [unix(7)](https://man7.org/linux/man-pages/man7/unix.7.html),
//! [socket(2)](https://man7.org/linux/man-pages/man2/socket.2.html),
//! [bind(2)](https://man7.org/linux/man-pages/man2/bind.2.html)

mod addr;
mod datagram;
mod file;
mod seqpacket;
mod stream;

pub use addr::{Addr, MAX_ADDR_LEN};
pub use datagram::DatagramSocket;
pub use seqpacket::{SeqpacketConn, SeqpacketListener};
pub use std::os::unix::net::{UnixDatagram, UnixStream};
pub use stream::{connect_stream, StreamListener};
