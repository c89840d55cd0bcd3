//! Unauthenticated load on the hub: QUIC Initial packets, each the first
//! flight of a new connection with a TLS ClientHello and no certificate,
//! sent from another loopback address and never followed up (the client
//! reads no answer, so it never answers a Retry either). And the hub
//! process's memory, read from /proc.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use quinn::rustls;

/// `n` Initial packets of `n` distinct new connections to `hub`.
pub fn initials(n: usize, hub: SocketAddr) -> Vec<Vec<u8>> {
    let provider = gongwen_common::tls::provider();
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnything))
        .with_no_client_auth();
    tls.alpn_protocols = vec![gongwen_common::ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let config = quinn::ClientConfig::new(Arc::new(quic));
    let mut endpoint = quinn_proto::Endpoint::new(
        Arc::new(quinn_proto::EndpointConfig::default()),
        None,
        false,
        None,
    );
    let now = Instant::now();
    (0..n)
        .map(|_| {
            let (_, mut conn) = endpoint.connect(now, config.clone(), hub, "hub").unwrap();
            let mut buf = Vec::with_capacity(1500);
            let t = conn.poll_transmit(now, 1, &mut buf).unwrap();
            buf.truncate(t.size);
            buf
        })
        .collect()
}

/// Send `packets` from `from` to `to`, `per_second` of them a second, on a
/// thread of its own, until they are all sent or `stop` is set. Returns how
/// many were sent.
pub fn send_paced(
    packets: Vec<Vec<u8>>,
    from: SocketAddr,
    to: SocketAddr,
    per_second: u32,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let socket = UdpSocket::bind(from).unwrap();
        let start = Instant::now();
        let gap = Duration::from_secs(1) / per_second.max(1);
        let mut sent = 0;
        for (i, p) in packets.iter().enumerate() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let due = start + gap * u32::try_from(i).unwrap_or(u32::MAX);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if socket.send_to(p, to).is_ok() {
                sent += 1;
            }
        }
        sent
    })
}

/// Resident memory of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// The flood never gets as far as checking the server's certificate.
#[derive(Debug)]
struct AcceptAnything;

impl rustls::client::danger::ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &rustls::pki_types::CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &rustls::pki_types::CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        vec![rustls::SignatureScheme::ECDSA_NISTP256_SHA256]
    }
}
