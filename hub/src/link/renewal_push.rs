//! Renewed certificates on their way: the renewals folder kept in step
//! with [`crate::state::renewals::Renewals`], and each connected unit pushed its
//! renewal until it connects with it.

use std::sync::Arc;
use std::time::Duration;

use gongwen_common::pki::{CertIdentity, serial_hex};
use gongwen_common::stream::READ_TIMEOUT;
use gongwen_common::wire::Message;
use tracing::{debug, info, warn};

use crate::state::core::Core;
use crate::state::renewals;

/// Keep [`Renewals`] in step with the folder.
pub(crate) async fn watch(core: Arc<Core>, interval: Duration) {
    let dir = renewals::folder(&core.config().data_dir);
    let mut last = None;
    loop {
        let d = dir.clone();
        let now = tokio::task::spawn_blocking(move || renewals::read_folder(&d))
            .await
            .unwrap_or_default();
        if last.as_ref() != Some(&now) {
            if !now.is_empty() {
                info!(
                    units = now.len(),
                    "certificate renewals waiting to be delivered"
                );
            }
            core.renewals().replace(now.clone());
            last = Some(now);
        }
        tokio::time::sleep(interval).await;
    }
}

/// Push the unit its renewal while the connection lives (agents of
/// protocol version 3 on).
pub(crate) async fn pusher(conn: quinn::Connection, ident: CertIdentity, core: Arc<Core>) {
    let serial = serial_hex(&ident.serial);
    loop {
        let changed = core.renewals().changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if let Some(r) = core.renewals().for_unit(&ident.id) {
            match renewals::action(&r, &serial, ident.not_after) {
                renewals::Action::Installed => {
                    info!(
                        serial = %r.serial,
                        "the unit connected with its renewed certificate; removing {}",
                        r.path.display()
                    );
                    if let Err(e) = std::fs::remove_file(&r.path) {
                        warn!("could not remove {}: {e}", r.path.display());
                    }
                }
                renewals::Action::Outdated => {
                    debug!("the unit's certificate lasts as long as its waiting renewal");
                }
                renewals::Action::Push => match push(&conn, &r.der).await {
                    Ok(()) => {
                        info!(serial = %r.serial, "renewed certificate delivered to the unit")
                    }
                    Err(e) if conn.close_reason().is_some() => {
                        debug!("renewal push ended with the connection: {e}");
                        return;
                    }
                    Err(e) => {
                        warn!(serial = %r.serial, "the unit did not take its renewed certificate: {e}");
                    }
                },
            }
        }
        tokio::select! {
            _ = changed => {}
            _ = conn.closed() => return,
        }
    }
}

async fn push(conn: &quinn::Connection, cert: &[u8]) -> Result<(), String> {
    let msg = Message::CertificateRenewal {
        cert: cert.to_vec(),
    };
    gongwen_common::stream::request_ok(conn, &msg, READ_TIMEOUT)
        .await
        .map_err(|e| gongwen_common::logsafe::Clipped(&e).to_string())
}
