//! [`Agent`]: a configured agent, built from its configuration (the
//! composition root: it loads the unit's material, opens its store, makes
//! [`Parts`] and binds the front doors), and run until shut down.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use gongwen_common::NodeId;
use gongwen_common::clock::Clock;
use gongwen_common::config::AgentConfig;
use gongwen_common::envelope::DocumentKey;
use gongwen_common::material::{self, OwnTls};
use gongwen_common::pki::{CertIdentity, Role};
use gongwen_common::signed::Signer;
use gongwen_common::suite::Suite;
use tokio::sync::watch;
use tracing::{Instrument, error, info, info_span};

use crate::error::AgentError;
use crate::front::console::{Console, UnitFacts};
use crate::front::control;
use crate::link::client::Connector;
use crate::link::state::LinkState;
use crate::outgoing::outbox;
use crate::parts::Parts;
use crate::unit::credentials::OwnKeys;
use crate::unit::folders::{self, Folders};
use crate::unit::identity::Identity;
use crate::unit::store::Store;

/// A configured agent, ready to run.
pub struct Agent {
    config: AgentConfig,
    identity: CertIdentity,
    state: watch::Sender<LinkState>,
    parts: Parts,
    control: tokio::net::UnixListener,
    console: Option<Console>,
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

impl Agent {
    /// Load the agent's certificate and key and check them against the
    /// configuration.
    pub fn new(config: AgentConfig) -> Result<Agent, AgentError> {
        Self::with_clock(config, gongwen_common::clock::system())
    }

    /// As [`Agent::new`], with this machine's clock given (tests of a unit
    /// whose clock is off).
    pub fn with_clock(config: AgentConfig, clock: Arc<dyn Clock>) -> Result<Agent, AgentError> {
        let own = own_material(&config)?;
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
        let (signer, enc_key) = unit_keys(&config, &folders, own.signer, &own.ca)?;
        let keys = OwnKeys {
            signer,
            key: own.key,
            ca: own.ca,
        };
        let me = Identity::new(config.clone(), folders, keys, enc_key, clock.clone())?;
        // The certificate in use: the configured one, or its renewal.
        let in_use = me.credentials().identity();
        if clock.now() > in_use.not_after {
            error!(
                "our certificate {} expired at {}; the hub will refuse it: ask the administrator for a new one",
                config.tls.cert.display(),
                gongwen_common::timefmt::rfc3339(in_use.not_after)
            );
        }
        let parts = Parts::new(me, store);
        let (state, _) = watch::channel(LinkState::Starting);
        let console = match &config.console {
            Some(c) => {
                let facts = UnitFacts::new(&in_use, state.subscribe());
                Some(Console::bind(c.listen, parts.clone(), facts)?)
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
            identity: in_use,
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
            outbox::watch(
                self.parts.identity().clone(),
                self.parts.outgoing().clone(),
                self.parts.counters().clone(),
            )
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
        let socket = self.parts.identity().folders().control_socket();
        let link = Connector::new(self.config, self.state, self.parts);
        link.connect_loop(shutdown.as_mut()).await;
        background.abort_all();
        while background.join_next().await.is_some() {}
        let _ = std::fs::remove_file(socket);
        Ok(())
    }
}

/// The unit's certificate, key and CA, checked against the configuration:
/// the certificate must name this unit and must not be a hub's.
fn own_material(config: &AgentConfig) -> Result<OwnTls, AgentError> {
    let own = material::load_own_tls(
        &config.path,
        &config.tls.cert,
        &config.tls.key,
        &config.tls.ca,
    )?;
    material::check_data_dir(&config.path, "root", &config.root)?;
    if own.identity.id != config.node_id {
        return Err(AgentError::CertificateMismatch {
            path: config.tls.cert.clone(),
            cert_id: own.identity.id.to_string(),
            config_id: config.node_id.to_string(),
        });
    }
    if own.identity.role == Role::Hub {
        return Err(AgentError::HubCertificate {
            path: config.tls.cert.clone(),
        });
    }
    Ok(own)
}

/// The keys the deployment's suite asks for: its CA's. A GM unit signs with
/// its SM2 key and opens documents with its SM2 encryption key; a standard
/// one signs with its certificate's key and opens with its X25519 key.
fn unit_keys(
    config: &AgentConfig,
    folders: &Folders,
    signer: Signer,
    ca: &[u8],
) -> Result<(Signer, DocumentKey), AgentError> {
    match Suite::of_ca(ca) {
        Ok(Suite::Gm) => {
            let (signer, enc) = material::load_sm2(&config.path, &config.tls.sm2, signer)?;
            Ok((signer, DocumentKey::Sm2(enc)))
        }
        Ok(Suite::Standard) => {
            let key = match &config.tls.encryption_key {
                Some(path) => folders::enrolled_encryption_key(path)?,
                None => folders::encryption_key(&folders.state)?,
            };
            Ok((signer, DocumentKey::X25519(key)))
        }
        Err(e) => Err(AgentError::Config(
            gongwen_common::config::ConfigError::Invalid {
                path: config.path.clone(),
                key: "tls.ca".into(),
                problem: format!("{}: {e}", config.tls.ca.display()),
            },
        )),
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
