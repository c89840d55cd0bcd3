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

use gongwen_common::pki::{Crl, PkiError};
use gongwen_common::timefmt::rfc3339;
use gongwen_common::tls::hub_server_config;
use gongwen_common::wire::RefuseCode;
use tracing::{error, info, warn};

use crate::server::Shared;

/// How often the CRL file is read.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Install `crl`: new handshakes are checked against it and live
/// connections it revokes are closed.
pub(crate) fn apply(shared: &Shared, crl: Crl) -> Result<(), PkiError> {
    let t = &shared.tls;
    let config = hub_server_config(
        t.chain.clone(),
        t.key.clone_key(),
        &t.ca,
        &crl,
        shared.clock.clone(),
    )?;
    shared.endpoint.set_server_config(Some(config));
    shared.set_checker(gongwen_common::pki::CertChecker::new(&t.ca, Some(&crl))?);
    let cut = shared.registry().cut_where(
        |_, serial| crl.is_revoked(serial),
        RefuseCode::Revoked,
        "certificate revoked",
    );
    for id in cut {
        warn!(node = %id, "certificate revoked: connection closed");
    }
    *shared.crl() = crl;
    // Agents check documents and receipts against the CRL too: push it.
    for wake in shared.registry().all_wakes() {
        wake.crl.notify_one();
    }
    Ok(())
}

pub(crate) async fn watch(shared: Arc<Shared>, interval: Duration) {
    let path = shared.config.tls.crl.clone();
    let mut last = tokio::fs::read(&path).await.ok();
    let mut stale_reported = false;
    let mut read_error_reported = false;
    loop {
        tokio::time::sleep(interval).await;
        match tokio::fs::read(&path).await {
            Err(e) => {
                if !read_error_reported {
                    error!(
                        "cannot read the revocation list {}: {e}; keeping the previous one",
                        path.display()
                    );
                    read_error_reported = true;
                }
            }
            Ok(bytes) if last.as_ref() != Some(&bytes) => {
                read_error_reported = false;
                match Crl::parse(&bytes, &shared.tls.ca).and_then(|crl| apply(&shared, crl)) {
                    Ok(()) => {
                        info!("revocation list {} reloaded", path.display());
                        stale_reported = false;
                    }
                    Err(e) => error!(
                        "the revocation list {} cannot be used ({e}); keeping the previous one",
                        path.display()
                    ),
                }
                last = Some(bytes);
            }
            Ok(_) => {}
        }
        let now = shared.clock.now();
        for id in shared.registry().cut_expired(now) {
            warn!(node = %id, "certificate expired: connection closed");
        }
        let stale_since = {
            let crl = shared.crl();
            crl.is_stale(now).then(|| crl.next_update)
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
            shared.registry().cut_where(
                |_, _| true,
                RefuseCode::CrlStale,
                "the hub's revocation list is stale",
            );
        }
    }
}
