//! TLS 1.3 and QUIC configurations for the hub and the agents.
//!
//! Both sides use the ring provider only, TLS 1.3 only, ALPN `gongwen/1`
//! and no 0-RTT (early data could be replayed; nothing we send is safe to
//! replay). The hub requires a client certificate chained to the
//! deployment's CA and checks it against the CRL, refusing everyone when
//! the CRL is stale. The agent checks the hub's certificate against the CA,
//! the configured `hub_name`, and the role written in the certificate, so a
//! node certificate cannot pose as the hub.
//!
//! Neither side resumes TLS sessions. rustls does not run the certificate
//! verifier on a resumed session, so a session ticket taken while a
//! certificate was valid would outlive its expiry, its revocation and the
//! CRL's freshness. What resumption saves is one signature and one
//! verification per connection, and a unit holds one long-lived
//! connection: nothing that matters here. The hub also judges every
//! connection again after the handshake ([`crate::pki::CertChecker`]).
//!
//! Before the hub welcomes a connection it grants it one stream and a
//! small receive window ([`PRE_WELCOME_RECEIVE_WINDOW`]); the full limits
//! ([`admitted_limits`]) come with the welcome.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::ALPN;
use crate::clock::Clock;
use crate::pki::{CertIdentity, Crl, PkiError, Role};
pub use crate::provider::{provider, unix_time};

/// How long a connection may stay silent before QUIC declares it dead. The
/// agent sends keep-alives well inside this.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Interval of the agent's keep-alive packets.
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);

fn roots(ca: &CertificateDer<'static>) -> Result<Arc<RootCertStore>, PkiError> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone())?;
    Ok(Arc::new(roots))
}

/// Unacknowledged data the hub keeps per connection. quinn's default
/// (about 10 MB) times a few hundred units pushing at once made the hub's
/// memory grow past 400 MB in the fan-out benchmark; 1 MiB still exceeds the
/// bandwidth-delay product of a provincial network many times over.
pub const HUB_SEND_WINDOW: u64 = 1 << 20;

/// Streams one unit may have open towards the hub at once.
pub const HUB_STREAMS_PER_UNIT: u32 = 64;

/// Bytes a unit may have sent that the hub has not read yet, across all its
/// streams (quinn's default is unbounded per connection).
pub const HUB_RECEIVE_WINDOW: u32 = 16 << 20;

/// Bytes a connection may send the hub before it is welcomed: a hello
/// (at most [`crate::wire::MAX_HELLO_LEN`]) and room to spare. Hundreds of
/// unadmitted connections then cost the hub little memory.
pub const PRE_WELCOME_RECEIVE_WINDOW: u32 = 16 << 10;

/// Raise a welcomed connection's limits from the pre-welcome ones to what
/// an admitted unit may use.
pub fn admitted_limits(conn: &quinn::Connection) {
    conn.set_receive_window(quinn::VarInt::from_u32(HUB_RECEIVE_WINDOW));
    conn.set_max_concurrent_bi_streams(quinn::VarInt::from_u32(HUB_STREAMS_PER_UNIT));
}

/// rustls's time from an injected [`Clock`], so certificate validity and
/// CRL freshness in the handshake follow the same clock as everything the
/// hub or agent judges after it.
#[derive(Debug)]
struct ClockTime(Arc<dyn Clock>);

impl rustls::time_provider::TimeProvider for ClockTime {
    fn current_time(&self) -> Option<UnixTime> {
        Some(unix_time(self.0.now()))
    }
}

/// Which end a transport configuration is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Hub,
    Agent,
}

fn transport(side: Side) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    // IDLE_TIMEOUT is far below the VarInt limit, so the conversion holds.
    t.max_idle_timeout(quinn::IdleTimeout::try_from(IDLE_TIMEOUT).ok());
    match side {
        Side::Hub => {
            t.send_window(HUB_SEND_WINDOW);
            // Until the welcome: the hello stream and a few KiB. After it
            // (admitted_limits), what one unit can make the hub hold:
            // requests open at once (an agent uses up to ~35) and unread
            // bytes across them.
            t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(1));
            t.max_concurrent_uni_streams(quinn::VarInt::from_u32(0));
            t.receive_window(quinn::VarInt::from_u32(PRE_WELCOME_RECEIVE_WINDOW));
        }
        // The agent keeps the connection alive (and notices a dead hub).
        Side::Agent => {
            t.keep_alive_interval(Some(KEEP_ALIVE));
        }
    }
    Arc::new(t)
}

/// The hub's QUIC server configuration for the given certificate, CA and
/// CRL; `clock` judges certificate validity and the CRL's freshness.
pub fn hub_server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    ca: &CertificateDer<'static>,
    crl: &Crl,
    clock: Arc<dyn Clock>,
    peer_cas: &[CertificateDer<'static>],
) -> Result<quinn::ServerConfig, PkiError> {
    let provider = provider();
    let units = WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider.clone())
        .with_crls([crl.der.clone()])
        .enforce_revocation_expiration()
        .build()?;
    let verifier: Arc<dyn ClientCertVerifier> = if peer_cas.is_empty() {
        units
    } else {
        // A peer hub's revocation is judged after the handshake against
        // the CRL its hello carries (and the one held from before): the
        // handshake cannot have it the first time, and a stale one must
        // be replaceable by the hello that brings the fresh one. Each CA
        // gets a verifier of its own: two deployments' CAs may well bear
        // the same name, and one verifier over both would look up a CRL or
        // an issuer by name and find the other's.
        let peers = peer_cas
            .iter()
            .map(|peer| {
                WebPkiClientVerifier::builder_with_provider(roots(peer)?, provider.clone())
                    .build()
                    .map_err(PkiError::from)
            })
            .collect::<Result<Vec<_>, PkiError>>()?;
        Arc::new(FederatedClientVerifier { units, peers })
    };
    let mut tls = rustls::ServerConfig::builder_with_details(provider, Arc::new(ClockTime(clock)))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    if !peer_cas.is_empty() {
        tls.alpn_protocols
            .push(crate::federation::FEDERATION_ALPN.to_vec());
    }
    tls.max_early_data_size = 0;
    // No resumption (see the module's documentation): no session cache,
    // no tickets.
    tls.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    tls.send_tls13_tickets = 0;
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| PkiError::Quic(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(transport(Side::Hub));
    Ok(config)
}

/// An agent's QUIC client configuration: its own certificate, and the CA
/// the hub's certificate must chain to.
/// `clock`: the agent's clock, which judges the hub's certificate's validity
/// like every other time the agent checks.
pub fn agent_client_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    ca: &CertificateDer<'static>,
    clock: Arc<dyn Clock>,
) -> Result<quinn::ClientConfig, PkiError> {
    let provider = provider();
    let webpki =
        WebPkiServerVerifier::builder_with_provider(roots(ca)?, provider.clone()).build()?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(HubVerifier { webpki, clock }))
        .with_client_auth_cert(chain, key)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.enable_early_data = false;
    // Every connection runs HubVerifier in full (see the module's
    // documentation).
    tls.resumption = rustls::client::Resumption::disabled();
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| PkiError::Quic(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(transport(Side::Agent));
    Ok(config)
}

/// The hub's client-certificate check with federation: our units' CA
/// (with our CRL, enforced) first, then each peer CA on its own.
#[derive(Debug)]
struct FederatedClientVerifier {
    units: Arc<dyn ClientCertVerifier>,
    peers: Vec<Arc<dyn ClientCertVerifier>>,
}

impl ClientCertVerifier for FederatedClientVerifier {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        // No hints: a hint list naming several CAs tells a scanner who we
        // trust, and our clients each have one certificate anyway.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        let first = match self
            .units
            .verify_client_cert(end_entity, intermediates, now)
        {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        for peer in &self.peers {
            if let Ok(v) = peer.verify_client_cert(end_entity, intermediates, now) {
                return Ok(v);
            }
        }
        Err(first)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.units.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.units.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.units.supported_verify_schemes()
    }
}

/// A hub's QUIC client configuration for dialing a federation peer: its
/// own hub certificate, ALPN `gongwen-fed/1`, and the peer domain's CA
/// (from the federation statement) that the peer hub's certificate must
/// chain to, with the hub role. The peer's revocation is judged after the
/// handshake, against the CRL its welcome carries.
pub fn peer_client_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    peer_ca: &CertificateDer<'static>,
    clock: Arc<dyn Clock>,
) -> Result<quinn::ClientConfig, PkiError> {
    let provider = provider();
    let webpki =
        WebPkiServerVerifier::builder_with_provider(roots(peer_ca)?, provider.clone()).build()?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PeerHubVerifier(HubVerifier { webpki, clock })))
        .with_client_auth_cert(chain, key)?;
    tls.alpn_protocols = vec![crate::federation::FEDERATION_ALPN.to_vec()];
    tls.enable_early_data = false;
    tls.resumption = rustls::client::Resumption::disabled();
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| PkiError::Quic(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(transport(Side::Agent));
    Ok(config)
}

/// [`HubVerifier`] for a peer domain's hub, whose name we do not know in
/// advance: the name checked is the one the certificate itself carries
/// (every hub certificate names its id as a DNS name), so what is checked
/// is the peer CA, validity, purpose and the hub role.
#[derive(Debug)]
struct PeerHubVerifier(HubVerifier);

impl ServerCertVerifier for PeerHubVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let identity = CertIdentity::from_der(end_entity).map_err(|e| {
            tracing::warn!("the peer hub's certificate names no gongwen hub: {e}");
            rustls::Error::from(CertificateError::ApplicationVerificationFailure)
        })?;
        let name = ServerName::try_from(identity.id.to_string())
            .map_err(|_| rustls::Error::from(CertificateError::ApplicationVerificationFailure))?;
        self.0
            .verify_server_cert(end_entity, intermediates, &name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// webpki's checks (CA, validity, purpose, name) plus the gongwen role.
#[derive(Debug)]
struct HubVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    clock: Arc<dyn Clock>,
}

impl ServerCertVerifier for HubVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let now = unix_time(self.clock.now());
        let verified = self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        // A certificate that chains to our CA and names the hub but was not
        // issued for the hub role is someone else's: refuse it with a
        // distinct alert (access_denied) and say in the log whose it is.
        match CertIdentity::from_der(end_entity) {
            Ok(identity) if identity.role == Role::Hub => {}
            Ok(identity) => {
                tracing::warn!(
                    "the server presented the {} certificate of {}, not the hub's",
                    identity.role,
                    identity.id
                );
                return Err(CertificateError::ApplicationVerificationFailure.into());
            }
            Err(e) => {
                tracing::warn!("the server's certificate names no gongwen hub: {e}");
                return Err(CertificateError::ApplicationVerificationFailure.into());
            }
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}
