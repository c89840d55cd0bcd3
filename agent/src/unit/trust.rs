//! What this unit trusts now: the deployment's CA and the newest CRL the
//! hub has given it, held as one value and swapped whole, so a check never
//! sees the CA of one moment with the CRL of another.

use std::sync::{Arc, Mutex};

use std::collections::BTreeMap;

use gongwen_common::federation::{Chain, Domain};
use gongwen_common::pki::{CertChecker, Crl, PkiError};
use gongwen_common::timefmt::rfc3339;
use gongwen_common::wire::PeerOfferKind;
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
    /// Our domain, as our hub names it (federated hubs only).
    domain: Mutex<Option<Domain>>,
    /// The other domains our hub links us to: each one's CA, reached by a
    /// chain of statements from ours, and its CRL.
    others: Mutex<BTreeMap<Domain, Other>>,
}

/// Another domain: its CA (by the chain from ours) and its CRL.
#[derive(Debug, Clone)]
struct Other {
    /// The statements from our CA to its CA.
    chain: Chain,
    ca: CertificateDer<'static>,
    crl: Option<Crl>,
    checker: Option<Arc<CertChecker>>,
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
            domain: Mutex::new(None),
            others: Mutex::default(),
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

    /// Our hub said which domain we are.
    pub fn set_domain(&self, domain: Option<Domain>) {
        *self.domain.lock().unwrap_or_else(|p| p.into_inner()) = domain;
    }

    /// Our domain, if our hub is federated.
    pub fn domain(&self) -> Option<Domain> {
        self.domain
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn others(&self) -> std::sync::MutexGuard<'_, BTreeMap<Domain, Other>> {
        self.others.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take what our hub handed us of another domain: the chain of
    /// statements from our CA to its CA (each checked, of our suite), or
    /// its CRL (signed by that CA, never older than the one held).
    pub fn take_other(
        &self,
        kind: PeerOfferKind,
        domain: &Domain,
        bytes: &[u8],
    ) -> Result<(), String> {
        match kind {
            PeerOfferKind::Statement => {
                let suite = gongwen_common::suite::Suite::of_ca(self.ca.as_ref())
                    .map_err(|e| e.to_string())?;
                let chain = Chain::decode(bytes).map_err(|e| e.to_string())?;
                let ca = chain
                    .verify(self.ca.as_ref(), domain, suite)
                    .map_err(|e| format!("the trust of {domain}: {e}"))?;
                let ca = CertificateDer::from(ca);
                let mut others = self.others();
                let kept = others.get(domain).filter(|o| o.ca == ca).map(|o| Other {
                    chain: chain.clone(),
                    ..o.clone()
                });
                others.insert(
                    domain.clone(),
                    kept.unwrap_or(Other {
                        chain,
                        ca,
                        crl: None,
                        checker: None,
                    }),
                );
                Ok(())
            }
            PeerOfferKind::Crl => {
                let mut others = self.others();
                let Some(held) = others.get(domain).cloned() else {
                    return Err(format!("no trust of {domain} is held"));
                };
                let crl = Crl::parse(bytes, &held.ca).map_err(|e| e.to_string())?;
                if let Some(old) = &held.crl
                    && crl.this_update < old.this_update
                {
                    return Err(format!("an older revocation list of {domain}"));
                }
                let checker =
                    Arc::new(CertChecker::new(&held.ca, Some(&crl)).map_err(|e| e.to_string())?);
                others.insert(
                    domain.clone(),
                    Other {
                        chain: held.chain,
                        ca: held.ca,
                        crl: Some(crl),
                        checker: Some(checker),
                    },
                );
                Ok(())
            }
            PeerOfferKind::Directory => Err("an agent takes no directory this way".into()),
        }
    }

    /// Judge a signer with our CA first, then each other domain's: what
    /// `check` said with the checker that passed, and that checker's domain
    /// (`None`: ours). When none passes: a verdict of the domain whose CA
    /// did issue the signer's certificate (revoked, expired, its list
    /// stale), else our own checker's (the usual "not from our CA").
    /// `not_issued_by` tells a verdict that says only "another CA".
    pub fn check_any<T, E>(
        &self,
        check: impl Fn(&CertChecker) -> Result<T, E>,
        not_issued_by: impl Fn(&E) -> bool,
    ) -> Result<(T, Option<Domain>), E> {
        let ours = match check(&self.checker()) {
            Ok(v) => return Ok((v, None)),
            Err(e) => e,
        };
        if !not_issued_by(&ours) {
            return Err(ours);
        }
        let others: Vec<(Domain, Arc<CertChecker>)> = self
            .others()
            .iter()
            .filter_map(|(d, o)| o.checker.clone().map(|c| (d.clone(), c)))
            .collect();
        let mut theirs = None;
        for (d, checker) in others {
            match check(&checker) {
                Ok(v) => return Ok((v, Some(d))),
                Err(e) if !not_issued_by(&e) => theirs = Some(e),
                Err(_) => {}
            }
        }
        Err(theirs.unwrap_or(ours))
    }

    /// Every other domain, its CA and the statements from our CA to it
    /// (for an evidence bundle a third party checks).
    pub fn other_domains(&self) -> Vec<(Domain, CertificateDer<'static>, Chain)> {
        self.others()
            .iter()
            .map(|(d, o)| (d.clone(), o.ca.clone(), o.chain.clone()))
            .collect()
    }

    /// The first checker, ours then each other domain's, under which
    /// `passes` holds (the one that judges a forwarded original).
    pub fn find_checker(&self, passes: impl Fn(&CertChecker) -> bool) -> Option<Arc<CertChecker>> {
        let ours = self.checker();
        if passes(&ours) {
            return Some(ours);
        }
        let others: Vec<Arc<CertChecker>> = self
            .others()
            .values()
            .filter_map(|o| o.checker.clone())
            .collect();
        others.into_iter().find(|c| passes(c))
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
