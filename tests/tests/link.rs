//! The mutually authenticated link between agents and the hub: who gets in,
//! who is kept out or cut off, and that agents come back by themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use gongwen_agent::unit::keygen::keygen_for;
use gongwen_agent::{LinkError, LinkState};
use gongwen_certs::Validity;
use gongwen_common::clock;
use gongwen_common::pki::{self, Crl};
use gongwen_common::tls::hub_server_config;
use gongwen_common::{NodeId, Role};
use gongwen_tests::{Net, RunningAgent};
use time::OffsetDateTime;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_node_connects_and_the_hub_lists_it() {
    let net = Net::new();
    net.issue("harbin-gov", Role::Node);
    net.issue("prov-supervision", Role::Supervisor);
    let hub = net.start_hub().await;
    let mut harbin = net.start_agent("harbin-gov", hub.addr);
    let mut sup = net.start_agent("prov-supervision", hub.addr);
    match harbin.wait_connected().await {
        LinkState::Connected { hub: id, addr, .. } => {
            assert_eq!(id.as_str(), "hub");
            assert_eq!(addr, hub.addr);
        }
        other => panic!("{other:?}"),
    }
    sup.wait_connected().await;
    let rows = hub
        .wait_nodes("two connected nodes", |r| {
            r.iter().filter(|n| n.connected).count() == 2
        })
        .await;
    let harbin_row = rows.iter().find(|r| r.id == "harbin-gov").unwrap();
    assert_eq!(harbin_row.role, Role::Node);
    assert!(
        harbin_row
            .addr
            .as_deref()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    gongwen_common::timefmt::parse_rfc3339(harbin_row.since.as_deref().unwrap()).unwrap();
    let sup_row = rows.iter().find(|r| r.id == "prov-supervision").unwrap();
    assert_eq!(sup_row.role, Role::Supervisor);

    // The JSON the CLI prints: snake_case keys, id a string, connected a bool.
    let v =
        gongwen_hub::ops::control::query(&hub.data_dir, &gongwen_hub::ops::control::Request::Nodes)
            .await
            .unwrap();
    let first = &v.as_array().unwrap()[0];
    for key in ["id", "role", "connected", "since", "addr"] {
        assert!(first.get(key).is_some(), "{key} missing in {first}");
    }
    assert!(first["id"].is_string() && first["connected"].is_boolean());

    harbin.stop().await;
    hub.wait_nodes("harbin-gov disconnected", |r| {
        r.iter().any(|n| n.id == "harbin-gov" && !n.connected)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_node_is_refused_at_the_handshake() {
    let net = Net::new();
    net.issue("daqing-gov", Role::Node);
    net.revoke("daqing-gov");
    let hub = net.start_hub().await;
    let mut agent = net.start_agent("daqing-gov", hub.addr);
    assert_eq!(agent.wait_error().await, LinkError::Revoked);
    assert!(
        hub.nodes().await.is_empty(),
        "a refused node must not be listed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_node_is_cut_off_when_the_crl_revokes_it() {
    let net = Net::new();
    net.issue("daqing-gov", Role::Node);
    net.issue("harbin-gov", Role::Node);
    let hub = net.start_hub().await;
    let mut daqing = net.start_agent("daqing-gov", hub.addr);
    let mut harbin = net.start_agent("harbin-gov", hub.addr);
    daqing.wait_connected().await;
    harbin.wait_connected().await;

    net.revoke("daqing-gov"); // rewrites ca/crl.pem, which hub.toml points at

    assert_eq!(daqing.wait_error().await, LinkError::RevokedWhileConnected);
    hub.wait_nodes("daqing-gov disconnected", |r| {
        r.iter().any(|n| n.id == "daqing-gov" && !n.connected)
    })
    .await;
    // Its next attempt is refused by TLS with the new CRL.
    daqing
        .wait("refused as revoked at the handshake", |s| {
            matches!(
                s,
                LinkState::Disconnected {
                    error: LinkError::Revoked,
                    ..
                }
            )
        })
        .await;
    // The other unit was not touched.
    assert!(matches!(*harbin.link.borrow(), LinkState::Connected { .. }));
    assert!(
        hub.nodes()
            .await
            .iter()
            .any(|n| n.id == "harbin-gov" && n.connected)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_refused() {
    let net = Net::new();
    let rogue = Net::new();
    rogue.issue("harbin-gov", Role::Node);
    let hub = net.start_hub().await;
    // The rogue node trusts our CA (it has our ca.crt) but its own
    // certificate comes from another CA.
    let dir = rogue.path().join("harbin-gov");
    std::fs::copy(net.path().join("ca/ca.crt"), dir.join("ca.crt")).unwrap();
    // Our own agent does not even start with such a configuration …
    let e = gongwen_agent::Agent::new(rogue.agent_config("harbin-gov", hub.addr)).unwrap_err();
    assert!(e.to_string().contains("was not issued by the CA"), "{e}");
    // … and a client that presents the certificate anyway is refused by the
    // hub: unknown_ca (48), or decrypt_error (51) when the other CA has the
    // same name; agents read both as LinkError::UnknownCa.
    let client = gongwen_tests::resume::ResumingClient::new(&dir, "harbin-gov");
    let refused = client.hello(hub.addr).await.unwrap_err();
    assert!(
        refused.contains("error 48") || refused.contains("error 51"),
        "{refused}"
    );
    assert!(hub.nodes().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_refused() {
    let net = Net::new();
    let now = OffsetDateTime::now_utc();
    net.issue_with(
        "harbin-gov",
        Role::Node,
        Validity {
            not_before: now - time::Duration::days(30),
            not_after: now - time::Duration::days(1),
        },
    );
    let hub = net.start_hub().await;
    let mut agent = net.start_agent("harbin-gov", hub.addr);
    assert_eq!(agent.wait_error().await, LinkError::Expired);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_certificate_presented_as_the_hub_is_refused_by_the_agent() {
    let net = Net::new();
    net.issue("impostor", Role::Node);
    net.issue("harbin-gov", Role::Node);
    let ca = pki::load_certs(&net.path().join("ca/ca.crt"))
        .unwrap()
        .remove(0);
    let crl = Crl::load(&net.path().join("ca/crl.pem"), &ca).unwrap();
    // A server that is not our hub: it presents a real node certificate.
    let chain = pki::load_certs(&net.path().join("impostor/impostor.crt")).unwrap();
    let key = pki::load_private_key(&net.path().join("impostor/impostor.key")).unwrap();
    let fake = fake_hub(hub_server_config(chain, key, &ca, &crl, clock::system(), &[]).unwrap());
    let mut agent = net.start_agent("harbin-gov", fake.local_addr().unwrap());
    let err = agent.wait_error().await;
    assert!(matches!(err, LinkError::WrongHub(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_with_the_hub_name_but_a_node_role_is_refused() {
    // Even a certificate from our own CA that has the server purpose and the
    // name "hub" is refused unless its role is hub.
    let net = Net::new();
    net.issue("harbin-gov", Role::Node);
    let ca_dir = net.path().join("ca");
    let ca_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(ca_dir.join("ca.key")).unwrap()).unwrap();
    let ca_pem = std::fs::read_to_string(ca_dir.join("ca.crt")).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, &ca_key).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["hub".to_owned()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "hub");
    params
        .subject_alt_names
        .push(rcgen::SanType::URI("gongwen:node/hub".try_into().unwrap()));
    params
        .subject_alt_names
        .push(rcgen::SanType::URI("gongwen:role/node".try_into().unwrap()));
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(1);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();

    let ca = pki::load_certs(&ca_dir.join("ca.crt")).unwrap().remove(0);
    let crl = Crl::load(&ca_dir.join("crl.pem"), &ca).unwrap();
    let key_der = rustls_key(&key);
    let fake = fake_hub(
        hub_server_config(
            vec![cert.der().clone()],
            key_der,
            &ca,
            &crl,
            clock::system(),
            &[],
        )
        .unwrap(),
    );
    let mut agent = net.start_agent("harbin-gov", fake.local_addr().unwrap());
    let err = agent.wait_error().await;
    assert!(
        matches!(&err, LinkError::WrongHub(s) if s.contains("not to the hub")),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_reconnects_by_itself_after_the_hub_restarts() {
    let net = Net::new();
    net.issue("harbin-gov", Role::Node);
    let hub = net.start_hub().await;
    let addr = hub.addr;
    let mut agent = net.start_agent("harbin-gov", addr);
    agent.wait_connected().await;
    // Every error the agent reports from here on, in order (a later attempt
    // while the hub is still closing would replace the first in the watch).
    let mut link = agent.link.clone();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while link.changed().await.is_ok() {
            if let LinkState::Disconnected { error, .. } = &*link.borrow_and_update() {
                record.lock().unwrap().push(error.clone());
            }
        }
    });

    hub.stop().await;
    let first = gongwen_tests::wait_until("the agent's first error", || {
        seen.lock().unwrap().first().cloned()
    })
    .await;
    assert_eq!(first, LinkError::HubShuttingDown);

    let hub = net.start_hub_on(addr).await;
    agent.wait_connected().await;
    hub.wait_nodes("harbin-gov connected again", |r| {
        r.iter().any(|n| n.id == "harbin-gov" && n.connected)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_crl_refuses_everyone() {
    let net = Net::new();
    net.issue("harbin-gov", Role::Node);
    let now = OffsetDateTime::now_utc();
    net.ca()
        .write_crl_until(now - time::Duration::days(2), now - time::Duration::days(1))
        .unwrap();
    let hub = net.start_hub().await;
    let mut agent = net.start_agent("harbin-gov", hub.addr);
    assert_eq!(agent.wait_error().await, LinkError::UnknownCa);
    assert!(hub.nodes().await.is_empty());

    // Renewing the CRL lets the unit in without restarting the hub.
    net.ca().write_crl(OffsetDateTime::now_utc(), 30).unwrap();
    agent.wait_connected().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crl_going_stale_while_connected_cuts_everyone_off() {
    let net = Net::new();
    net.issue("harbin-gov", Role::Node);
    let hub = net.start_hub().await;
    let mut agent = net.start_agent("harbin-gov", hub.addr);
    agent.wait_connected().await;
    net.let_crl_go_stale();
    assert_eq!(agent.wait_error().await, LinkError::HubCrlStale);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unparsable_crl_keeps_the_previous_one() {
    let net = Net::new();
    net.issue("harbin-gov", Role::Node);
    net.issue("daqing-gov", Role::Node);
    let hub = net.start_hub().await;
    let mut harbin = net.start_agent("harbin-gov", hub.addr);
    harbin.wait_connected().await;
    std::fs::write(
        net.path().join("ca/crl.pem"),
        b"-----BEGIN X509 CRL-----\ngarbage\n",
    )
    .unwrap();
    // A second unit still gets in under the previous (valid) CRL, and the
    // first is not disturbed.
    let mut daqing = net.start_agent("daqing-gov", hub.addr);
    daqing.wait_connected().await;
    assert!(matches!(*harbin.link.borrow(), LinkState::Connected { .. }));
    // A real revocation afterwards is still applied.
    net.revoke("daqing-gov");
    assert_eq!(daqing.wait_error().await, LinkError::RevokedWhileConnected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_made_on_the_node_and_signed_from_its_csr_connects() {
    let net = Net::new();
    let id = NodeId::parse("daqing-gov").unwrap();
    let out = net.path().join("daqing-gov");
    let files = keygen_for(&id, &out, net.suite()).unwrap();
    let csr = std::fs::read_to_string(&files.csr).unwrap();
    let now = OffsetDateTime::now_utc();
    let (signed_id, cert_pem) = net
        .ca()
        .sign_csr(
            &csr,
            Role::Node,
            None,
            Validity::days_from(now, 30),
            false,
            now,
        )
        .unwrap();
    assert_eq!(signed_id, id);
    std::fs::write(out.join("daqing-gov.crt"), cert_pem).unwrap();
    std::fs::copy(net.path().join("ca/ca.crt"), out.join("ca.crt")).unwrap();

    let hub = net.start_hub().await;
    let mut agent = net.start_agent("daqing-gov", hub.addr);
    agent.wait_connected().await;
    let rows = hub.nodes().await;
    assert!(rows.iter().any(|r| r.id == "daqing-gov" && r.connected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_agent_with_the_same_certificate_replaces_the_first() {
    let net = Net::new();
    net.issue("harbin-gov", Role::Node);
    let hub = net.start_hub().await;
    let mut first = net.start_agent("harbin-gov", hub.addr);
    first.wait_connected().await;
    // The same root twice on one machine is refused outright.
    let same_root = gongwen_agent::Agent::new(net.agent_config("harbin-gov", hub.addr));
    assert!(
        matches!(same_root, Err(gongwen_agent::AgentError::AlreadyRunning(_))),
        "{same_root:?}"
    );
    // A copy of the certificate on another machine (another root).
    let mut config = net.agent_config("harbin-gov", hub.addr);
    config.root = net.path().join("harbin-gov-copy");
    let mut second = RunningAgent::start(config);
    second.wait_connected().await;
    assert_eq!(first.wait_error().await, LinkError::Replaced);
    let rows = hub.nodes().await;
    assert_eq!(rows.iter().filter(|r| r.id == "harbin-gov").count(), 1);
}

/// A QUIC server that completes handshakes and nothing else.
fn fake_hub(config: quinn::ServerConfig) -> quinn::Endpoint {
    let ep = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let accept = ep.clone();
    tokio::spawn(async move {
        while let Some(incoming) = accept.accept().await {
            tokio::spawn(async move {
                if let Ok(connecting) = incoming.accept() {
                    let _ = connecting.await;
                }
            });
        }
    });
    ep
}

fn rustls_key(key: &rcgen::KeyPair) -> quinn::rustls::pki_types::PrivateKeyDer<'static> {
    quinn::rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_refuses_to_start_with_someone_elses_certificate() {
    let net = Net::new();
    net.issue("harbin-gov", Role::Node);
    let mut config = net.agent_config("harbin-gov", "127.0.0.1:9".parse().unwrap());
    config.node_id = NodeId::parse("daqing-gov").unwrap();
    let err = gongwen_agent::Agent::new(config).unwrap_err().to_string();
    assert!(
        err.contains("harbin-gov") && err.contains("daqing-gov"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_hub_is_reported_as_unreachable() {
    let net = Net::new();
    net.issue("harbin-gov", Role::Node);
    // A bound UDP port where nobody answers QUIC.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let mut config = net.agent_config("harbin-gov", addr);
    config.connect_timeout = std::time::Duration::from_millis(300);
    let mut agent = RunningAgent::start(config);
    let err = agent.wait_error().await;
    assert!(
        matches!(err, LinkError::Unreachable { addr: a, .. } if a == addr),
        "{err:?}"
    );
    assert!(err.to_string().contains("hub unreachable"), "{err}");
}
