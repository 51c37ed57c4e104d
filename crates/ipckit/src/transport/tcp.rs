//! `tcp`: a TCP connection over the loopback interface with `TCP_NODELAY` (no Nagle delay for
//! small messages), framed like a pipe. The host listens on an ephemeral port of 127.0.0.1 and
//! passes `127.0.0.1:PORT`; for a meeting by NAME the receiver writes its port to a file in the
//! runtime directory (`ipckit-NAME.tcp`), removed when it is dropped.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use super::TransportKind;
use super::{as_named, stream_socket_end, wait_readable_or_cancel, End, HostImpl, Options};
use super::{Rendezvous, Role};
use crate::error::{Error, Object, Result};

struct Host {
    role: Role,
    listener: TcpListener,
    addr: SocketAddr,
    port_file: Option<PortFile>,
    max: usize,
    timeout: Duration,
    cancel: Option<super::AbortHandle>,
}

/// The file that names a named receiver's port; removed on drop.
struct PortFile(PathBuf);

impl Drop for PortFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn object(addr: impl std::fmt::Display) -> Object {
    Object::Other(format!("tcp {addr}").into())
}

pub(super) fn host(role: Role, at: &Rendezvous, options: &Options) -> Result<Box<dyn HostImpl>> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::os("bind", object("127.0.0.1:0"), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::os("getsockname", object("127.0.0.1:0"), e))?;
    let port_file = if at.named {
        let path = at.path(".tcp");
        let tmp = path.with_extension("tcp.tmp");
        std::fs::write(&tmp, addr.port().to_string())
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| Error::os("write", Object::Path(path.as_path().into()), e))?;
        Some(PortFile(path))
    } else {
        None
    };
    Ok(Box::new(Host {
        role,
        listener,
        addr,
        port_file,
        max: options.get_max_message(),
        timeout: options.get_timeout(),
        cancel: options.get_cancel(),
    }))
}

impl HostImpl for Host {
    fn rendezvous(&self) -> String {
        self.addr.to_string()
    }

    fn establish(self: Box<Self>, timeout: Option<Duration>) -> Result<End> {
        if !wait_readable_or_cancel(self.listener.as_fd(), timeout, self.cancel.as_ref(), || {
            object(self.addr)
        })? {
            return Err(Error::Timeout {
                op: "accept",
                object: object(self.addr),
                timeout: timeout.unwrap_or_default(),
            });
        }
        let (conn, _) = self
            .listener
            .accept()
            .map_err(|e| Error::os("accept", object(self.addr), e))?;
        drop(self.port_file);
        end(self.role, conn, self.max, self.addr, self.timeout)
    }
}

fn end(
    role: Role,
    conn: TcpStream,
    max: usize,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<End> {
    conn.set_nodelay(true)
        .map_err(|e| Error::os("setsockopt(TCP_NODELAY)", object(addr), e))?;
    stream_socket_end(role, OwnedFd::from(conn), max, object(addr), timeout)
}

/// The loopback address whose port a named receiver wrote in its port file (`NAME.tcp`).
pub(super) fn port_file_addr(at: &Rendezvous) -> Result<SocketAddr> {
    let path = at.path(".tcp");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::os("read", Object::Path(path.as_path().into()), e))?;
    let port: u16 = text.trim().parse().map_err(|_| {
        Error::invalid(
            "connect",
            Object::Path(path.as_path().into()),
            "not a port number",
        )
    })?;
    Ok(SocketAddr::from(([127, 0, 0, 1], port)))
}

pub(super) fn connect(role: Role, rendezvous: &str, options: &Options) -> Result<End> {
    let addr: SocketAddr = match as_named(TransportKind::Tcp, rendezvous) {
        Some(at) => port_file_addr(&at)?,
        None => rendezvous
            .parse()
            .map_err(|_| super::bad_rendezvous(TransportKind::Tcp, rendezvous, "127.0.0.1:PORT"))?,
    };
    let conn = TcpStream::connect_timeout(&addr, options.get_timeout())
        .map_err(|e| Error::os("connect", object(addr), e))?;
    end(
        role,
        conn,
        options.get_max_message(),
        addr,
        options.get_timeout(),
    )
}
