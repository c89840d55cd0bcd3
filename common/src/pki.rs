//! What a certificate says about its holder, and loading key material.
//!
//! A gongwen certificate carries the node id in its CN and in a SAN URI
//! `gongwen:node/<id>`, its role in a SAN URI `gongwen:role/<role>` (and, for
//! people reading it with openssl, in the OU), and the unit's display name in
//! the O attribute. Only the SAN URIs are authoritative.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use ::time::OffsetDateTime;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use x509_parser::prelude::{GeneralName, parse_x509_certificate, parse_x509_crl};

use crate::id::{InvalidNodeId, NodeId};

/// SAN URI prefix naming the node a certificate belongs to.
pub const SAN_NODE_PREFIX: &str = "gongwen:node/";
/// SAN URI prefix naming the role a certificate grants.
pub const SAN_ROLE_PREFIX: &str = "gongwen:role/";

/// What a certificate allows its holder to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The hub: server authentication only.
    Hub,
    /// An ordinary unit.
    Node,
    /// A unit that may also query supervision data and receives escalations.
    Supervisor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Hub => "hub",
            Role::Node => "node",
            Role::Supervisor => "supervisor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = PkiError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hub" => Ok(Role::Hub),
            "node" => Ok(Role::Node),
            "supervisor" => Ok(Role::Supervisor),
            other => Err(PkiError::UnknownRole(other.to_owned())),
        }
    }
}

/// Errors reading or interpreting certificates, keys and CRLs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no {what} in PEM form")]
    NoPem { path: PathBuf, what: &'static str },
    #[error("{path} is not a readable {what}: {detail}")]
    BadPem {
        path: PathBuf,
        what: &'static str,
        detail: String,
    },
    #[error("the certificate cannot be parsed as X.509")]
    CertificateParse,
    #[error("the certificate names no gongwen node (no SAN URI {SAN_NODE_PREFIX}<id>)")]
    MissingNodeId,
    #[error("the certificate carries an invalid node id: {0}")]
    InvalidNodeId(#[from] InvalidNodeId),
    #[error("the certificate names more than one gongwen node")]
    AmbiguousNodeId,
    #[error("the certificate's CN {cn:?} does not match its node id {id}")]
    CommonNameMismatch { cn: String, id: NodeId },
    #[error("the certificate grants no gongwen role (no SAN URI {SAN_ROLE_PREFIX}<role>)")]
    MissingRole,
    #[error("unknown role {0:?}: expected hub, node or supervisor")]
    UnknownRole(String),
    #[error("the revocation list cannot be parsed")]
    CrlParse,
    #[error("the revocation list was not signed by this deployment's CA")]
    CrlNotFromCa,
    #[error("TLS configuration refused: {0}")]
    Tls(#[from] rustls::Error),
    #[error("client certificate verifier refused the CA or CRL: {0}")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
    #[error("the TLS configuration cannot be used for QUIC: {0}")]
    Quic(String),
    #[error("the private key is not an ECDSA P-256 key in PKCS#8 form")]
    KeyNotEcdsaP256,
    #[error("the private key does not belong to the certificate")]
    KeyDoesNotMatchCertificate,
    #[error("signing failed")]
    SigningFailed,
    #[error("the SM2 key binding cannot be used: {0}")]
    Sm2Binding(String),
    #[error("the CA certificate's crypto suite: {0}")]
    Suite(String),
    #[error("the certificate of {id} is not valid: {problem}")]
    Invalid { id: String, problem: CertProblem },
}

/// Why a certificate was refused when it was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertProblem {
    Revoked,
    Expired,
    NotYetValid,
    /// Not issued (or not signed) by this deployment's CA.
    NotFromCa,
    /// The revocation list is past its next-update time, so whether the
    /// certificate is revoked cannot be known: nothing is trusted until a
    /// fresh list arrives (fail closed, but try again later).
    RevocationListStale {
        since: OffsetDateTime,
    },
    Other(String),
}

impl CertProblem {
    /// True when the certificate itself may be fine and the same check can
    /// pass later without anyone changing it (a fresh CRL arrives).
    pub fn is_transient(&self) -> bool {
        matches!(self, CertProblem::RevocationListStale { .. })
    }
}

impl fmt::Display for CertProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertProblem::Revoked => f.write_str("it has been revoked"),
            CertProblem::Expired => f.write_str("it has expired"),
            CertProblem::NotYetValid => f.write_str("it is not valid yet"),
            CertProblem::NotFromCa => f.write_str("it was not issued by this deployment's CA"),
            CertProblem::RevocationListStale { since } => write!(
                f,
                "the revocation list went stale at {}, so revocation cannot be checked",
                crate::timefmt::rfc3339(*since)
            ),
            CertProblem::Other(s) => f.write_str(s),
        }
    }
}

/// The identity a verified certificate establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    pub id: NodeId,
    pub role: Role,
    /// The unit's display name (subject O), if the certificate carries one.
    pub name: Option<String>,
    /// The serial number's content octets, as CRLs list them.
    pub serial: Vec<u8>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl CertIdentity {
    /// Read id, role, name, serial and validity from a DER certificate.
    ///
    /// This does not verify the certificate; call it on a certificate that
    /// TLS has already verified, or to describe one on disk.
    pub fn from_der(der: &[u8]) -> Result<Self, PkiError> {
        let (_, cert) = parse_x509_certificate(der).map_err(|_| PkiError::CertificateParse)?;
        let mut ids = Vec::new();
        let mut roles = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                if let GeneralName::URI(uri) = name {
                    if let Some(id) = uri.strip_prefix(SAN_NODE_PREFIX) {
                        ids.push(NodeId::parse(id)?);
                    } else if let Some(role) = uri.strip_prefix(SAN_ROLE_PREFIX) {
                        roles.push(role.parse::<Role>()?);
                    }
                }
            }
        }
        let id = match ids.as_slice() {
            [] => return Err(PkiError::MissingNodeId),
            [one] => one.clone(),
            _ => return Err(PkiError::AmbiguousNodeId),
        };
        let role = match roles.as_slice() {
            [one] => *one,
            _ => return Err(PkiError::MissingRole),
        };
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|a| a.as_str().ok())
            .unwrap_or_default();
        if cn != id.as_str() {
            return Err(PkiError::CommonNameMismatch {
                cn: cn.to_owned(),
                id,
            });
        }
        let name = cert
            .subject()
            .iter_organization()
            .next()
            .and_then(|a| a.as_str().ok())
            .map(str::to_owned);
        Ok(CertIdentity {
            id,
            role,
            name,
            serial: cert.raw_serial().to_vec(),
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
        })
    }
}

/// Lower-case hex, the form `openssl x509 -serial` and our registry use.
pub fn serial_hex(serial: &[u8]) -> String {
    serial.iter().map(|b| format!("{b:02x}")).collect()
}

fn read(path: &Path) -> Result<Vec<u8>, PkiError> {
    std::fs::read(path).map_err(|source| PkiError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Load every certificate in a PEM file (leaf first for a chain).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::BadPem {
            path: path.to_owned(),
            what: "certificate",
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(PkiError::NoPem {
            path: path.to_owned(),
            what: "certificate",
        });
    }
    Ok(certs)
}

/// Load a PKCS#8 (or SEC1) private key from a PEM file.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, PkiError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => PkiError::NoPem {
            path: path.to_owned(),
            what: "private key",
        },
        other => PkiError::BadPem {
            path: path.to_owned(),
            what: "private key",
            detail: other.to_string(),
        },
    })
}

/// A CRL read from disk, checked against the CA, with what it revokes.
#[derive(Debug, Clone)]
pub struct Crl {
    pub der: CertificateRevocationListDer<'static>,
    pub this_update: OffsetDateTime,
    /// When the CA promised a newer list; past it the list is stale and the
    /// hub refuses everyone (fail closed).
    pub next_update: Option<OffsetDateTime>,
    revoked: HashSet<Vec<u8>>,
}

impl Crl {
    /// Parse a CRL (PEM or DER) and check its signature against the CA.
    pub fn parse(bytes: &[u8], ca: &CertificateDer<'_>) -> Result<Self, PkiError> {
        let der = if bytes.starts_with(b"-----") {
            CertificateRevocationListDer::from_pem_slice(bytes).map_err(|_| PkiError::CrlParse)?
        } else {
            CertificateRevocationListDer::from(bytes.to_vec())
        };
        let (_, ca_cert) = parse_x509_certificate(ca).map_err(|_| PkiError::CertificateParse)?;
        let (this_update, next_update, revoked) = {
            let (_, crl) = parse_x509_crl(&der).map_err(|_| PkiError::CrlParse)?;
            crl.verify_signature(ca_cert.public_key())
                .map_err(|_| PkiError::CrlNotFromCa)?;
            let revoked = crl
                .iter_revoked_certificates()
                .map(|r| r.raw_serial().to_vec())
                .collect();
            (
                crl.last_update().to_datetime(),
                crl.next_update().map(|t| t.to_datetime()),
                revoked,
            )
        };
        Ok(Crl {
            der,
            this_update,
            next_update,
            revoked,
        })
    }

    /// Read and check a CRL file.
    pub fn load(path: &Path, ca: &CertificateDer<'_>) -> Result<Self, PkiError> {
        Crl::parse(&read(path)?, ca)
    }

    pub fn is_revoked(&self, serial: &[u8]) -> bool {
        self.revoked.contains(serial)
    }

    /// True when `now` is past the list's next-update time.
    pub fn is_stale(&self, now: OffsetDateTime) -> bool {
        self.next_update.is_some_and(|next| now > next)
    }
}

/// Checks certificates by the rules of admission: chain to the CA,
/// validity at `now`, purpose, and — when there is a CRL — not revoked by
/// a CRL that is itself fresh at `now`. The hub judges every connection
/// with it (resumed or not), and hub and agents judge every signer of a
/// document, receipt or key binding with it.
#[derive(Debug, Clone)]
pub struct CertChecker {
    units: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    hub: Arc<rustls::client::WebPkiServerVerifier>,
    /// The CRL's next-update time: past it nothing passes.
    crl_next_update: Option<OffsetDateTime>,
    /// The deployment's crypto suite (its CA's): statements of the other
    /// suite are refused.
    suite: crate::suite::Suite,
    /// Certificates that passed, by SHA-256, with when they passed. Every
    /// document and receipt names its signer's certificate, and checking
    /// the chain again each time (two ECDSA verifications and a parse) was
    /// a large share of the CPU a busy unit spent. A checker's CRL never
    /// changes (a new CRL makes a new checker), so a pass stays good until
    /// the certificate expires or the CRL goes stale — or the clock goes
    /// back before the pass.
    passed: Arc<std::sync::Mutex<PassedCerts>>,
}

/// Certificate SHA-256 → who it is and when it passed.
type PassedCerts = HashMap<[u8; 32], (CertIdentity, OffsetDateTime)>;

/// Passed certificates a checker remembers; far more than units exist.
const PASSED_CAPACITY: usize = 4096;

impl CertChecker {
    pub fn new(ca: &CertificateDer<'static>, crl: Option<&Crl>) -> Result<Self, PkiError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.clone())?;
        let roots = Arc::new(roots);
        let provider = crate::provider::provider();
        let mut units = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots.clone(),
            provider.clone(),
        );
        let mut hub = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider);
        if let Some(crl) = crl {
            units = units
                .with_crls([crl.der.clone()])
                .enforce_revocation_expiration();
            hub = hub
                .with_crls([crl.der.clone()])
                .enforce_revocation_expiration();
        }
        let suite =
            crate::suite::Suite::of_ca(ca.as_ref()).map_err(|e| PkiError::Suite(e.to_string()))?;
        Ok(CertChecker {
            units: units.build()?,
            hub: hub.build()?,
            crl_next_update: crl.and_then(|c| c.next_update),
            suite,
            passed: Default::default(),
        })
    }

    /// The deployment's crypto suite.
    pub fn suite(&self) -> crate::suite::Suite {
        self.suite
    }

    /// A statement signed in the deployment's suite passes; one of the
    /// other suite is refused, with the reason.
    pub fn check_suite(&self, signed_in: crate::suite::Suite) -> Result<(), String> {
        if signed_in == self.suite {
            Ok(())
        } else {
            Err(format!(
                "it is signed in the {signed_in} suite, but this deployment uses the {} suite ({})",
                self.suite,
                self.suite.algorithms()
            ))
        }
    }

    /// Check a certificate at `now` and return whose it is. Unit
    /// certificates (node, supervisor) and the hub's are checked each for
    /// its own purpose.
    pub fn check(&self, cert: &[u8], now: OffsetDateTime) -> Result<CertIdentity, PkiError> {
        if let Some(since) = self.crl_next_update.filter(|next| now > *next) {
            let id = CertIdentity::from_der(cert)?.id.to_string();
            return Err(PkiError::Invalid {
                id,
                problem: CertProblem::RevocationListStale { since },
            });
        }
        let key = crate::digest::sha256(cert);
        let remembered = self
            .passed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        if let Some((identity, passed_at)) = remembered
            && passed_at <= now
            && now <= identity.not_after
        {
            return Ok(identity);
        }
        let identity = self.check_uncached(cert, now)?;
        let mut passed = self.passed.lock().unwrap_or_else(|p| p.into_inner());
        if passed.len() >= PASSED_CAPACITY {
            passed.clear();
        }
        passed.insert(key, (identity.clone(), now));
        Ok(identity)
    }

    fn check_uncached(&self, cert: &[u8], now: OffsetDateTime) -> Result<CertIdentity, PkiError> {
        let identity = CertIdentity::from_der(cert)?;
        let der = CertificateDer::from(cert);
        let at = crate::provider::unix_time(now);
        let result =
            if identity.role == Role::Hub {
                let name = rustls::pki_types::ServerName::try_from(identity.id.to_string())
                    .map_err(|e| PkiError::Invalid {
                        id: identity.id.to_string(),
                        problem: CertProblem::Other(e.to_string()),
                    })?;
                rustls::client::danger::ServerCertVerifier::verify_server_cert(
                    self.hub.as_ref(),
                    &der,
                    &[],
                    &name,
                    &[],
                    at,
                )
                .map(|_| ())
            } else {
                self.units.verify_client_cert(&der, &[], at).map(|_| ())
            };
        result.map_err(|e| PkiError::Invalid {
            id: identity.id.to_string(),
            problem: match e {
                rustls::Error::InvalidCertificate(c) => cert_problem(&c, self.crl_next_update),
                other => CertProblem::Other(other.to_string()),
            },
        })?;
        Ok(identity)
    }
}

/// What rustls's refusal of a certificate means, in our terms.
pub fn cert_problem(
    e: &rustls::CertificateError,
    crl_next_update: Option<OffsetDateTime>,
) -> CertProblem {
    use rustls::CertificateError as C;
    match e {
        C::Revoked => CertProblem::Revoked,
        C::Expired | C::ExpiredContext { .. } => CertProblem::Expired,
        C::NotValidYet | C::NotValidYetContext { .. } => CertProblem::NotYetValid,
        C::UnknownIssuer | C::BadSignature => CertProblem::NotFromCa,
        C::ExpiredRevocationList | C::ExpiredRevocationListContext { .. } => {
            CertProblem::RevocationListStale {
                since: crl_next_update.unwrap_or(OffsetDateTime::UNIX_EPOCH),
            }
        }
        other => CertProblem::Other(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_round_trips_through_its_name() {
        for r in [Role::Hub, Role::Node, Role::Supervisor] {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!(matches!(
            "admin".parse::<Role>(),
            Err(PkiError::UnknownRole(_))
        ));
    }

    #[test]
    fn serial_hex_is_lower_case_and_padded() {
        assert_eq!(serial_hex(&[0x0a, 0xff, 0x00]), "0aff00");
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(matches!(
            CertIdentity::from_der(b"not a certificate"),
            Err(PkiError::CertificateParse)
        ));
    }
}
