//! A TLS client that resumes sessions whenever the server lets it, and
//! counts what happened: the tickets it was given and how often the server
//! asked for its certificate (a resumed TLS 1.3 session does not). Used to
//! show that the hub never resumes, and, as a hub, that the agent never
//! does.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use gongwen_common::pki;
use gongwen_common::stream::{READ_TIMEOUT, read_message, write_message};
use gongwen_common::wire::{Message, PROTOCOL_VERSION};
use quinn::rustls;
use rustls::client::{ClientSessionMemoryCache, ClientSessionStore, ResolvesClientCert};
use rustls::pki_types::ServerName;

/// What a [`ResumingClient`] saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Session tickets the server sent.
    pub tickets: AtomicUsize,
    /// Tickets offered back to the server (resumption attempts).
    pub offered: AtomicUsize,
    /// Times the server asked for the client certificate (full handshakes).
    pub certificate_requests: AtomicUsize,
}

impl Seen {
    pub fn tickets(&self) -> usize {
        self.tickets.load(Ordering::SeqCst)
    }
    pub fn offered(&self) -> usize {
        self.offered.load(Ordering::SeqCst)
    }
    pub fn certificate_requests(&self) -> usize {
        self.certificate_requests.load(Ordering::SeqCst)
    }
}

#[derive(Debug)]
struct CountingStore {
    inner: ClientSessionMemoryCache,
    seen: Arc<Seen>,
}

impl ClientSessionStore for CountingStore {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: rustls::NamedGroup) {
        self.inner.set_kx_hint(server_name, group)
    }
    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<rustls::NamedGroup> {
        self.inner.kx_hint(server_name)
    }
    fn set_tls12_session(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.inner.set_tls12_session(server_name, value)
    }
    fn tls12_session(
        &self,
        server_name: &ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.inner.tls12_session(server_name)
    }
    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.inner.remove_tls12_session(server_name)
    }
    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        self.seen.tickets.fetch_add(1, Ordering::SeqCst);
        self.inner.insert_tls13_ticket(server_name, value)
    }
    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        let t = self.inner.take_tls13_ticket(server_name);
        if t.is_some() {
            self.seen.offered.fetch_add(1, Ordering::SeqCst);
        }
        t
    }
}

#[derive(Debug)]
struct CountingResolver {
    key: Arc<rustls::sign::CertifiedKey>,
    seen: Arc<Seen>,
}

impl ResolvesClientCert for CountingResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.seen
            .certificate_requests
            .fetch_add(1, Ordering::SeqCst);
        Some(self.key.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

/// A unit's TLS client with session resumption on (rustls's default,
/// which the agent turns off).
#[derive(Debug)]
pub struct ResumingClient {
    config: quinn::ClientConfig,
    endpoint: quinn::Endpoint,
    pub seen: Arc<Seen>,
}

impl ResumingClient {
    /// The unit whose certificate is in `dir` (`ID.crt`, `ID.key`, `ca.crt`).
    pub fn new(dir: &Path, id: &str) -> ResumingClient {
        let chain = pki::load_certs(&dir.join(format!("{id}.crt"))).unwrap();
        let key = pki::load_private_key(&dir.join(format!("{id}.key"))).unwrap();
        let ca = pki::load_certs(&dir.join("ca.crt")).unwrap().remove(0);
        let provider = gongwen_common::tls::provider();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).unwrap();
        let seen = Arc::new(Seen::default());
        let signing = provider.key_provider.load_private_key(key).unwrap();
        let resolver = CountingResolver {
            key: Arc::new(rustls::sign::CertifiedKey::new(chain, signing)),
            seen: seen.clone(),
        };
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_client_cert_resolver(Arc::new(resolver));
        tls.alpn_protocols = vec![gongwen_common::ALPN.to_vec()];
        tls.resumption = rustls::client::Resumption::store(Arc::new(CountingStore {
            inner: ClientSessionMemoryCache::new(32),
            seen: seen.clone(),
        }));
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        ResumingClient {
            config: quinn::ClientConfig::new(Arc::new(quic)),
            endpoint,
            seen,
        }
    }

    /// Connect and say hello; the hub's answer: a welcome, or why not.
    pub async fn hello(&self, hub: SocketAddr) -> Result<Hello, String> {
        let conn = self
            .endpoint
            .connect_with(self.config.clone(), hub, "hub")
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        // A refused client certificate shows as a lost stream: say why the
        // connection ended instead.
        let why = async |conn: &quinn::Connection| conn.closed().await.to_string();
        let Ok((mut send, mut recv)) = conn.open_bi().await else {
            return Err(why(&conn).await);
        };
        let hello = Message::Hello {
            version: PROTOCOL_VERSION,
            software: "resuming test client".into(),
        };
        if write_message(&mut send, &hello).await.is_err() {
            return Err(why(&conn).await);
        }
        let Ok(answer) = read_message(&mut recv, READ_TIMEOUT).await else {
            return Err(why(&conn).await);
        };
        Ok(Hello {
            conn,
            answer,
            _control: (send, recv),
        })
    }
}

/// A connection that said hello, and the hub's answer.
#[derive(Debug)]
pub struct Hello {
    pub conn: quinn::Connection,
    pub answer: Message,
    /// The hello stream, kept open as an agent keeps it.
    _control: (quinn::SendStream, quinn::RecvStream),
}
