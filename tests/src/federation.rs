//! Federated deployments for tests: several [`Net`]s, each a domain with
//! its own CA and hub, trusting each other by statements their CAs sign
//! (`Ca::federate`, as `gongwen-certs federate` does).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use gongwen_common::clock::Clock;
use gongwen_common::config::HubConfig;
use gongwen_common::federation::Domain;
use gongwen_hub::ops::control::Request;
use time::OffsetDateTime;

use crate::{Net, RunningHub, WAIT};

/// One peer entry of a hub's `[federation]`.
#[derive(Debug, Clone)]
pub struct PeerEntry {
    pub domain: String,
    /// Where to dial it; `None`: it dials us.
    pub addr: Option<SocketAddr>,
    pub routes: Vec<String>,
}

impl PeerEntry {
    /// A peer that dials us.
    pub fn accept(domain: &str) -> PeerEntry {
        PeerEntry {
            domain: domain.into(),
            addr: None,
            routes: Vec::new(),
        }
    }

    /// A peer we dial at `addr`, reaching `routes` through it.
    pub fn dial(domain: &str, addr: SocketAddr, routes: &[&str]) -> PeerEntry {
        PeerEntry {
            domain: domain.into(),
            addr: Some(addr),
            routes: routes.iter().map(|r| r.to_string()).collect(),
        }
    }
}

/// Have `net`'s CA sign a statement for `peer_domain`, whose CA is
/// `peer`'s; written to `<net>/federation/<peer_domain>.fed`.
pub fn federate(net: &Net, peer_domain: &str, peer: &Net) -> PathBuf {
    let pem = peer.ca().cert_pem().to_owned();
    let bytes = net
        .ca()
        .federate(
            Domain::parse(peer_domain).unwrap(),
            pem.as_bytes(),
            OffsetDateTime::now_utc(),
        )
        .unwrap();
    let dir = net.path().join("federation");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{peer_domain}.fed"));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The `[federation]` TOML of a hub of `domain` with `peers` (whose
/// statements are in `federation/<peer>.fed`).
pub fn federation_toml(domain: &str, peers: &[PeerEntry]) -> String {
    let mut t = format!("[federation]\ndomain = \"{domain}\"\n");
    for p in peers {
        t.push_str(&format!(
            "[[federation.peers]]\ndomain = \"{}\"\nstatement = \"federation/{}.fed\"\n",
            p.domain, p.domain
        ));
        if let Some(a) = p.addr {
            t.push_str(&format!("addr = [\"{a}\"]\n"));
        }
        if !p.routes.is_empty() {
            let r: Vec<String> = p.routes.iter().map(|r| format!("\"{r}\"")).collect();
            t.push_str(&format!("routes = [{}]\n", r.join(", ")));
        }
    }
    t
}

/// The hub config of domain `domain` in `net`, listening on `listen`
/// (with the CA's unit directory, when there is one).
pub fn hub_config(net: &Net, domain: &str, listen: SocketAddr, peers: &[PeerEntry]) -> HubConfig {
    let mut config = net.hub_config_as("hub", listen, &federation_toml(domain, peers));
    let directory = net.path().join("ca/directory.gwd");
    if directory.exists() {
        config.tls.directory = Some(directory);
    }
    config
}

/// Start `net`'s hub as domain `domain`.
pub async fn start_hub(
    net: &Net,
    domain: &str,
    peers: &[PeerEntry],
    clock: Arc<dyn Clock>,
) -> RunningHub {
    let config = hub_config(net, domain, "127.0.0.1:0".parse().unwrap(), peers);
    net.start_hub_config(config, clock).await
}

/// `gongwen-hub peers --json` of a running hub.
pub async fn peers(hub: &RunningHub) -> serde_json::Value {
    crate::ask_hub(&hub.data_dir, &Request::Peers).await
}

/// The row of `domain` in `peers`.
pub fn row<'a>(peers: &'a serde_json::Value, domain: &str) -> &'a serde_json::Value {
    peers
        .as_array()
        .and_then(|a| a.iter().find(|p| p["domain"] == domain))
        .unwrap_or_else(|| panic!("no peer {domain} in {peers:#}"))
}

/// Wait until `hub`'s `peers` satisfies `pred`; return it.
pub async fn wait_peers(
    hub: &RunningHub,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let v = peers(hub).await;
        if pred(&v) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {WAIT:?} for {what}; peers shows {v:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Wait until `hub`'s `status` of `doc` satisfies `pred`; returns it.
pub async fn wait_hub_status(
    hub: &RunningHub,
    doc: gongwen_common::DocId,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let v = crate::ask_hub(
            &hub.data_dir,
            &gongwen_hub::ops::control::Request::Status { doc },
        )
        .await;
        if pred(&v) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {WAIT:?} for {what}; status shows {v:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Wait until `hub` is linked to each of `domains`.
pub async fn wait_linked(hub: &RunningHub, domains: &[&str]) -> serde_json::Value {
    wait_peers(hub, &format!("links to {domains:?}"), |v| {
        domains.iter().all(|d| row(v, d)["connected"] == true)
    })
    .await
}

/// Enroll `units` (id, name) in `net`'s CA with an encryption key each
/// (in `<id>/enc.key`, see [`agent`]), and write its signed unit
/// directory; returns the directory's path.
pub fn enroll(net: &Net, units: &[(&str, &str)]) -> PathBuf {
    let grouped: Vec<(&str, &str, &[&str])> =
        units.iter().map(|(i, n)| (*i, *n, &[][..])).collect();
    enroll_in_groups(net, &grouped)
}

/// [`enroll`] with each unit's groups (units.csv's `groups` column), which
/// the signed directory carries.
pub fn enroll_in_groups(net: &Net, units: &[(&str, &str, &[&str])]) -> PathBuf {
    use gongwen_certs::{IssueRequest, Validity};
    let now = OffsetDateTime::now_utc();
    let mut ca = net.ca();
    for (id, name, groups) in units {
        let id = gongwen_common::NodeId::parse(id).unwrap();
        let issued = ca
            .issue(
                &IssueRequest {
                    id: id.clone(),
                    role: gongwen_common::Role::Node,
                    name: Some(name.to_string()),
                    dns: Vec::new(),
                    ips: Vec::new(),
                    validity: Validity::days_from(now, 30),
                    renew: true,
                },
                now,
            )
            .unwrap();
        let dir = net.path().join(id.as_str());
        ca.write_issued(&dir, &id, &issued).unwrap();
        let (enc, _) = ca.make_encryption_key(&id, &issued, now).unwrap();
        std::fs::write(dir.join("enc.key"), enc.secret_bytes()).unwrap();
        if !groups.is_empty() {
            ca.set_groups(&id, groups.iter().map(|g| g.to_string()).collect())
                .unwrap();
        }
    }
    ca.write_directory(now).unwrap();
    net.path().join("ca/directory.gwd")
}

/// Start the agent of a unit [`enroll`]ed in `net`, at `hub`.
pub fn agent(net: &Net, id: &str, hub: SocketAddr) -> crate::RunningAgent {
    agent_with(net, id, hub, "")
}

/// [`agent`] with more of agent.toml (`extra`, after the key), such as a
/// `[console]` section.
pub fn agent_with(net: &Net, id: &str, hub: SocketAddr, extra: &str) -> crate::RunningAgent {
    let key = net.path().join(id).join("enc.key");
    crate::RunningAgent::start(net.agent_config_with(
        id,
        hub,
        &format!("encryption_key = \"{}\"\n{extra}", key.display()),
    ))
}

/// A hub of another domain built by hand from its certificate, for tests
/// that must send what a real hub never would (a hostile peer).
#[derive(Debug)]
pub struct RawPeer {
    pub conn: quinn::Connection,
    _endpoint: quinn::Endpoint,
    _hello: (quinn::SendStream, quinn::RecvStream),
}

impl RawPeer {
    /// Link to the hub at `addr` (of the domain whose CA is `peer`'s) as
    /// `net`'s hub, claiming `domain`; returns the welcome or the refusal.
    pub async fn connect(
        net: &Net,
        domain: &str,
        peer: &Net,
        addr: SocketAddr,
    ) -> Result<RawPeer, String> {
        use gongwen_common::stream::{READ_TIMEOUT, read_message, write_message};
        use gongwen_common::wire::Message;
        let dir = net.path().join("hub");
        let chain = gongwen_common::pki::load_certs(&dir.join("hub.crt")).unwrap();
        let key = gongwen_common::pki::load_private_key(&dir.join("hub.key")).unwrap();
        let peer_ca = peer.ca().cert_der().clone();
        let config = gongwen_common::tls::peer_client_config(
            chain,
            key,
            &peer_ca,
            gongwen_common::clock::system(),
        )
        .unwrap();
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let conn = endpoint
            .connect_with(config, addr, "peer")
            .unwrap()
            .await
            .map_err(|e| e.to_string())?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
        let crl = std::fs::read(net.path().join("ca/crl.pem")).unwrap();
        let crl = gongwen_common::pki::Crl::parse(&crl, net.ca().cert_der())
            .unwrap()
            .der
            .to_vec();
        write_message(
            &mut send,
            &Message::PeerHello {
                version: gongwen_common::federation::FEDERATION_VERSION,
                domain: domain.into(),
                suite: net.suite().to_string(),
                crl,
            },
        )
        .await
        .map_err(|e| e.to_string())?;
        match read_message(&mut recv, READ_TIMEOUT).await {
            Ok(Message::PeerWelcome { .. }) => Ok(RawPeer {
                conn,
                _endpoint: endpoint,
                _hello: (send, recv),
            }),
            Ok(other) => Err(format!("{other:?}")),
            Err(e) => Err(format!("{e}: {:?}", conn.close_reason())),
        }
    }

    /// One request on a stream of its own; the peer's answer.
    pub async fn ask(
        &self,
        msg: &gongwen_common::wire::Message,
    ) -> Result<gongwen_common::wire::Message, String> {
        gongwen_common::stream::request(&self.conn, msg, gongwen_common::stream::READ_TIMEOUT)
            .await
            .map_err(|e| e.to_string())
    }

    /// Relay a sealed document as a hub would; the peer's final answer.
    pub async fn relay(&self, doc: &crate::raw::SealedDoc) -> gongwen_common::wire::Message {
        use gongwen_common::stream::{READ_TIMEOUT, read_message, write_message};
        use gongwen_common::wire::Message;
        let (mut send, mut recv) = self.conn.open_bi().await.unwrap();
        write_message(
            &mut send,
            &Message::UploadBegin {
                doc_id: doc.doc_id,
                header: doc.header.clone(),
                content_len: doc.content.len() as u64,
            },
        )
        .await
        .unwrap();
        match read_message(&mut recv, READ_TIMEOUT).await.unwrap() {
            Message::UploadFrom { offset } => {
                send.write_all(&doc.content[offset as usize..])
                    .await
                    .unwrap();
                send.finish().unwrap();
                read_message(&mut recv, READ_TIMEOUT).await.unwrap()
            }
            other => other,
        }
    }
}
