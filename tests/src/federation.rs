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

/// The hub config of domain `domain` in `net`, listening on `listen`.
pub fn hub_config(net: &Net, domain: &str, listen: SocketAddr, peers: &[PeerEntry]) -> HubConfig {
    net.hub_config_as("hub", listen, &federation_toml(domain, peers))
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

/// Wait until `hub` is linked to each of `domains`.
pub async fn wait_linked(hub: &RunningHub, domains: &[&str]) -> serde_json::Value {
    wait_peers(hub, &format!("links to {domains:?}"), |v| {
        domains.iter().all(|d| row(v, d)["connected"] == true)
    })
    .await
}
