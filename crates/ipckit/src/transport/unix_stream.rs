//! `unix-stream`: a Unix-domain stream socket at a path in the runtime directory, framed like a
//! pipe. The host listens (the listener's file is removed once the peer is accepted, or when the
//! end is dropped), the peer connects.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use super::TransportKind;
use super::{as_named, stream_socket_end, wait_readable_or_cancel, End, HostImpl, Options};
use super::{Rendezvous, Role};
use crate::error::{Error, Object, Result};
use crate::unix::{connect_stream, Addr, StreamListener};

struct Host {
    role: Role,
    listener: StreamListener,
    max: usize,
    capacity: Option<usize>,
    timeout: Duration,
    cancel: Option<super::AbortHandle>,
}

pub(super) fn host(role: Role, at: &Rendezvous, options: &Options) -> Result<Box<dyn HostImpl>> {
    let addr = Addr::path(at.path(".sock"));
    let listener = if at.named {
        StreamListener::bind_replacing(&addr)?
    } else {
        StreamListener::bind(&addr)?
    };
    Ok(Box::new(Host {
        role,
        listener,
        max: options.get_max_message(),
        capacity: options.get_capacity(),
        timeout: options.get_timeout(),
        cancel: options.get_cancel(),
    }))
}

impl HostImpl for Host {
    fn rendezvous(&self) -> String {
        self.listener.addr().to_string()
    }

    fn establish(self: Box<Self>, timeout: Option<Duration>) -> Result<End> {
        let object =
            || Object::Other(format!("unix-stream listener {}", self.listener.addr()).into());
        if !wait_readable_or_cancel(self.listener.as_fd(), timeout, self.cancel.as_ref(), object)? {
            return Err(Error::Timeout {
                op: "accept",
                object: object(),
                timeout: timeout.unwrap_or_default(),
            });
        }
        let conn = self.listener.accept()?;
        end(
            self.role,
            conn.into(),
            self.max,
            self.capacity,
            self.listener.addr().to_string(),
            self.timeout,
        )
    }
}

fn end(
    role: Role,
    fd: OwnedFd,
    max: usize,
    capacity: Option<usize>,
    at: String,
    timeout: Duration,
) -> Result<End> {
    let object = Object::Other(format!("unix-stream socket {at}").into());
    if let Some(n) = capacity {
        rustix::net::sockopt::set_socket_send_buffer_size(&fd, n)
            .map_err(|e| Error::os("setsockopt(SO_SNDBUF)", object.clone(), e))?;
    }
    stream_socket_end(role, fd, max, object, timeout)
}

pub(super) fn connect(role: Role, rendezvous: &str, options: &Options) -> Result<End> {
    let path = match as_named(TransportKind::UnixStream, rendezvous) {
        Some(at) => at.path(".sock"),
        None => rendezvous.into(),
    };
    let conn = connect_stream(&Addr::path(&path))?;
    end(
        role,
        conn.into(),
        options.get_max_message(),
        options.get_capacity(),
        path.display().to_string(),
        options.get_timeout(),
    )
}
