//! `unix-seqpacket`: a Unix-domain `SOCK_SEQPACKET` connection — reliable, ordered, and each
//! message one packet — with a tag byte for the end of stream (see `packet`). The host listens
//! at a path in the runtime directory, the peer connects. A packet is bounded by the sender's
//! socket buffer, as a datagram is.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use super::packet::{PacketReceiver, PacketSender};
use super::unix_dgram::{grow_send_buffer, max_message};
use super::Role;
use super::TransportKind;
use super::{as_named, wait_readable_or_cancel, AbortHandle, End, HostImpl, Options, Rendezvous};
use crate::error::{Error, Object, Result};
use crate::unix::{Addr, SeqpacketConn, SeqpacketListener};

struct Host {
    role: Role,
    listener: SeqpacketListener,
    max: usize,
    timeout: Duration,
    cancel: Option<AbortHandle>,
}

pub(super) fn host(role: Role, at: &Rendezvous, options: &Options) -> Result<Box<dyn HostImpl>> {
    let addr = Addr::path(at.path(".seqpacket"));
    let listener = if at.named {
        SeqpacketListener::bind_replacing(&addr)?
    } else {
        SeqpacketListener::bind(&addr)?
    };
    Ok(Box::new(Host {
        role,
        listener,
        max: options.get_max_message(),
        timeout: options.get_timeout(),
        cancel: options.get_cancel(),
    }))
}

impl HostImpl for Host {
    fn rendezvous(&self) -> String {
        self.listener.addr().to_string()
    }

    fn establish(self: Box<Self>, timeout: Option<Duration>) -> Result<End> {
        let at = self.listener.addr().to_string();
        let object = || Object::Other(format!("unix-seqpacket listener {at}").into());
        if !wait_readable_or_cancel(self.listener.as_fd(), timeout, self.cancel.as_ref(), object)? {
            return Err(Error::Timeout {
                op: "accept",
                object: object(),
                timeout: timeout.unwrap_or_default(),
            });
        }
        let conn = self.listener.accept()?;
        end(self.role, conn, self.max, &at, self.timeout)
    }
}

fn end(role: Role, conn: SeqpacketConn, max: usize, at: &str, timeout: Duration) -> Result<End> {
    let object = Object::Other(format!("unix-seqpacket socket {at}").into());
    let fd = OwnedFd::from(conn);
    Ok(match role {
        Role::Send => {
            grow_send_buffer(fd.as_fd(), &object)?;
            End::Send(Box::new(PacketSender {
                fd,
                max: max_message().bytes,
                object,
                abort: AbortHandle::new(None),
                announce: false,
                confirm: Some(timeout),
            }))
        }
        Role::Recv => End::Recv(Box::new(PacketReceiver::new(
            fd,
            max,
            object,
            true,
            None,
            Duration::MAX,
        )?)),
    })
}

pub(super) fn connect(role: Role, rendezvous: &str, options: &Options) -> Result<End> {
    let path = match as_named(TransportKind::UnixSeqpacket, rendezvous) {
        Some(at) => at.path(".seqpacket"),
        None => rendezvous.into(),
    };
    let conn = SeqpacketConn::connect(&Addr::path(&path))?;
    end(
        role,
        conn,
        options.get_max_message(),
        &path.display().to_string(),
        options.get_timeout(),
    )
}
