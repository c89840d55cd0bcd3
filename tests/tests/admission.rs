//! Admission is judged on every connection, resumed or not, by the hub's
//! clock: the certificate chains to the CA, is within its validity, is not
//! revoked, and the CRL is fresh. A TLS session ticket taken while all that
//! held must not carry a unit past any of it, and live connections are cut
//! when it stops holding.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gongwen_agent::LinkError;
use gongwen_certs::Validity;
use gongwen_common::Role;
use gongwen_common::clock::{Clock, ManualClock};
use gongwen_common::pki;
use gongwen_common::stream::{READ_TIMEOUT, read_message, write_message};
use gongwen_common::wire::{ErrorCode, Message};
use gongwen_tests::resume::ResumingClient;
use gongwen_tests::{Net, RunningAgent, bounded, wait_until};
use quinn::rustls;
use time::OffsetDateTime;

const DAY: Duration = Duration::from_secs(24 * 3600);

fn is_welcome(m: &Message) -> bool {
    matches!(m, Message::Welcome { .. })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_gives_no_session_tickets_so_every_connection_shows_its_certificate() {
    let net = Net::new();
    net.issue("harbin-gov", Role::Node);
    let hub = net.start_hub().await;
    let client = ResumingClient::new(&net.path().join("harbin-gov"), "harbin-gov");
    for _ in 0..3 {
        let h = client.hello(hub.addr).await.unwrap();
        assert!(is_welcome(&h.answer), "{:?}", h.answer);
        h.conn.close(0u32.into(), b"done");
    }
    assert_eq!(
        client.seen.tickets(),
        0,
        "the hub handed out session tickets"
    );
    assert_eq!(client.seen.offered(), 0, "the client offered a ticket");
    assert_eq!(
        client.seen.certificate_requests(),
        3,
        "a connection was admitted without presenting its certificate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_that_expires_is_refused_resumed_or_not_and_its_live_connection_is_cut() {
    let net = Net::new();
    let now = OffsetDateTime::now_utc();
    for id in ["harbin-gov", "daqing-gov"] {
        net.issue_with(id, Role::Node, Validity::days_from(now, 2));
    }
    let clock = ManualClock::new(now);
    let hub = net
        .start_hub_with("127.0.0.1:0".parse().unwrap(), Arc::new(clock.clone()))
        .await;
    let mut agent = net.start_agent("harbin-gov", hub.addr);
    agent.wait_connected().await;
    let client = ResumingClient::new(&net.path().join("daqing-gov"), "daqing-gov");
    let before = client.hello(hub.addr).await.unwrap();
    assert!(is_welcome(&before.answer), "{:?}", before.answer);

    // Three days on by the hub's clock the certificate has expired: the
    // live connections are cut, and no new one gets in.
    clock.advance(3 * DAY);
    assert_eq!(agent.wait_error().await, LinkError::Expired);
    let cut = bounded("the hub cutting the test client", before.conn.closed()).await;
    assert!(cut.to_string().contains("certificate expired"), "{cut}");
    match client.hello(hub.addr).await {
        Ok(h) => assert!(
            !is_welcome(&h.answer),
            "an expired certificate was admitted (tickets offered: {})",
            client.seen.offered()
        ),
        Err(e) => assert!(e.contains("expired"), "{e}"),
    }
    assert!(hub.nodes().await.iter().all(|n| !n.connected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crl_that_goes_stale_by_the_hubs_clock_shuts_out_everyone_resumed_or_not() {
    let net = Net::new();
    net.issue("harbin-gov", Role::Node);
    let now = OffsetDateTime::now_utc();
    net.ca()
        .write_crl_until(now - Duration::from_secs(60), now + DAY)
        .unwrap();
    let clock = ManualClock::new(now);
    let hub = net
        .start_hub_with("127.0.0.1:0".parse().unwrap(), Arc::new(clock.clone()))
        .await;
    let client = ResumingClient::new(&net.path().join("harbin-gov"), "harbin-gov");
    let before = client.hello(hub.addr).await.unwrap();
    assert!(is_welcome(&before.answer), "{:?}", before.answer);

    clock.advance(2 * DAY);
    let cut = bounded("the hub cutting everyone", before.conn.closed()).await;
    assert!(
        cut.to_string().contains("revocation list is stale"),
        "{cut}"
    );
    let mut agent = net.start_agent("harbin-gov", hub.addr);
    let e = agent.wait_error().await;
    assert!(
        matches!(e, LinkError::UnknownCa | LinkError::HubCrlStale),
        "{e:?}"
    );
    if let Ok(h) = client.hello(hub.addr).await {
        assert!(!is_welcome(&h.answer), "admitted under a stale CRL");
    }

    // A fresh CRL lets the units back in without a restart.
    net.ca().write_crl(clock.now(), 30).unwrap();
    agent.wait_connected().await;
}

/// A client-certificate verifier that counts the full handshakes it judges
/// (rustls does not call it for a resumed session).
#[derive(Debug)]
struct CountingVerifier {
    inner: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    calls: Arc<AtomicUsize>,
}

impl rustls::server::danger::ClientCertVerifier for CountingVerifier {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_never_resumes_so_it_checks_the_hubs_certificate_on_every_connection() {
    let net = Net::new();
    net.issue("harbin-gov", Role::Node);
    // A hub that offers resumption (rustls's defaults: a session cache and
    // tickets) and refuses every hello, so the agent keeps reconnecting.
    let dir = net.path();
    let ca = pki::load_certs(&dir.join("ca/ca.crt")).unwrap().remove(0);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let provider = gongwen_common::tls::provider();
    let calls = Arc::new(AtomicUsize::new(0));
    let verifier = CountingVerifier {
        inner: rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .unwrap(),
        calls: calls.clone(),
    };
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(
            pki::load_certs(&dir.join("hub/hub.crt")).unwrap(),
            pki::load_private_key(&dir.join("hub/hub.key")).unwrap(),
        )
        .unwrap();
    tls.alpn_protocols = vec![gongwen_common::ALPN.to_vec()];
    tls.max_early_data_size = 0;
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
    let server = quinn::Endpoint::server(
        quinn::ServerConfig::with_crypto(Arc::new(quic)),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let addr = server.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = accepted.clone();
    tokio::spawn(async move {
        while let Some(incoming) = server.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                let Ok((mut send, mut recv)) = conn.accept_bi().await else {
                    return;
                };
                let _ = read_message(&mut recv, READ_TIMEOUT).await;
                counted.fetch_add(1, Ordering::SeqCst);
                let _ = write_message(
                    &mut send,
                    &Message::Error {
                        code: ErrorCode::Internal,
                        message: "not today".into(),
                    },
                )
                .await;
                let _ = send.finish();
                let _ = conn.closed().await;
            });
        }
    });
    let _agent = RunningAgent::start(net.agent_config("harbin-gov", addr));
    wait_until("three connections from the agent", || {
        (accepted.load(Ordering::SeqCst) >= 3).then_some(())
    })
    .await;
    let seen = accepted.load(Ordering::SeqCst);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        seen,
        "the agent resumed a TLS session instead of a full handshake"
    );
}
