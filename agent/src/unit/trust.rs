//! What this unit trusts now: the deployment's CA and the newest CRL the
//! hub has given it, held as one value and swapped whole, so a check never
//! sees the CA of one moment with the CRL of another.

use std::sync::{Arc, Mutex};

use gongwen_common::pki::{CertChecker, Crl, PkiError};
use gongwen_common::timefmt::rfc3339;
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

/// Why a CRL from the hub was not taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CrlRefused {
    /// Not a CRL, or not signed by our CA.
    #[error("{0}")]
    Invalid(#[from] PkiError),
    /// Older than the one held: an older list could un-revoke a unit.
    #[error(
        "the list was issued at {}, before the one this unit holds ({})",
        rfc3339(*.offered),
        rfc3339(*.held)
    )]
    Older {
        offered: OffsetDateTime,
        held: OffsetDateTime,
    },
}

/// The CRL in force and the checker made from it.
#[derive(Debug)]
struct Current {
    checker: Arc<CertChecker>,
    /// When the CRL was issued; `None` before the hub first sent one.
    this_update: Option<OffsetDateTime>,
    /// When it goes stale.
    next_update: Option<OffsetDateTime>,
}

/// The CA and the CRL in force (see the module's documentation).
#[derive(Debug)]
pub struct Trust {
    ca: CertificateDer<'static>,
    current: Mutex<Current>,
}

impl Trust {
    /// Trust `ca`, with `crl` (the last the hub sent, kept on disk) if any.
    pub fn new(ca: CertificateDer<'static>, crl: Option<&Crl>) -> Result<Trust, PkiError> {
        let checker = Arc::new(CertChecker::new(&ca, crl)?);
        Ok(Trust {
            ca,
            current: Mutex::new(Current {
                checker,
                this_update: crl.map(|c| c.this_update),
                next_update: crl.and_then(|c| c.next_update),
            }),
        })
    }

    pub fn ca(&self) -> &CertificateDer<'static> {
        &self.ca
    }

    /// Checks signers against the CA and the CRL in force.
    pub fn checker(&self) -> Arc<CertChecker> {
        self.lock().checker.clone()
    }

    /// Parse a CRL from the hub and put it in force, unless it is not from
    /// our CA or is older than the one in force. Returns it, to be kept.
    pub fn take_crl(&self, der: &[u8]) -> Result<Crl, CrlRefused> {
        let crl = Crl::parse(der, &self.ca)?;
        let checker = Arc::new(CertChecker::new(&self.ca, Some(&crl))?);
        let mut current = self.lock();
        if let Some(held) = current.this_update
            && crl.this_update < held
        {
            return Err(CrlRefused::Older {
                offered: crl.this_update,
                held,
            });
        }
        *current = Current {
            checker,
            this_update: Some(crl.this_update),
            next_update: crl.next_update,
        };
        Ok(crl)
    }

    /// When the CRL in force goes stale, if there is one.
    pub fn crl_next_update(&self) -> Option<OffsetDateTime> {
        self.lock().next_update
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Current> {
        // One value replaced whole: a panic elsewhere leaves it consistent.
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_crl_is_taken_and_an_older_or_foreign_one_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        let mut ca = gongwen_certs::Ca::init(&d.path().join("ca"), "test", now, 30, 30).unwrap();
        let crl_at = |ca: &mut gongwen_certs::Ca, at: OffsetDateTime| {
            ca.write_crl(at, 30).unwrap();
            std::fs::read(d.path().join("ca/crl.pem")).unwrap()
        };
        let older = crl_at(&mut ca, now - time::Duration::hours(2));
        let newer = crl_at(&mut ca, now - time::Duration::hours(1));
        let trust = Trust::new(ca.cert_der().clone(), None).unwrap();
        assert!(trust.take_crl(&newer).is_ok());
        assert!(matches!(
            trust.take_crl(&older),
            Err(CrlRefused::Older { .. })
        ));
        // The same list again is fine (the hub sends it on every connection).
        assert!(trust.take_crl(&newer).is_ok());
        let other_dir = tempfile::tempdir().unwrap();
        let mut other =
            gongwen_certs::Ca::init(&other_dir.path().join("ca"), "other", now, 30, 30).unwrap();
        other.write_crl(now, 30).unwrap();
        let foreign = std::fs::read(other_dir.path().join("ca/crl.pem")).unwrap();
        assert!(matches!(
            trust.take_crl(&foreign),
            Err(CrlRefused::Invalid(_))
        ));
    }
}
