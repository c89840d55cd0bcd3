//! The unit's certificate in use: what signs its documents and receipts
//! and what it shows the hub — and its renewal without a visit.
//!
//! The administrator re-certifies the unit's key (`gongwen-certs renew`),
//! the hub pushes the new certificate over the authenticated link, and the
//! agent checks it ([`check_renewal`]: our CA, our id and role, our own key,
//! later than the one in use), writes it to `<root>/state/renewed.crt`
//! atomically (the configuration folder is read-only under systemd's
//! `ProtectSystem=strict`) and uses it from the next connection; at start it
//! prefers that file over `[tls] cert` while it is the later one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use gongwen_common::clock::Clock;
use gongwen_common::pki::{CertChecker, CertIdentity, PkiError};
use gongwen_common::signed::{Signer, cert_public_key};
use gongwen_common::tls::agent_client_config;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;

/// The file a renewed certificate is kept in, under the state folder.
pub const RENEWED_FILE: &str = "renewed.crt";

/// Whether `cert` (DER) may replace `current`: issued by our CA and valid
/// now (`checker`), for the same unit and role, certifying the same key,
/// and lasting longer. The identity it carries, or why not.
pub fn check_renewal(
    cert: &[u8],
    current: &CertIdentity,
    own_key: &[u8],
    checker: &CertChecker,
    now: OffsetDateTime,
) -> Result<CertIdentity, String> {
    let who = checker
        .check(cert, now)
        .map_err(|e| format!("it is not a valid certificate from our CA: {e}"))?;
    if who.id != current.id {
        return Err(format!(
            "it is {}'s certificate, not ours ({})",
            who.id, current.id
        ));
    }
    if who.role != current.role {
        return Err(format!(
            "it is a {} certificate; ours is a {}",
            who.role, current.role
        ));
    }
    let key = cert_public_key(cert).map_err(|e| e.to_string())?;
    if key != own_key {
        return Err("it certifies another key than ours".into());
    }
    if who.not_after <= current.not_after {
        return Err(format!(
            "it expires at {}, no later than the certificate in use",
            gongwen_common::timefmt::rfc3339(who.not_after)
        ));
    }
    Ok(who)
}

/// `renewed` signing in the suite of `before`: a renewal certifies the
/// same key, which the SM2 binding names, so the SM2 half carries over.
fn with_sm2_of(renewed: Signer, before: &Signer) -> Signer {
    match before.sm2() {
        Some(sm2) => renewed.with_sm2(sm2.clone()),
        None => renewed,
    }
}

/// The unit's own TLS material as loaded from its configuration.
pub struct OwnKeys {
    pub signer: Signer,
    pub key: PrivateKeyDer<'static>,
    /// The deployment's CA certificate.
    pub ca: CertificateDer<'static>,
}

impl std::fmt::Debug for OwnKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnKeys")
            .field("id", &self.signer.identity().id)
            .finish()
    }
}

struct InUse {
    signer: Signer,
    client: quinn::ClientConfig,
}

/// The certificate in use, its key, and the TLS client configuration
/// made from them; replaced whole when a renewal is installed.
pub struct Credentials {
    key: PrivateKeyDer<'static>,
    ca: CertificateDer<'static>,
    clock: Arc<dyn Clock>,
    renewed_path: PathBuf,
    in_use: Mutex<Arc<InUse>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("renewed_path", &self.renewed_path)
            .finish()
    }
}

impl Credentials {
    /// From the configured certificate and key; a renewed certificate in
    /// `state_dir` that passes [`check_renewal`] is used instead.
    pub fn new(
        own: OwnKeys,
        checker: &CertChecker,
        clock: Arc<dyn Clock>,
        state_dir: &Path,
    ) -> Result<Credentials, PkiError> {
        let OwnKeys { signer, key, ca } = own;
        let renewed_path = state_dir.join(RENEWED_FILE);
        let mut signer = signer;
        if let Ok(pem) = std::fs::read(&renewed_path)
            && let Ok(der) = CertificateDer::from_pem_slice(&pem)
        {
            let own_key = cert_public_key(signer.cert()).unwrap_or_default();
            match check_renewal(&der, signer.identity(), &own_key, checker, clock.now()) {
                Ok(_) => {
                    signer = with_sm2_of(Signer::new(&key, der.into_owned())?, &signer);
                    tracing::info!(
                        "using the renewed certificate {} (valid until {})",
                        renewed_path.display(),
                        gongwen_common::timefmt::rfc3339(signer.identity().not_after)
                    );
                }
                Err(why) => tracing::debug!("not using {}: {why}", renewed_path.display()),
            }
        }
        let client = agent_client_config(
            vec![signer.cert().clone()],
            key.clone_key(),
            &ca,
            clock.clone(),
        )?;
        Ok(Credentials {
            key,
            ca,
            clock,
            renewed_path,
            in_use: Mutex::new(Arc::new(InUse { signer, client })),
        })
    }

    fn current(&self) -> Arc<InUse> {
        self.in_use
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Signs documents and receipts with the certificate in use.
    pub fn signer(&self) -> Signer {
        self.current().signer.clone()
    }

    /// Who the certificate in use says we are.
    pub fn identity(&self) -> CertIdentity {
        self.current().signer.identity().clone()
    }

    /// The TLS configuration for the next connection.
    pub fn client_config(&self) -> quinn::ClientConfig {
        self.current().client.clone()
    }

    /// Check a certificate the hub pushed and, when it may replace ours,
    /// keep it (atomically, 0644) and use it from now on: for signing at
    /// once, for TLS from the next connection. Why not, otherwise.
    pub fn install_renewal(
        &self,
        cert: &[u8],
        checker: &CertChecker,
    ) -> Result<CertIdentity, String> {
        let current = self.current();
        let own_key = cert_public_key(current.signer.cert()).map_err(|e| e.to_string())?;
        let who = check_renewal(
            cert,
            current.signer.identity(),
            &own_key,
            checker,
            self.clock.now(),
        )?;
        let der = CertificateDer::from(cert.to_vec());
        let signer = with_sm2_of(
            Signer::new(&self.key, der.clone()).map_err(|e| e.to_string())?,
            &current.signer,
        );
        let client = agent_client_config(
            vec![der],
            self.key.clone_key(),
            &self.ca,
            self.clock.clone(),
        )
        .map_err(|e| e.to_string())?;
        let pem = pem_certificate(cert);
        gongwen_common::fsutil::write_atomic(&self.renewed_path, pem.as_bytes(), 0o644)
            .map_err(|e| format!("cannot keep it in {}: {e}", self.renewed_path.display()))?;
        *self.in_use.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(InUse { signer, client });
        Ok(who)
    }
}

/// A certificate in PEM, as `openssl x509` reads it.
fn pem_certificate(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use gongwen_certs::{Ca, IssueRequest, Validity};
    use gongwen_common::{NodeId, Role};

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn only_a_later_certificate_of_our_own_key_from_our_ca_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        let mut ca = Ca::init(dir.path(), "test", now, 3650, 30).unwrap();
        let id = NodeId::parse("harbin-gov").unwrap();
        let req = |id: &NodeId, days: u32, renew: bool| IssueRequest {
            id: id.clone(),
            role: Role::Node,
            name: None,
            dns: Vec::new(),
            ips: Vec::new(),
            validity: Validity::days_from(now, days),
            renew,
        };
        let first = ca.issue(&req(&id, 30, false), now).unwrap();
        let first_der = der(&first.cert_pem);
        let current = CertIdentity::from_der(&first_der).unwrap();
        let own_key = cert_public_key(&first_der).unwrap();
        let checker = CertChecker::new(ca.cert_der(), None).unwrap();

        let renewed = ca.renew(&id, None, Validity::days_from(now, 400)).unwrap();
        let who =
            check_renewal(&der(&renewed.cert_pem), &current, &own_key, &checker, now).unwrap();
        assert!(who.not_after > current.not_after);

        // Not later than the one in use.
        let shorter = ca.renew(&id, None, Validity::days_from(now, 10)).unwrap();
        let e =
            check_renewal(&der(&shorter.cert_pem), &current, &own_key, &checker, now).unwrap_err();
        assert!(e.contains("no later"), "{e}");
        // Another key (issued anew).
        let rekeyed = ca.issue(&req(&id, 400, true), now).unwrap();
        let e =
            check_renewal(&der(&rekeyed.cert_pem), &current, &own_key, &checker, now).unwrap_err();
        assert!(e.contains("another key"), "{e}");
        // Another unit.
        let daqing = ca
            .issue(&req(&NodeId::parse("daqing-gov").unwrap(), 400, false), now)
            .unwrap();
        let e =
            check_renewal(&der(&daqing.cert_pem), &current, &own_key, &checker, now).unwrap_err();
        assert!(e.contains("daqing-gov"), "{e}");
        // Another CA.
        let other_dir = tempfile::tempdir().unwrap();
        let mut other = Ca::init(other_dir.path(), "other", now, 3650, 30).unwrap();
        let foreign = other.issue(&req(&id, 400, false), now).unwrap();
        let e =
            check_renewal(&der(&foreign.cert_pem), &current, &own_key, &checker, now).unwrap_err();
        assert!(e.contains("not a valid certificate from our CA"), "{e}");
    }

    #[test]
    fn pem_round_trips() {
        for len in [0usize, 1, 2, 3, 47, 48, 49, 700] {
            let der: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
            let pem = pem_certificate(&der);
            let back = CertificateDer::from_pem_slice(pem.as_bytes());
            if len == 0 {
                continue;
            }
            assert_eq!(back.unwrap().as_ref(), der.as_slice(), "{len}");
        }
    }
}
