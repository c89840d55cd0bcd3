//! Keeps admission current: the hub's view of revocation, and connections
//! whose certificates expired.
//!
//! Polls the CRL file (a new file is usually written by rename, which
//! file-system watchers report unreliably; polling a few hundred bytes
//! once a second is cheap and certain). A changed, valid CRL gives new
//! handshakes a new server configuration and closes live connections of
//! nodes it now revokes. A CRL that does not parse, or is not signed by the
//! CA, is logged and the previous one kept. A stale CRL (past next-update)
//! closes every connection: the hub fails closed. A connection whose
//! certificate expires is closed within a poll of its expiry. All by the
//! hub's clock.

use std::sync::Arc;
use std::time::Duration;

use gongwen_common::pki::{CertChecker, Crl, PkiError};
use gongwen_common::timefmt::rfc3339;
use gongwen_common::tls::hub_server_config;
use gongwen_common::wire::RefuseCode;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tracing::{error, info, warn};

use crate::state::core::Core;
use crate::state::polled::PolledFile;
use crate::state::trust::TrustState;

/// The certificate material the hub serves with, kept to rebuild the
/// server configuration when the CRL changes.
pub(crate) struct TlsMaterial {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub ca: CertificateDer<'static>,
}

/// What the watcher changes: the endpoint's TLS configuration and the
/// hub's trust, for new handshakes and new signatures alike.
pub(crate) struct Watched {
    pub core: Arc<Core>,
    pub endpoint: quinn::Endpoint,
    pub tls: TlsMaterial,
}

/// How often the CRL file is read.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Install `crl`: new handshakes are checked against it and live
/// connections it revokes are closed.
pub(crate) fn apply(w: &Watched, crl: Crl) -> Result<(), PkiError> {
    let (t, core) = (&w.tls, &w.core);
    let config = server_config(w, &crl)?;
    let checker = CertChecker::new(&t.ca, Some(&crl))?;
    w.endpoint.set_server_config(Some(config));
    let cut = core.units().cut_where(
        |_, serial| crl.is_revoked(serial),
        RefuseCode::Revoked,
        "certificate revoked",
    );
    for id in cut {
        warn!(node = %id, "certificate revoked: connection closed");
    }
    core.trust().replace(TrustState { crl, checker });
    core.address_books().changed();
    // Agents check documents and receipts against the CRL too: push it.
    core.units().push_crl_to_everyone();
    // And so do the peer domains' hubs, for their agents.
    if let Some(f) = core.federation() {
        f.our_crl_changed();
    }
    Ok(())
}

/// The server configuration for `crl` and the peer CAs trusted now.
pub(crate) fn server_config(w: &Watched, crl: &Crl) -> Result<quinn::ServerConfig, PkiError> {
    let (t, core) = (&w.tls, &w.core);
    let peer_cas = core.federation().map(|f| f.peer_cas()).unwrap_or_default();
    hub_server_config(
        t.chain.clone(),
        t.key.clone_key(),
        &t.ca,
        crl,
        core.clock().clone(),
        &peer_cas,
    )
}

/// The statement of `domain` changed on disk: trust what it says now (new
/// handshakes and the links, which are made again), or keep what was held
/// if it does not verify.
fn reload_statement(w: &Watched, domain: &gongwen_common::federation::Domain) {
    let Some(f) = w.core.federation() else { return };
    match f.reload_statement(domain) {
        Ok(false) => {}
        Ok(true) => {
            let crl = &w.core.trust().current().crl;
            match server_config(w, crl) {
                Ok(config) => {
                    w.endpoint.set_server_config(Some(config));
                }
                Err(e) => error!("cannot use the new federation statement for {domain}: {e}"),
            }
            let n = f.cut(
                domain,
                RefuseCode::Other,
                "the federation statement changed; link again",
            );
            info!("federation statement for {domain} reloaded; {n} links made again");
        }
        Err(e) => error!(
            "the federation statement for {domain} cannot be used ({e}); keeping the previous one"
        ),
    }
}

pub(crate) async fn watch(w: Watched, interval: Duration) {
    let core = w.core.clone();
    let mut file = PolledFile::new(&core.config().tls.crl, "the revocation list").await;
    let mut statements = Vec::new();
    if let Some(f) = core.federation() {
        for p in f.all() {
            statements.push((
                p.config.domain.clone(),
                PolledFile::new(&p.config.statement, "a federation statement").await,
            ));
        }
    }
    let mut stale_reported = false;
    loop {
        tokio::time::sleep(interval).await;
        for (domain, statement) in &mut statements {
            if statement.changed().await.is_some() {
                reload_statement(&w, domain);
            }
        }
        if let Some(bytes) = file.changed().await {
            match Crl::parse(&bytes, &w.tls.ca).and_then(|crl| apply(&w, crl)) {
                Ok(()) => {
                    info!("revocation list {} reloaded", file.path().display());
                    stale_reported = false;
                }
                Err(e) => error!(
                    "the revocation list {} cannot be used ({e}); keeping the previous one",
                    file.path().display()
                ),
            }
        }
        let now = core.clock().now();
        for id in core.units().cut_expired(now) {
            warn!(node = %id, "certificate expired: connection closed");
        }
        let stale_since = {
            let trust = core.trust().current();
            trust.crl.is_stale(now).then_some(trust.crl.next_update)
        };
        if let Some(next_update) = stale_since
            && !stale_reported
        {
            stale_reported = true;
            error!(
                "the revocation list went stale at {}: refusing every node until it is renewed (gongwen-certs crl)",
                next_update.map(rfc3339).unwrap_or_default()
            );
            // New handshakes already fail (the verifier enforces the
            // next-update time); close the connections admitted before.
            core.units().cut_where(
                |_, _| true,
                RefuseCode::CrlStale,
                "the hub's revocation list is stale",
            );
        }
    }
}
