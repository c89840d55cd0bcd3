//! The hub's socket, accept loop and the admission of each connection.

use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use gongwen_common::clock::Clock;
use gongwen_common::config::HubConfig;
use gongwen_common::logsafe::Clipped;
use gongwen_common::material::{self, OwnTls};
use gongwen_common::pki::{CertChecker, CertIdentity, Role};
use gongwen_common::stream::{read_message_within, write_message};
use gongwen_common::tls::{admitted_limits, hub_server_config};
use gongwen_common::wire::{
    MAX_HELLO_LEN, MIN_PROTOCOL_VERSION, Message, PROTOCOL_VERSION, RefuseCode,
};
use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;
use tokio::net::UnixListener;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::error::HubError;
use crate::link::session;
use crate::ops::control;
use crate::rules::admission::{
    self, Counts, Gate, Held, Limits, Pending, Pressure, RefuseWhy, judge,
};
use crate::state::core::{Core, CoreParts};
use crate::state::loglimit::Warnings;
use crate::state::registry::{Admission, close};
use crate::state::trust::TrustState;
use crate::tasks::revocation::{self, TlsMaterial, Watched};
use crate::tasks::scheduler;

/// UDP receive buffer asked for; with many agents sending at once the
/// default buffer drops datagrams (measured here: 2.5x aggregate
/// throughput with 194 senders at 4 MiB).
pub const UDP_RECV_BUFFER: usize = 4 << 20;

/// A hub that has bound its sockets and is ready to run.
pub struct Hub {
    core: Arc<Core>,
    endpoint: quinn::Endpoint,
    tls: TlsMaterial,
    control: UnixListener,
    local_addr: SocketAddr,
    /// `[metrics] listen`, bound.
    metrics: Option<tokio::net::TcpListener>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("id", self.core.id())
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

/// A UDP socket bound to `addr` with the receive buffer raised (the hub's, and
/// the raw-QUIC benchmark baseline's, so both have the same socket settings).
pub fn udp_socket(addr: SocketAddr) -> Result<UdpSocket, HubError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let listen_err = |source| HubError::Listen { addr, source };
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(listen_err)?;
    if let Err(e) = socket.set_recv_buffer_size(UDP_RECV_BUFFER) {
        warn!("cannot raise the UDP receive buffer: {e}");
    }
    if let Ok(got) = socket.recv_buffer_size()
        && got < UDP_RECV_BUFFER
    {
        // Linux caps it at net.core.rmem_max and reports double the
        // granted size; say so rather than silently run slower.
        debug!(
            "UDP receive buffer is {got} bytes (asked {UDP_RECV_BUFFER}); raise net.core.rmem_max for more"
        );
    }
    socket.bind(&addr.into()).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            HubError::AddressInUse { addr }
        } else {
            HubError::Listen { addr, source: e }
        }
    })?;
    Ok(socket.into())
}

impl Hub {
    /// Load the certificates, bind the QUIC socket and the control socket.
    /// Every problem an operator can fix is reported here, before running.
    pub async fn bind(config: HubConfig) -> Result<Hub, HubError> {
        Self::bind_with_clock(config, gongwen_common::clock::system()).await
    }

    /// [`Hub::bind`] with another clock (tests run weeks of deadlines in
    /// milliseconds with a manual one).
    pub async fn bind_with_clock(
        config: HubConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Hub, HubError> {
        let OwnTls {
            chain,
            key,
            ca,
            identity: me,
            signer,
        } = material::load_own_tls(
            &config.path,
            &config.tls.cert,
            &config.tls.key,
            &config.tls.ca,
        )?;
        let suite_problem = |problem: String| HubError::Suite {
            path: config.path.clone(),
            problem,
        };
        let ca_suite = gongwen_common::suite::Suite::of_ca(ca.as_ref())
            .map_err(|e| suite_problem(format!("tls.ca: {e}")))?;
        gongwen_common::suite::check_hub_suite(config.suite, ca_suite).map_err(suite_problem)?;
        // In a GM deployment the hub's notices are SM2-signed too.
        let signer = match ca_suite {
            gongwen_common::suite::Suite::Gm => {
                material::load_sm2(&config.path, &config.tls.sm2, signer)?.0
            }
            gongwen_common::suite::Suite::Standard => signer,
        };
        let crl = material::load_crl(&config.path, &config.tls.crl, &ca)?;
        let directory = match &config.tls.directory {
            Some(path) => {
                let dir = crate::state::enrolled::load(path, &ca).map_err(HubError::Directory)?;
                let used = crate::state::enrolled::issued_mark(&config.data_dir);
                crate::state::enrolled::may_replace(used, dir.issued_ms).map_err(|e| {
                    HubError::Directory(format!(
                        "{}: {e}. To go back to it deliberately, remove {}",
                        path.display(),
                        config
                            .data_dir
                            .join(crate::state::enrolled::ISSUED_MARK)
                            .display()
                    ))
                })?;
                dir
            }
            None => Default::default(),
        };
        let enrolled = crate::state::enrolled::Enrollment::new(directory, &config.groups);
        material::check_data_dir(&config.path, "data_dir", &config.data_dir)?;
        if me.role != Role::Hub {
            return Err(HubError::NotAHubCertificate {
                path: config.tls.cert.clone(),
                id: me.id.to_string(),
                role: me.role.to_string(),
            });
        }
        let now = clock.now();
        if crl.is_stale(now) {
            error!(
                "the revocation list {} went stale at {}: every node will be refused until it is renewed (gongwen-certs crl)",
                config.tls.crl.display(),
                crl.next_update
                    .map(gongwen_common::timefmt::rfc3339)
                    .unwrap_or_default()
            );
        }
        let federation = match &config.federation {
            Some(f) => Some(
                crate::state::federation::Federation::load(f, &ca, ca_suite, &config.data_dir)
                    .map_err(HubError::Federation)?,
            ),
            None => None,
        };
        let peer_cas = federation
            .as_ref()
            .map(|f| f.peer_cas())
            .unwrap_or_default();
        let server_config = hub_server_config(
            chain.clone(),
            key.clone_key(),
            &ca,
            &crl,
            clock.clone(),
            &peer_cas,
        )?;

        gongwen_common::fsutil::create_private_dir(&config.data_dir).map_err(|source| {
            HubError::DataDir {
                path: config.data_dir.clone(),
                source,
            }
        })?;
        let control = control::bind(&config.data_dir).await?;
        crate::state::enrolled::set_issued_mark(&config.data_dir, enrolled.directory.issued_ms)
            .map_err(|source| HubError::DataDir {
                path: config.data_dir.clone(),
                source,
            })?;
        let data_err = |path: &std::path::Path| {
            let path = path.to_owned();
            move |source| HubError::DataDir { path, source }
        };
        let store = crate::store::open(&config).await?;
        let checker = CertChecker::new(&ca, Some(&crl))?;

        let socket = udp_socket(config.listen)?;
        let endpoint = quinn::Endpoint::new(
            endpoint_config(&config.data_dir).map_err(data_err(&config.data_dir))?,
            Some(server_config),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(|source| HubError::Listen {
            addr: config.listen,
            source,
        })?;
        let local_addr = endpoint.local_addr().map_err(|source| HubError::Listen {
            addr: config.listen,
            source,
        })?;
        let metrics =
            match config.metrics {
                Some(m) => Some(tokio::net::TcpListener::bind(m.listen).await.map_err(
                    |source| HubError::MetricsListen {
                        addr: m.listen,
                        source,
                    },
                )?),
                None => None,
            };
        let label = format!("{}:{}", host_name(), local_addr.port());
        store.announce(&label, config.store.lease).await?;
        let core = Arc::new(Core::new(CoreParts {
            id: me.id,
            label,
            config,
            signer,
            store,
            clock,
            trust: TrustState { crl, checker },
            enrolled,
            federation,
        }));
        Ok(Hub {
            core,
            endpoint,
            tls: TlsMaterial { chain, key, ca },
            control,
            local_addr,
            metrics,
        })
    }

    /// Where `/metrics` and `/healthz` are served (useful with port 0).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The address the QUIC socket is bound to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that outlives [`Hub::run`]'s borrow, for tests and tools.
    pub fn handle(&self) -> HubHandle {
        HubHandle {
            core: self.core.clone(),
        }
    }

    /// Serve until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), HubError> {
        let Hub {
            core,
            endpoint,
            tls,
            control,
            local_addr,
            metrics,
        } = self;
        info!(
            hub = %core.id(),
            store = core.store().backend(),
            "listening on {local_addr} (QUIC, ALPN gongwen/1); control socket {}",
            control::socket_path(&core.config().data_dir).display()
        );
        let metrics = metrics.map(|listener| {
            if let Ok(addr) = listener.local_addr() {
                info!("metrics on http://{addr}/metrics, health on http://{addr}/healthz");
            }
            tokio::spawn(crate::ops::observe::serve(listener, core.clone()))
        });
        core.set_serving(true);
        gongwen_common::daemon::notify_ready();
        let own_expiry = gongwen_common::pki::CertIdentity::from_der(&tls.chain[0])
            .ok()
            .map(|id| (format!("this hub ({})", id.id), id.not_after));
        let expiry = tokio::spawn(watch_expiry(core.clone(), own_expiry));
        let dialers = match core.federation() {
            Some(f) => {
                let material = Arc::new(crate::link::peer::DialMaterial {
                    chain: tls.chain.clone(),
                    key: tls.key.clone_key(),
                });
                info!(
                    "federation: this hub is domain {}; peers: {}",
                    f.domain(),
                    f.all()
                        .iter()
                        .map(|p| p.config.domain.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let dials = f.all().iter().any(|p| !p.config.addr.is_empty());
                if dials && !gongwen_common::federation::can_dial(&tls.chain[0]) {
                    error!(
                        "federation: this hub's certificate lacks the client-auth purpose, so peers refuse its links; issue it again (gongwen-certs issue --role hub --id {} --renew) and restart",
                        core.id()
                    );
                }
                f.all()
                    .iter()
                    .filter(|p| !p.config.addr.is_empty())
                    .map(|p| {
                        tokio::spawn(crate::link::peer::dial_forever(
                            core.clone(),
                            endpoint.clone(),
                            material.clone(),
                            p.config.domain.clone(),
                        ))
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        let watched = Watched {
            core: core.clone(),
            endpoint: endpoint.clone(),
            tls,
        };
        let directory = core.config().tls.directory.clone().map(|path| {
            tokio::spawn(crate::tasks::directory_watch::watch(
                core.clone(),
                path,
                watched.tls.ca.to_vec(),
                revocation::POLL_INTERVAL,
            ))
        });
        let watcher = tokio::spawn(revocation::watch(watched, revocation::POLL_INTERVAL));
        let renewals = tokio::spawn(crate::link::renewal_push::watch(
            core.clone(),
            Duration::from_secs(1),
        ));
        let scheduler = tokio::spawn(scheduler::run(core.clone()));
        let control_task = tokio::spawn(control::serve(control, core.clone()));
        let events = core.store().take_events().map(|events| {
            let core = core.clone();
            tokio::spawn(async move { follow_other_hubs(events, &core).await })
        });
        // Only a shared store has other hubs to give claims back to.
        let sweeper = events
            .is_some()
            .then(|| tokio::spawn(give_back_stray_claims(core.clone())));
        let door = Arc::new(Door::new(core.config()));
        info!(
            "admitting at most {} connections at once{}",
            door.max_connections(&core),
            if core.config().max_connections.is_some() {
                " (limits.max_connections)"
            } else {
                " (from the enrolled units; limits.max_connections sets it)"
            }
        );
        let mut pressure = Pressure::default();
        let mut connections = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                incoming = endpoint.accept() => {
                    let Some(incoming) = incoming else { break };
                    match door.gate(&incoming, door.max_connections(&core)) {
                        Ok(handshake) => {
                            let (core, door) = (core.clone(), door.clone());
                            connections.spawn(admit(incoming, handshake, core, door));
                        }
                        Err(gate) => {
                            door.turn_away(incoming, gate);
                            core.metrics().turned_away(gate);
                            if let Some(r) = pressure.note(gate, std::time::Instant::now()) {
                                report_pressure(&door, &core, r);
                            }
                        }
                    }
                }
                // Reap finished connection tasks so the set stays small.
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        info!("shutting down");
        core.set_serving(false);
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        expiry.abort();
        if let Some(directory) = directory {
            directory.abort();
        }
        if let Some(events) = events {
            events.abort();
        }
        if let Some(sweeper) = sweeper {
            sweeper.abort();
        }
        for d in &dialers {
            d.abort();
        }
        watcher.abort();
        renewals.abort();
        control_task.abort();
        scheduler.abort();
        let _ = scheduler.await;
        endpoint.close(
            quinn::VarInt::from(RefuseCode::ShuttingDown as u16 as u32),
            b"the hub is shutting down",
        );
        // Closing the endpoint ends every connection, so each task returns;
        // wait for them (and the aborted tasks) so that nothing of this hub
        // outlives run().
        let _ = watcher.await;
        let _ = control_task.await;
        let drain = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(5), drain)
            .await
            .is_err()
        {
            connections.abort_all();
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
        core.close().await;
        let _ = std::fs::remove_file(control::socket_path(&core.config().data_dir));
        Ok(())
    }
}

/// The least time between two stateless resets: 10,000 a second.
pub const STATELESS_RESET_INTERVAL: Duration = Duration::from_micros(100);

/// The endpoint's stateless-reset key and connection-id key, kept across
/// restarts: after a crash the new hub recognises the old connections' ids
/// and answers their packets with resets the agents accept, so they
/// reconnect at once instead of waiting out the idle timeout.
fn endpoint_config(data_dir: &std::path::Path) -> std::io::Result<quinn::EndpointConfig> {
    use ring::rand::SecureRandom;
    let path = data_dir.join("reset.key");
    let bytes = match std::fs::read(&path) {
        Ok(b) if b.len() == 32 => b,
        Ok(_) | Err(_) => {
            let mut b = vec![0u8; 32];
            ring::rand::SystemRandom::new()
                .fill(&mut b)
                .map_err(|_| std::io::Error::other("the system random generator failed"))?;
            gongwen_common::fsutil::write_atomic(&path, &b, 0o600)?;
            b
        }
    };
    let reset_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &bytes);
    let tag = ring::hmac::sign(&reset_key, b"gongwen connection-id key");
    let mut cid_key = [0u8; 8];
    cid_key.copy_from_slice(&tag.as_ref()[..8]);
    let cid_key = u64::from_be_bytes(cid_key);
    let mut config = quinn::EndpointConfig::new(Arc::new(reset_key));
    // quinn answers at most one stray packet with a reset per 20 ms by
    // default: after a crash, 10,000 units' packets got 50 resets a second
    // and most units waited out their idle timeout. A reset is smaller
    // than the packet that prompts it (no amplification) and costs one
    // HMAC; the hashed connection ids below make a reset for a packet that
    // was never ours rare.
    config.min_reset_interval(STATELESS_RESET_INTERVAL);
    config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    Ok(config)
}

/// Reaches into a running hub (tests, tools).
#[derive(Clone)]
pub struct HubHandle {
    core: Arc<Core>,
}

impl std::fmt::Debug for HubHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HubHandle")
    }
}

impl HubHandle {
    /// Run every escalation step due now, by the hub's clock, as the
    /// scheduler would; returns how many ran.
    pub async fn escalate_now(&self) -> Result<usize, HubError> {
        Ok(scheduler::run_due(&self.core).await?)
    }
}

/// Say in one line what the gate turned away lately.
fn report_pressure(door: &Door, core: &Core, r: admission::PressureReport) {
    if r.full > 0 {
        warn!(
            "{} connections open, the most this hub admits (limits.max_connections {}); in the last moments {} units were refused before their handshake and will retry later",
            door.admitted.total(),
            door.max_connections(core),
            r.full
        );
    }
    if r.retried + r.refused > 0 {
        warn!(
            "security: {} unfinished handshakes; in the last moments {} new clients were asked to prove their address (QUIC Retry) and {} refused",
            door.pending.handshakes.total(),
            r.retried,
            r.refused
        );
    }
}

/// What the accept loop and the admission tasks share: the bounds, the
/// connections not admitted yet, the places for admitted ones, and the
/// rate-limited warnings about peers.
struct Door {
    limits: Limits,
    /// `[limits] max_connections`, if set.
    configured_max: Option<usize>,
    pending: Pending,
    /// Admitted connections (one key: only the total counts).
    admitted: Arc<Counts<()>>,
    warnings: Arc<Warnings>,
}

impl Door {
    fn new(config: &HubConfig) -> Door {
        Door {
            limits: Limits::with_per_address(config.handshakes_per_address),
            configured_max: config.max_connections,
            pending: Pending::default(),
            admitted: Arc::default(),
            warnings: Arc::default(),
        }
    }

    /// The most admitted connections now: read at each attempt, so that
    /// a reloaded directory with more units makes room for them.
    fn max_connections(&self, core: &Core) -> usize {
        admission::max_connections(
            self.configured_max,
            core.enrolled().current().directory.entries.len(),
        )
    }

    /// A place among the unfinished handshakes, or what to do instead.
    fn gate(
        &self,
        incoming: &quinn::Incoming,
        max_connections: usize,
    ) -> Result<Held<std::net::IpAddr>, Gate> {
        if admission::full(self.admitted.total(), max_connections) {
            return Err(Gate::Refuse(RefuseWhy::Full));
        }
        let validated = incoming.remote_address_validated();
        self.pending
            .handshakes
            .enter(
                incoming.remote_address().ip(),
                |total, from_addr| match admission::gate(total, from_addr, validated, &self.limits)
                {
                    Gate::Accept => Ok(()),
                    other => Err(other),
                },
            )
    }

    fn turn_away(&self, incoming: quinn::Incoming, gate: Gate) {
        match gate {
            Gate::Retry => {
                // Stateless: the hub keeps nothing until the client comes
                // back with the token. A client that already did and is
                // asked again cannot be (quinn refuses a second Retry).
                if let Err(e) = incoming.retry() {
                    e.into_incoming().refuse();
                }
            }
            // Stateless too: a QUIC close in an Initial packet, before any
            // TLS (which cannot carry words; the agent reads the code as
            // "retry later", at a random moment that spreads a storm).
            Gate::Refuse(_) | Gate::Accept => incoming.refuse(),
        }
    }
}

/// The certificate the peer authenticated with, as DER.
fn peer_certificate(conn: &quinn::Connection) -> Option<CertificateDer<'static>> {
    let certs = conn
        .peer_identity()?
        .downcast::<Vec<CertificateDer<'static>>>()
        .ok()?;
    certs.first().cloned()
}

/// The application protocol the handshake settled on.
fn negotiated_alpn(conn: &quinn::Connection) -> Option<Vec<u8>> {
    conn.handshake_data()?
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?
        .protocol
}

/// Handshake, admission, hello, welcome (or, on ALPN `gongwen-fed/1`, a
/// peer hub's link); then hold the connection until it ends.
async fn admit(
    incoming: quinn::Incoming,
    handshake: Held<std::net::IpAddr>,
    core: Arc<Core>,
    door: Arc<Door>,
) {
    let addr = incoming.remote_address();
    let addr_key = addr.ip().to_string();
    let connecting = match incoming.accept() {
        Ok(c) => c,
        Err(e) => {
            debug!(%addr, "connection attempt dropped: {e}");
            return;
        }
    };
    let timeout = door.limits.handshake_timeout;
    let conn = match tokio::time::timeout(timeout, connecting).await {
        Err(_) => {
            debug!(%addr, "handshake did not finish within {timeout:?}");
            return;
        }
        Ok(Err(e)) => {
            // Unknown CA, revoked, expired, stale CRL: rustls has already
            // sent the matching alert; the log says which.
            if let Some(held_back) = door.warnings.allow(&addr_key) {
                // The peer's own close frame may carry its words: clipped.
                let e = e.to_string();
                warn!(%addr, "refused during handshake: {}{held_back}", Clipped(&e));
            }
            return;
        }
        Ok(Ok(conn)) => conn,
    };
    drop(handshake);
    // Checked at the gate too; here for the handshakes that were under way
    // when the last place was taken.
    let max = door.max_connections(&core);
    let Ok(_place) = door.admitted.enter((), |open, _| {
        if admission::full(open, max) {
            Err(())
        } else {
            Ok(())
        }
    }) else {
        core.metrics().turned_away(Gate::Refuse(RefuseWhy::Full));
        if let Some(held_back) = door.warnings.allow("admitted connections") {
            warn!(%addr, "{max} connections open; refusing{held_back}");
        }
        close(
            &conn,
            RefuseCode::Busy,
            "the hub holds as many connections as it takes; try again later",
        );
        return;
    };
    if negotiated_alpn(&conn).as_deref() == Some(gongwen_common::federation::FEDERATION_ALPN) {
        crate::link::peer::accept(conn, core).await;
        return;
    }
    let Some(cert) = peer_certificate(&conn) else {
        close(&conn, RefuseCode::ProtocolViolation, "no certificate");
        return;
    };
    // Judged now by the hub's clock, whether or not TLS ran its checks
    // (it does not on a resumed session, which the hub does not offer but
    // a peer may attempt).
    let ident = match judge(&cert, &core.checker(), core.clock().now()) {
        Ok(ident) => ident,
        Err(refused) => {
            if let Some(held_back) = door.warnings.allow(&addr_key) {
                warn!(%addr, "refused: {}{held_back}", refused.reason);
            }
            close(&conn, refused.code, &refused.reason);
            return;
        }
    };
    let span = info_span!("conn", node = %ident.id, %addr);
    serve_connection(conn, ident, cert, core, door)
        .instrument(span)
        .await;
}

/// Wait for the unit's hello (small, soon), then register and welcome it.
/// `None` if it was refused or left (and the connection closed).
async fn hello_and_welcome(
    conn: &quinn::Connection,
    ident: &CertIdentity,
    cert: &CertificateDer<'static>,
    core: &Core,
    door: &Door,
) -> Option<(
    u64,
    Arc<crate::state::registry::Wake>,
    (quinn::SendStream, quinn::RecvStream),
    u16,
)> {
    let key = ident.id.as_str();
    let max = door.limits.max_hellos_per_unit;
    let Ok(_waiting) =
        door.pending.hellos.enter(
            ident.id.clone(),
            |_, mine| if mine < max { Ok(()) } else { Err(()) },
        )
    else {
        if let Some(held_back) = door.warnings.allow(key) {
            warn!(
                "refused: {max} connections of this unit are already waiting for their hello{held_back}"
            );
        }
        close(
            conn,
            RefuseCode::Busy,
            "too many connections of this unit are waiting to be admitted",
        );
        return None;
    };
    let timeout = door.limits.hello_timeout;
    let (mut send, mut recv) = match tokio::time::timeout(timeout, conn.accept_bi()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            info!("connection ended before hello: {e}");
            return None;
        }
        Err(_) => {
            if let Some(held_back) = door.warnings.allow(key) {
                warn!("no hello within {timeout:?}; closing{held_back}");
            }
            close(conn, RefuseCode::ProtocolViolation, "no hello");
            return None;
        }
    };
    let version = match read_message_within(&mut recv, timeout, MAX_HELLO_LEN).await {
        Ok(Message::Hello { version, .. })
            if (MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&version) =>
        {
            version
        }
        Ok(Message::Hello { version, software }) => {
            if let Some(held_back) = door.warnings.allow(key) {
                warn!(
                    "refused {}: protocol version {version}, hub speaks {PROTOCOL_VERSION}{held_back}",
                    Clipped(&software)
                );
            }
            close(
                conn,
                RefuseCode::UnsupportedVersion,
                &format!("the hub speaks protocol version {PROTOCOL_VERSION}, not {version}"),
            );
            return None;
        }
        Ok(other) => {
            // Described, never echoed: the peer chose its content.
            if let Some(held_back) = door.warnings.allow(key) {
                warn!(
                    "expected hello, got {}; closing{held_back}",
                    other.describe()
                );
            }
            close(conn, RefuseCode::ProtocolViolation, "expected hello");
            return None;
        }
        Err(e) => {
            if let Some(held_back) = door.warnings.allow(key) {
                warn!("no valid hello: {e}; closing{held_back}");
            }
            close(conn, RefuseCode::ProtocolViolation, "no valid hello");
            return None;
        }
    };
    let (ticket, wake) = core.units().connect(
        Admission {
            id: ident.id.clone(),
            role: ident.role,
            name: ident.name.clone(),
            serial: ident.serial.clone(),
            not_after: ident.not_after,
            conn: conn.clone(),
        },
        OffsetDateTime::now_utc(),
    );
    // The CRL (or the time) may have changed since the certificate was
    // judged; the watcher only cuts registered connections, so judge again
    // now that this one is registered.
    if let Err(refused) = judge(cert, &core.checker(), core.clock().now()) {
        warn!("refused: {}", refused.reason);
        close(conn, refused.code, &refused.reason);
        return Some((ticket, wake, (send, recv), version));
    }
    admitted_limits(conn);
    let welcome = Message::Welcome {
        node: ident.id.clone(),
        role: ident.role,
        hub: core.id().clone(),
        hub_time_ms: (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64,
        // An agent of version 1 would refuse a field it does not know.
        generation: (version >= 2).then(|| core.store().generation().to_string()),
        suite: (version >= 4).then(|| core.config().suite.to_string()),
        domain: core
            .federation()
            .filter(|_| version >= 8)
            .map(|f| f.domain().to_string()),
    };
    if let Err(e) = write_message(&mut send, &welcome).await {
        info!("could not send welcome: {e}");
    } else {
        info!(role = %ident.role, "connected");
    }
    Some((ticket, wake, (send, recv), version))
}

async fn serve_connection(
    conn: quinn::Connection,
    ident: CertIdentity,
    cert: CertificateDer<'static>,
    core: Arc<Core>,
    door: Arc<Door>,
) {
    let Some((ticket, wake, control, version)) =
        hello_and_welcome(&conn, &ident, &cert, &core, &door).await
    else {
        return;
    };
    // The control stream stays open for the session's life; everything
    // else runs on streams of its own.
    let _control = control;
    let since = gongwen_common::timefmt::rfc3339(OffsetDateTime::now_utc());
    let addr = conn.remote_address().to_string();
    if let Err(e) = core.store().unit_connected(&ident.id, &since, &addr).await {
        warn!("could not record the unit as connected here: {e}");
    }
    core.wake_expiry_watch();
    tokio::select! {
        _ = session::run(conn.clone(), ident.clone(), core.clone(), wake, door.warnings.clone(), version) => {}
        _ = conn.closed() => {}
    }
    let reason = conn.closed().await;
    let current = core
        .units()
        .disconnect(&ident.id, ticket, OffsetDateTime::now_utc());
    if current {
        // Claims this hub still holds for the unit go back at once (not
        // when their lease lapses), so another hub it reconnects to can
        // deliver them.
        if let Err(e) = core.store().release_unit(&ident.id).await {
            warn!(
                "could not give back this unit's claims now ({e}); they go back once the database answers"
            );
        }
        if let Err(e) = core.store().unit_disconnected(&ident.id).await {
            warn!("could not record that the unit left: {e}");
        }
    }
    info!("disconnected: {reason}");
}

/// With a shared store: every `[store] poll`, give back the claims this
/// hub holds for units no longer connected here. A unit's claims go back
/// when it leaves, but that give-back fails while the database is away
/// (a failover), and a live hub's claims never lapse: the unit, now at
/// another hub, would wait for them as long as this hub runs. A unit that
/// connects between reading the list and the update may lose a fresh claim;
/// only a hub it is also connected to can take it, and a unit answers a
/// document offered twice with the receipt it already gave.
async fn give_back_stray_claims(core: Arc<Core>) {
    loop {
        tokio::time::sleep(core.config().store.poll).await;
        // The relay queues of the domains this hub's peer links carry are
        // as present as a connected unit: their claims are this hub's to
        // finish.
        let mut present = core.units().connected();
        if let Some(f) = core.federation() {
            for peer in f.linked() {
                present.extend(
                    f.relayed_through(&peer)
                        .iter()
                        .map(gongwen_common::NodeId::relay_queue),
                );
            }
        }
        match core.store().release_claims_of_absent(&present).await {
            Ok(0) => {}
            Ok(n) => warn!(
                "gave back {n} claims held for units no longer connected here (their give-back had failed)"
            ),
            Err(e) => debug!("could not look for stray claims: {e}"),
        }
    }
}

/// Wake what another hub's work concerns: a unit's deliverer or
/// forwarder, the escalation scheduler, or everything when events may
/// have been lost.
async fn follow_other_hubs(
    mut events: tokio::sync::mpsc::UnboundedReceiver<crate::store::StoreEvent>,
    core: &Core,
) {
    use crate::store::StoreEvent;
    while let Some(event) = events.recv().await {
        match event {
            StoreEvent::Deliveries(node) => match (node.domain(), core.federation()) {
                (Some(d), Some(f)) => f.wake_relay(&d),
                _ => core.units().wake_deliveries(&node),
            },
            StoreEvent::Pushes(node) => core.wake_pushes(&node),
            StoreEvent::Escalation => core.wake_escalation(),
            StoreEvent::Everything => {
                core.units().wake_everyone();
                core.wake_escalation();
            }
        }
    }
}

/// How often certificates and the CRL are looked at (a warning itself is
/// given at most once a day).
const EXPIRY_LOOK: Duration = Duration::from_secs(60);

/// Warn of the hub's own certificate, every connected unit's, and the CRL
/// before they run out (see [`crate::rules::expiry`]).
async fn watch_expiry(core: Arc<Core>, own: Option<(String, OffsetDateTime)>) {
    let mut warned = crate::rules::expiry::Warned::default();
    loop {
        let now = core.clock().now();
        let mut certificates: Vec<(String, OffsetDateTime)> = own.iter().cloned().collect();
        certificates.extend(
            core.units()
                .expiries()
                .into_iter()
                .map(|(id, t)| (id.to_string(), t)),
        );
        let crl_next = core.trust().current().crl.next_update;
        let due = crate::rules::expiry::due(now, &certificates, crl_next);
        for text in warned.fresh(now, due) {
            warn!("{text}");
        }
        let _ = tokio::time::timeout(EXPIRY_LOOK, core.expiry_woken()).await;
    }
}

/// This machine's host name, for the hub's label among hubs sharing a
/// store ("localhost" if it cannot be read).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
