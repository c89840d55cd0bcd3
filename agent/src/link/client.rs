//! The agent's link to the hub: connect, hello/welcome, hold, reconnect.

use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use gongwen_common::NodeId;
use gongwen_common::clock::Clock;
use gongwen_common::config::AgentConfig;
use gongwen_common::envelope::DocumentKey;
use gongwen_common::material::{self, OwnTls};
use gongwen_common::pki::{CertIdentity, Role};
use gongwen_common::stream::{READ_TIMEOUT, read_message, write_message};
use gongwen_common::suite::Suite;
use gongwen_common::tls::agent_client_config;
use gongwen_common::wire::{Message, PROTOCOL_VERSION};
use tokio::sync::watch;
use tracing::{Instrument, error, info, info_span, warn};

use crate::error::AgentError;
use crate::front::control;
use crate::outgoing::outbox;
use crate::parts::Parts;
use crate::rules::backoff::{Backoff, random_jitter};
use crate::rules::link_error::{LinkError, classify, classify_stream};
use crate::unit::folders::{self, Folders};
use crate::unit::identity::Identity;
use crate::unit::store::Store;

/// What the agent's link to the hub is doing, for status displays and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// The first attempt has not finished yet.
    Starting,
    /// Admitted by the hub.
    Connected {
        hub: NodeId,
        addr: SocketAddr,
        /// When (this machine's clock, Unix ms).
        since_ms: i64,
        /// This machine's clock minus the hub's at the welcome (ms).
        clock_offset_ms: i64,
    },
    /// Not connected; `error` says why, the agent retries by itself.
    Disconnected {
        error: LinkError,
        retry_in: Duration,
    },
}

/// A configured agent, ready to run.
pub struct Agent {
    config: AgentConfig,
    identity: CertIdentity,
    state: watch::Sender<LinkState>,
    parts: Parts,
    control: tokio::net::UnixListener,
    console: Option<crate::front::console::Console>,
    /// `[metrics] listen`, bound.
    metrics: Option<tokio::net::TcpListener>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("node_id", &self.config.node_id)
            .field("hubs", &self.config.hubs)
            .finish()
    }
}

/// One admitted connection; the streams stay open while it lives.
struct Session {
    conn: quinn::Connection,
    /// The generation of the hub's store, if the hub says.
    generation: Option<String>,
    _control: (quinn::SendStream, quinn::RecvStream),
}

impl Agent {
    /// Load the agent's certificate and key and check them against the
    /// configuration.
    pub fn new(config: AgentConfig) -> Result<Agent, AgentError> {
        Self::with_clock(config, gongwen_common::clock::system())
    }

    /// As [`Agent::new`], with this machine's clock given (tests of a unit
    /// whose clock is off).
    pub fn with_clock(config: AgentConfig, clock: Arc<dyn Clock>) -> Result<Agent, AgentError> {
        let OwnTls {
            chain,
            key,
            ca,
            identity,
            signer,
        } = material::load_own_tls(
            &config.path,
            &config.tls.cert,
            &config.tls.key,
            &config.tls.ca,
        )?;
        material::check_data_dir(&config.path, "root", &config.root)?;
        if identity.id != config.node_id {
            return Err(AgentError::CertificateMismatch {
                path: config.tls.cert.clone(),
                cert_id: identity.id.to_string(),
                config_id: config.node_id.to_string(),
            });
        }
        if identity.role == Role::Hub {
            return Err(AgentError::HubCertificate {
                path: config.tls.cert.clone(),
            });
        }
        drop(chain);
        let folders = Folders::new(&config.root);
        folders.create()?;
        // First, so a second agent on this root is told so plainly.
        let control = control::bind(&folders.control_socket())?;
        let store = Store::open(&folders.store(), !folders.has_history())?;
        // Claims a crash interrupted are undone now, before the outbox
        // watcher or the control socket can claim anything.
        outbox::recover(&folders).map_err(|source| AgentError::Dir {
            path: folders.spool.clone(),
            source,
        })?;
        // The deployment's suite is its CA's: a GM unit signs with its SM2
        // key and opens documents with its SM2 encryption key.
        let (signer, enc_key) = match Suite::of_ca(&ca) {
            Ok(Suite::Gm) => {
                let (signer, enc) =
                    gongwen_common::material::load_sm2(&config.path, &config.tls.sm2, signer)?;
                (signer, DocumentKey::Sm2(enc))
            }
            Ok(Suite::Standard) => {
                let key = match &config.tls.encryption_key {
                    Some(path) => folders::enrolled_encryption_key(path)?,
                    None => folders::encryption_key(&folders.state)?,
                };
                (signer, DocumentKey::X25519(key))
            }
            Err(e) => {
                return Err(AgentError::Config(
                    gongwen_common::config::ConfigError::Invalid {
                        path: config.path.clone(),
                        key: "tls.ca".into(),
                        problem: format!("{}: {e}", config.tls.ca.display()),
                    },
                ));
            }
        };
        let me = Identity::new(
            config.clone(),
            folders,
            crate::unit::credentials::OwnKeys { signer, key, ca },
            enc_key,
            clock.clone(),
        )?;
        // The certificate in use: the configured one, or its renewal.
        let identity = me.credentials().identity();
        let parts = Parts::new(me, store);
        if clock.now() > identity.not_after {
            error!(
                "our certificate {} expired at {}; the hub will refuse it: ask the administrator for a new one",
                config.tls.cert.display(),
                gongwen_common::timefmt::rfc3339(identity.not_after)
            );
        }
        let (state, _) = watch::channel(LinkState::Starting);
        let console = match &config.console {
            Some(c) => {
                let unit = match &identity.name {
                    Some(name) => format!("{name} ({})", identity.id),
                    None => identity.id.to_string(),
                };
                let facts = crate::front::console::UnitFacts {
                    label: unit,
                    cert_not_after: identity.not_after,
                    role: identity.role,
                    link: state.subscribe(),
                };
                Some(crate::front::console::Console::bind(
                    c.listen,
                    parts.clone(),
                    facts,
                )?)
            }
            None => None,
        };
        let metrics = match config.metrics {
            Some(m) => Some(bind_metrics(m.listen)?),
            None => None,
        };
        Ok(Agent {
            metrics,
            config,
            identity,
            state,
            parts,
            control,
            console,
        })
    }

    /// The agent's owners (for tests).
    pub fn parts(&self) -> Parts {
        self.parts.clone()
    }

    /// Watch the link's state.
    pub fn link(&self) -> watch::Receiver<LinkState> {
        self.state.subscribe()
    }

    pub fn node_id(&self) -> &NodeId {
        &self.identity.id
    }

    /// Where /metrics and /healthz answer, when configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Where the console listens, when it is configured.
    pub fn console_addr(&self) -> Option<SocketAddr> {
        self.console.as_ref().and_then(|c| c.local_addr())
    }

    /// Keep connected to the hub until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), AgentError> {
        let span = info_span!("agent", node = %self.identity.id);
        self.run_inner(shutdown).instrument(span).await
    }

    async fn run_inner(self, shutdown: impl Future<Output = ()>) -> Result<(), AgentError> {
        tokio::pin!(shutdown);
        let mut background = tokio::task::JoinSet::new();
        background.spawn(
            outbox::watch(self.parts.identity().clone(), self.parts.outgoing().clone())
                .in_current_span(),
        );
        background.spawn(control::serve(self.control, self.parts.clone()).in_current_span());
        if let Some(console) = self.console {
            // Ends with the agent (its task is aborted below).
            background.spawn(console.serve(std::future::pending()).in_current_span());
        }
        if let Some(listener) = self.metrics {
            if let Ok(addr) = listener.local_addr() {
                info!("metrics on http://{addr}/metrics, health on http://{addr}/healthz");
            }
            background.spawn(
                crate::front::metrics::serve(
                    listener,
                    self.parts.identity().clone(),
                    self.parts.store().clone(),
                    self.state.subscribe(),
                    self.identity.not_after,
                )
                .in_current_span(),
            );
        }
        let this = Running {
            config: self.config,
            state: self.state,
            parts: self.parts,
        };
        this.connect_loop(shutdown.as_mut()).await;
        background.abort_all();
        while background.join_next().await.is_some() {}
        let _ = std::fs::remove_file(this.parts.identity().folders().control_socket());
        Ok(())
    }
}

/// The parts of an agent the connection loop uses.
struct Running {
    config: AgentConfig,
    state: watch::Sender<LinkState>,
    parts: Parts,
}

impl Running {
    async fn connect_loop(&self, shutdown: std::pin::Pin<&mut impl Future<Output = ()>>) {
        let mut shutdown = shutdown;
        let mut endpoints = Endpoints::default();
        let mut backoff = Backoff::default();
        let hubs = &self.config.hubs;
        let mut turn = HubTurn::new(hubs.len());
        loop {
            let hub = &hubs[turn.current()];
            let attempt = async {
                let session = self.connect_once(hub, &mut endpoints).await?;
                backoff.reset();
                turn.connected();
                Ok::<_, LinkError>(self.hold(session).await)
            };
            let error = tokio::select! {
                _ = &mut shutdown => break,
                r = attempt => match r { Ok(e) | Err(e) => e },
            };
            if turn.failed() {
                // Another hub serves the province too: try it now.
                warn!("{error}; trying the hub at {}", hubs[turn.current()]);
                self.state.send_replace(LinkState::Disconnected {
                    error,
                    retry_in: Duration::ZERO,
                });
                continue;
            }
            let mut retry_in = backoff.next_delay(random_jitter());
            if error.needs_administrator() {
                // Knocking every 200 ms will not fix a certificate.
                retry_in = retry_in.max(Duration::from_secs(5));
            } else if error == LinkError::HubShuttingDown {
                // It said so: it cannot be back within the second.
                retry_in = retry_in.max(Duration::from_secs(1));
            }
            warn!("{error}; retrying in {:.1} s", retry_in.as_secs_f64());
            self.state
                .send_replace(LinkState::Disconnected { error, retry_in });
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(retry_in) => {}
            }
        }
        endpoints.close();
    }

    async fn resolve(&self, hub: &str) -> Result<SocketAddr, LinkError> {
        let resolve_err = |detail: String| LinkError::Resolve {
            hub: hub.to_owned(),
            detail,
        };
        tokio::net::lookup_host(hub)
            .await
            .map_err(|e| resolve_err(e.to_string()))?
            .next()
            .ok_or_else(|| resolve_err("no addresses".into()))
    }

    async fn connect_once(
        &self,
        hub: &str,
        endpoints: &mut Endpoints,
    ) -> Result<Session, LinkError> {
        let addr = self.resolve(hub).await?;
        let endpoint = endpoints
            .for_addr(addr)
            .map_err(|e| LinkError::Lost(format!("cannot create a UDP socket: {e}")))?;
        let hub_name = &self.config.hub_name;
        let (conn, send, mut recv) = say_hello(
            endpoint,
            self.parts.identity().credentials().client_config(),
            addr,
            hub_name,
            self.config.connect_timeout,
            "",
        )
        .await?;
        match read_message(&mut recv, READ_TIMEOUT).await {
            Ok(Message::Welcome {
                node,
                hub,
                hub_time_ms,
                generation,
                suite,
                ..
            }) => {
                // The hub says which suite it serves; ours is our CA's.
                let ours = self.parts.identity().credentials().signer().suite();
                if let Some(theirs) = suite
                    && theirs != ours.as_str()
                {
                    conn.close(0u32.into(), b"crypto suite mismatch");
                    return Err(LinkError::Refused(format!(
                        "the hub serves the {} crypto suite and this unit's CA is a {ours} one: the two must agree (hub.toml [crypto] suite, or this unit's ca.crt)",
                        gongwen_common::logsafe::Clipped(&theirs)
                    )));
                }
                let skew_ms = self.parts.identity().now_ms() - hub_time_ms;
                if skew_ms.abs() > 60_000 {
                    warn!(
                        "this machine's clock is {:.0} s off the hub's; deadlines follow the hub's clock",
                        skew_ms as f64 / 1000.0
                    );
                }
                info!(%hub, %addr, suite = %ours, "connected to the hub as {node}");
                self.state.send_replace(LinkState::Connected {
                    hub,
                    addr,
                    since_ms: self.parts.identity().now_ms(),
                    clock_offset_ms: skew_ms,
                });
                Ok(Session {
                    conn,
                    generation,
                    _control: (send, recv),
                })
            }
            Ok(Message::Error { message, .. }) => Err(LinkError::Refused(
                gongwen_common::logsafe::Clipped(&message).to_string(),
            )),
            Ok(other) => Err(LinkError::Protocol(format!(
                "expected welcome, got {}",
                other.describe()
            ))),
            Err(e) => Err(classify_stream(&e, hub_name)),
        }
    }

    /// Work an admitted connection until it ends; say why it ended.
    async fn hold(&self, session: Session) -> LinkError {
        let conn = session.conn.clone();
        tokio::select! {
            _ = crate::link::session::run(conn.clone(), &self.parts, session.generation.clone()) => {}
            _ = conn.closed() => {}
        }
        let err = session.conn.closed().await;
        classify(&err, &self.config.hub_name)
    }
}

/// One client endpoint per address family, made on first use.
#[derive(Default)]
struct Endpoints {
    v4: Option<quinn::Endpoint>,
    v6: Option<quinn::Endpoint>,
}

impl Endpoints {
    fn for_addr(&mut self, addr: SocketAddr) -> std::io::Result<&quinn::Endpoint> {
        let (slot, bind): (_, SocketAddr) = if addr.is_ipv4() {
            (&mut self.v4, (std::net::Ipv4Addr::UNSPECIFIED, 0).into())
        } else {
            (&mut self.v6, (std::net::Ipv6Addr::UNSPECIFIED, 0).into())
        };
        if slot.is_none() {
            let socket = UdpSocket::bind(bind)?;
            let ep = quinn::Endpoint::new(
                quinn::EndpointConfig::default(),
                None,
                socket,
                Arc::new(quinn::TokioRuntime),
            )?;
            *slot = Some(ep);
        }
        slot.as_ref()
            .ok_or_else(|| std::io::Error::other("endpoint missing"))
    }

    fn close(self) {
        for ep in [self.v4, self.v6].into_iter().flatten() {
            ep.close(quinn::VarInt::from_u32(0), b"agent stopping");
        }
    }
}

/// Connect to the hub at `addr` and say hello: the connection and its
/// first stream, on which the welcome (or the refusal) comes. With TLS 1.3
/// the handshake can look complete to us while the hub is still refusing
/// our certificate; only a welcome admits us.
async fn say_hello(
    endpoint: &quinn::Endpoint,
    client: quinn::ClientConfig,
    addr: SocketAddr,
    hub_name: &str,
    after: Duration,
    software_note: &str,
) -> Result<(quinn::Connection, quinn::SendStream, quinn::RecvStream), LinkError> {
    let connecting = endpoint
        .connect_with(client, addr, hub_name)
        .map_err(|e| LinkError::WrongHub(format!("cannot connect to {hub_name:?}: {e}")))?;
    let conn = match tokio::time::timeout(after, connecting).await {
        Err(_) | Ok(Err(quinn::ConnectionError::TimedOut)) => {
            return Err(LinkError::Unreachable { addr, after });
        }
        Ok(Err(e)) => return Err(classify(&e, hub_name)),
        Ok(Ok(c)) => c,
    };
    let (mut send, recv) = conn.open_bi().await.map_err(|e| classify(&e, hub_name))?;
    let hello = Message::Hello {
        version: PROTOCOL_VERSION,
        software: format!("gongwen-agent {}{software_note}", env!("CARGO_PKG_VERSION")),
    };
    write_message(&mut send, &hello)
        .await
        .map_err(|e| classify_stream(&e, hub_name))?;
    Ok((conn, send, recv))
}

/// Connect to `hub` once, say hello and read the welcome, then leave (for
/// `gongwen-agent check`; the running agent is not disturbed). What the
/// hub said, or why it could not be reached or did not admit us.
pub async fn probe(config: &AgentConfig, hub: &str) -> Result<String, String> {
    let own = material::load_own_tls(
        &config.path,
        &config.tls.cert,
        &config.tls.key,
        &config.tls.ca,
    )
    .map_err(|e| e.to_string())?;
    let client = agent_client_config(own.chain, own.key, &own.ca, gongwen_common::clock::system())
        .map_err(|e| e.to_string())?;
    let addr = tokio::net::lookup_host(hub)
        .await
        .map_err(|e| format!("cannot resolve {hub}: {e}"))?
        .next()
        .ok_or_else(|| format!("{hub} resolves to no address"))?;
    let bind: SocketAddr = if addr.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(bind).map_err(|e| format!("cannot create a UDP socket: {e}"))?;
    let endpoint = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        None,
        socket,
        Arc::new(quinn::TokioRuntime),
    )
    .map_err(|e| format!("cannot create a QUIC endpoint: {e}"))?;
    let hub_name = &config.hub_name;
    let result = async {
        let (conn, _send, mut recv) = say_hello(
            &endpoint,
            client,
            addr,
            hub_name,
            config.connect_timeout,
            " (check)",
        )
        .await?;
        let answer = match read_message(&mut recv, READ_TIMEOUT).await {
            Ok(Message::Welcome { node, hub, .. }) => Ok(format!("{hub} admits us as {node}")),
            Ok(Message::Error { message, .. }) => Err(LinkError::Refused(
                gongwen_common::logsafe::Clipped(&message).to_string(),
            )),
            Ok(other) => Err(LinkError::Protocol(format!(
                "expected welcome, got {}",
                other.describe()
            ))),
            Err(e) => Err(match conn.close_reason() {
                Some(reason) => classify(&reason, hub_name),
                None => classify_stream(&e, hub_name),
            }),
        };
        conn.close(quinn::VarInt::from_u32(0), b"check done");
        answer
    }
    .await;
    endpoint.close(quinn::VarInt::from_u32(0), b"check done");
    result.map_err(|e| e.to_string())
}

/// Which of the configured hubs to try next. After a lost link or a
/// failed attempt the next hub is tried at once; only when every hub has
/// failed in a row does the agent wait out its backoff (then starts the
/// round again where it is).
#[derive(Debug)]
struct HubTurn {
    hubs: usize,
    current: usize,
    /// Failures in a row since the last connection.
    failed_in_a_row: usize,
}

impl HubTurn {
    fn new(hubs: usize) -> HubTurn {
        HubTurn {
            hubs: hubs.max(1),
            current: 0,
            failed_in_a_row: 0,
        }
    }

    fn current(&self) -> usize {
        self.current
    }

    fn connected(&mut self) {
        self.failed_in_a_row = 0;
    }

    /// The link to the current hub failed or was lost; moves on to the
    /// next. True when that one should be tried at once, false when every
    /// hub failed this round and the backoff applies.
    fn failed(&mut self) -> bool {
        self.current = (self.current + 1) % self.hubs;
        self.failed_in_a_row += 1;
        if self.failed_in_a_row >= self.hubs {
            self.failed_in_a_row = 0;
            false
        } else {
            true
        }
    }
}

/// Bind `[metrics] listen` now, so a taken port stops the start with its
/// reason instead of failing later in the background.
fn bind_metrics(addr: SocketAddr) -> Result<tokio::net::TcpListener, AgentError> {
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|source| AgentError::Metrics { addr, source })?;
    tokio::net::TcpListener::from_std(listener)
        .map_err(|source| AgentError::Metrics { addr, source })
}

#[cfg(test)]
mod hub_turn_tests {
    use super::HubTurn;

    #[test]
    fn a_lost_hub_is_followed_by_the_next_then_the_backoff() {
        let mut t = HubTurn::new(2);
        assert_eq!(t.current(), 0);
        assert!(t.failed(), "the second hub is tried at once");
        assert_eq!(t.current(), 1);
        assert!(!t.failed(), "both failed: wait");
        assert_eq!(t.current(), 0);
        assert!(t.failed());
        t.connected();
        // Connected to hub 1, then lost it: hub 0 at once.
        assert!(t.failed());
        assert_eq!(t.current(), 0);
        let mut one = HubTurn::new(1);
        assert!(!one.failed(), "one hub: always the backoff");
        assert_eq!(one.current(), 0);
    }
}
