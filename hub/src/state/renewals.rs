//! Renewal without a visit: certificates the administrator hands the hub
//! (`gongwen-hub renewals add`, or files dropped into
//! `<data_dir>/renewals/`), pushed to each unit over its authenticated
//! link. The unit checks and installs it and connects again with it; once
//! the hub sees the unit connect with that certificate, the file goes.
//!
//! The folder is read every second (a few small files), like the CRL.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gongwen_common::NodeId;
use gongwen_common::pki::{CertChecker, CertIdentity, Role, serial_hex};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use time::OffsetDateTime;
use tracing::debug;

use crate::state::polled::Swapped;

/// The folder under the data folder.
pub const FOLDER: &str = "renewals";

pub fn folder(data_dir: &Path) -> PathBuf {
    data_dir.join(FOLDER)
}

/// A certificate waiting to reach its unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renewal {
    pub der: Vec<u8>,
    pub serial: String,
    pub not_after: OffsetDateTime,
    pub path: PathBuf,
}

/// What to do with a unit's renewal, given the certificate it connected
/// with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The unit does not have it yet: push it.
    Push,
    /// The unit connected with it: done, the file can go.
    Installed,
    /// The unit already has a certificate lasting as long or longer.
    Outdated,
}

/// The decision, as a plain function.
pub fn action(
    renewal: &Renewal,
    connected_serial: &str,
    connected_not_after: OffsetDateTime,
) -> Action {
    if renewal.serial == connected_serial {
        Action::Installed
    } else if renewal.not_after <= connected_not_after {
        Action::Outdated
    } else {
        Action::Push
    }
}

/// Check a certificate for handing out: from our CA and valid now (by
/// `checker`, which has the CRL), for a unit (not a hub).
pub fn check(
    der: &[u8],
    checker: &CertChecker,
    now: OffsetDateTime,
) -> Result<CertIdentity, String> {
    let who = checker
        .check(der, now)
        .map_err(|e| format!("not a valid certificate from this deployment's CA: {e}"))?;
    if who.role == Role::Hub {
        return Err("it is a hub certificate; renewals are for units".into());
    }
    Ok(who)
}

/// `gongwen-hub renewals add`: check `file` against the CA and CRL that
/// hub.toml names and put it where the hub picks it up
/// (`renewals/<id>.crt`, atomically). The unit it is for, and where it went.
pub fn add(
    config: &gongwen_common::config::HubConfig,
    file: &Path,
    now: OffsetDateTime,
) -> Result<(CertIdentity, PathBuf), String> {
    let pem = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let der = CertificateDer::from_pem_slice(&pem)
        .map_err(|e| format!("{} is not a PEM certificate: {e}", file.display()))?;
    let ca_pem = std::fs::read(&config.tls.ca)
        .map_err(|e| format!("cannot read {} (tls.ca): {e}", config.tls.ca.display()))?;
    let ca = CertificateDer::from_pem_slice(&ca_pem).map_err(|e| {
        format!(
            "{} (tls.ca) is not a PEM certificate: {e}",
            config.tls.ca.display()
        )
    })?;
    let crl = gongwen_common::material::load_crl(&config.path, &config.tls.crl, &ca)
        .map_err(|e| e.to_string())?;
    let checker = CertChecker::new(&ca, Some(&crl)).map_err(|e| e.to_string())?;
    let who = check(&der, &checker, now).map_err(|e| format!("{}: {e}", file.display()))?;
    let dir = folder(&config.data_dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let dest = dir.join(format!("{}.crt", who.id));
    gongwen_common::fsutil::write_atomic(&dest, &pem, 0o644)
        .map_err(|e| format!("cannot write {}: {e}", dest.display()))?;
    Ok((who, dest))
}

/// Read every `*.crt` in the folder, one per unit (the later certificate
/// of a unit wins). Files that cannot be read are named once and left.
pub fn read_folder(dir: &Path) -> BTreeMap<NodeId, Renewal> {
    let mut out: BTreeMap<NodeId, Renewal> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "crt") {
            continue;
        }
        let parsed = std::fs::read(&path).ok().and_then(|pem| {
            let der = CertificateDer::from_pem_slice(&pem).ok()?;
            let who = CertIdentity::from_der(&der).ok()?;
            Some((der.to_vec(), who))
        });
        let Some((der, who)) = parsed else {
            debug!(
                "renewals: {} is not a certificate; left alone",
                path.display()
            );
            continue;
        };
        let r = Renewal {
            der,
            serial: serial_hex(&who.serial),
            not_after: who.not_after,
            path,
        };
        match out.get(&who.id) {
            Some(have) if have.not_after >= r.not_after => {}
            _ => {
                out.insert(who.id, r);
            }
        }
    }
    out
}

/// The renewals waiting, replaced whole when the folder changes, and a
/// wake-up for the pushers.
#[derive(Debug, Default)]
pub struct Renewals {
    waiting: Swapped<BTreeMap<NodeId, Renewal>>,
    changed: tokio::sync::Notify,
}

impl Renewals {
    pub fn for_unit(&self, id: &NodeId) -> Option<Renewal> {
        self.waiting.current().get(id).cloned()
    }

    pub fn replace(&self, waiting: BTreeMap<NodeId, Renewal>) {
        self.waiting.replace(waiting);
        self.changed.notify_waiters();
    }

    /// Resolves at the next change of the folder (registered once
    /// enabled, so a change between a look and the wait is not missed).
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn renewal(serial: &str, not_after: OffsetDateTime) -> Renewal {
        Renewal {
            der: Vec::new(),
            serial: serial.into(),
            not_after,
            path: PathBuf::new(),
        }
    }

    #[test]
    fn a_renewal_is_pushed_until_the_unit_connects_with_it() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20000);
        let r = renewal("bb", now + time::Duration::days(365));
        assert_eq!(
            action(&r, "aa", now + time::Duration::days(10)),
            Action::Push
        );
        assert_eq!(
            action(&r, "bb", now + time::Duration::days(365)),
            Action::Installed
        );
        // A unit re-enrolled since with a longer certificate: nothing to do.
        assert_eq!(
            action(&r, "cc", now + time::Duration::days(400)),
            Action::Outdated
        );
    }
}
