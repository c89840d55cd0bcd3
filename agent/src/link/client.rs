//! The agent's link to the hub: connect, hello/welcome, hold, reconnect.

use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use gongwen_common::config::AgentConfig;
use gongwen_common::material;
use gongwen_common::stream::{READ_TIMEOUT, read_message, write_message};
use gongwen_common::tls::agent_client_config;
use gongwen_common::wire::{Message, PROTOCOL_VERSION};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::link::state::LinkState;
use crate::parts::Parts;
use crate::rules::backoff::{Backoff, Knock, random_jitter};
use crate::rules::link_error::{LinkError, classify, classify_stream};

/// One admitted connection; the streams stay open while it lives.
struct Session {
    conn: quinn::Connection,
    /// The generation of the hub's store, if the hub says.
    generation: Option<String>,
    _control: (quinn::SendStream, quinn::RecvStream),
}

/// Keeps the agent connected to one of its hubs: connect, hello/welcome,
/// hold the session, and on its end try again (the next hub, or after a
/// backoff), publishing each state.
pub(crate) struct Connector {
    config: AgentConfig,
    state: watch::Sender<LinkState>,
    parts: Parts,
}

impl Connector {
    pub(crate) fn new(
        config: AgentConfig,
        state: watch::Sender<LinkState>,
        parts: Parts,
    ) -> Connector {
        Connector {
            config,
            state,
            parts,
        }
    }

    /// Connect and stay connected until `shutdown` completes.
    pub(crate) async fn connect_loop(
        &self,
        shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
    ) {
        let mut shutdown = shutdown;
        let mut endpoints = Endpoints::default();
        let mut backoff = Backoff::default();
        let hubs = &self.config.hubs;
        let mut turn = HubTurn::new(hubs.len());
        let mut knock = Knock::default();
        loop {
            let hub = &hubs[turn.current()];
            let attempt = async {
                let session = self.connect_once(hub, &mut endpoints).await?;
                backoff.reset();
                knock.connected();
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
            let retry_in =
                knock.after(&error, backoff.next_delay(random_jitter()), random_jitter());
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
                domain,
                ..
            }) => {
                // A federated hub names our domain: how units elsewhere
                // address us (`unit@domain`).
                self.parts.identity().trust().set_domain(
                    domain.and_then(|d| gongwen_common::federation::Domain::parse(&d).ok()),
                );
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
pub async fn say_hello(
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
