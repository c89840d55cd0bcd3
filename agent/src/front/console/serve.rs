//! The console's connections, and every bound on what a client on the LAN
//! can make the agent spend before it has logged in.
//!
//! - At most [`Limits::max_connections`] connections at once, well below
//!   the descriptors the agent may open (the rest are the outbox's and the
//!   hub link's): past it, new connections wait in the kernel's backlog,
//!   holding none of ours.
//! - At most [`Limits::per_address`] of them from one client address;
//!   more are closed at once.
//! - A TLS handshake must finish within [`TLS_HANDSHAKE_TIMEOUT`], and a
//!   request's headers (the first, and each next one on a kept-alive
//!   connection) within [`HEADER_TIMEOUT`]: a client that connects and
//!   says nothing, or trickles, is cut off.
//! - Headers are at most [`MAX_HEADER_BYTES`].
//!
//! Bodies are bounded per route in [`super`], after the session is
//! checked (before anything of a body is read).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tower_service::Service;
use tracing::{debug, warn};

/// How long a browser may take to finish a TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers, and how long
/// an idle kept-alive connection stays open.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest request head (request line and headers).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The client's address, for handlers that limit per client (logins).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// How many connections the console holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub per_address: usize,
}

impl Limits {
    /// Limits for a process that may open `descriptors` files: a quarter
    /// of them for the console, at most 512 (a unit's clerks need a few
    /// dozen), so the outbox, the spool and the hub link always have the
    /// rest.
    pub fn for_descriptors(descriptors: u64) -> Limits {
        let max = usize::try_from(descriptors / 4)
            .unwrap_or(usize::MAX)
            .clamp(16, 512);
        Limits {
            max_connections: max,
            per_address: (max / 4).max(8),
        }
    }

    /// Limits for this process, from its `RLIMIT_NOFILE` (systemd's
    /// `LimitNOFILE`).
    pub fn for_this_process() -> Limits {
        Limits::for_descriptors(open_files_limit().unwrap_or(1024))
    }
}

/// The soft limit on open files of this process, from /proc.
pub fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    match soft {
        "unlimited" => Some(u64::MAX),
        n => n.parse().ok(),
    }
}

/// Connections open per client address.
#[derive(Debug, Default)]
struct PerAddress {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection counted against its address until dropped.
struct AddressSlot {
    table: Arc<PerAddress>,
    ip: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl PerAddress {
    fn enter(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<AddressSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            table: self.clone(),
            ip,
        })
    }
}

/// Serve `app` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let per_address = Arc::new(PerAddress::default());
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    let mut refused_logged = false;
    loop {
        while connections.try_join_next().is_some() {}
        // A slot first: at the limit, new clients wait in the backlog.
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => return,
            },
            () = &mut shutdown => return,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => return,
        };
        let (stream, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors (EMFILE) or a connection reset
                // before it was taken: wait a moment rather than spin.
                debug!("console accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(counted) = per_address.enter(addr.ip(), limits.per_address) else {
            if !refused_logged {
                warn!(
                    "security: the console refused connections from {} beyond {} at once",
                    addr.ip(),
                    limits.per_address
                );
                refused_logged = true;
            }
            drop(stream);
            continue;
        };
        let (tls, app) = (tls.clone(), app.clone());
        connections.spawn(async move {
            let _slot = slot;
            let _counted = counted;
            serve_connection(stream, addr, tls, app).await;
        });
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    addr: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
) {
    let _ = stream.set_nodelay(true);
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ClientAddr(addr));
            app.clone().call(req)
        });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES.max(8192))
        .max_headers(64);
    let served = match tls {
        Some(acceptor) => {
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => http
                    .serve_connection(TokioIo::new(tls), service)
                    .without_shutdown()
                    .await
                    .map(|parts| parts.io.into_inner().into_inner().0),
                Ok(Err(e)) => {
                    debug!(%addr, "console TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    debug!(%addr, "console TLS handshake timed out");
                    return;
                }
            }
        }
        None => http
            .serve_connection(TokioIo::new(stream), service)
            .without_shutdown()
            .await
            .map(|parts| parts.io.into_inner()),
    };
    match served {
        Ok(stream) => linger(stream).await,
        Err(e) => debug!(%addr, "console connection: {e}"),
    }
}

/// Most a closing connection's unread request is read and thrown away.
const LINGER_BYTES: usize = 1 << 20;
/// Longest that takes.
const LINGER_TIME: Duration = Duration::from_secs(2);

/// Close a connection whose request may not have been read to its end (a
/// refusal answered before a byte of a huge body was read): say we are
/// done writing, then read and drop what the client still sends, a little
/// and briefly, before closing. Closed at once with unread bytes, the
/// socket would be reset, and a reset can reach the client before the
/// refusal it was sent after.
async fn linger(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut buf = vec![0u8; 16 * 1024];
    let mut drained = 0;
    let _ = tokio::time::timeout(LINGER_TIME, async {
        while drained < LINGER_BYTES {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_takes_a_quarter_of_the_descriptors_within_bounds() {
        assert_eq!(
            Limits::for_descriptors(1024),
            Limits {
                max_connections: 256,
                per_address: 64
            }
        );
        assert_eq!(Limits::for_descriptors(65_536).max_connections, 512);
        assert_eq!(Limits::for_descriptors(20).max_connections, 16);
    }

    #[test]
    fn this_process_has_a_descriptor_limit() {
        assert!(open_files_limit().is_some_and(|n| n > 0));
    }

    #[test]
    fn connections_per_address_are_counted_until_they_close() {
        let table = Arc::new(PerAddress::default());
        let ip: IpAddr = [10, 0, 0, 1].into();
        let a = table.enter(ip, 2);
        let b = table.enter(ip, 2);
        assert!(a.is_some() && b.is_some());
        assert!(table.enter(ip, 2).is_none());
        assert!(table.enter([10, 0, 0, 2].into(), 2).is_some());
        drop(a);
        assert!(table.enter(ip, 2).is_some());
    }
}
