//! The crypto suite of a deployment: which algorithms sign, digest and
//! encrypt its documents and receipts. Chosen once, when the CA is made
//! (`gongwen-certs init --suite`), and written into the CA certificate (a
//! SAN URI `gongwen:suite/<name>`, read by anyone who holds `ca.crt`);
//! hub.toml's `[crypto] suite` must say the same. The transport is TLS 1.3
//! with the ECDSA certificates either way: QUIC has no SM cipher suites.

use std::fmt;

use serde::{Deserialize, Serialize};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// The SAN URI prefix naming a CA's suite.
pub const SAN_SUITE_PREFIX: &str = "gongwen:suite/";

/// A deployment's algorithms for documents and receipts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Suite {
    /// ECDSA P-256, SHA-256, AES-256-GCM, HPKE (X25519).
    #[default]
    Standard,
    /// 国密: SM2 (signatures, key wrap), SM3, SM4-GCM.
    Gm,
}

/// Why a suite could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SuiteError {
    #[error("unknown crypto suite {0:?}: standard or gm")]
    Unknown(String),
    #[error("the CA certificate cannot be read")]
    Certificate,
    #[error("the CA certificate names two crypto suites")]
    Ambiguous,
}

impl Suite {
    pub fn parse(s: &str) -> Result<Suite, SuiteError> {
        match s {
            "standard" => Ok(Suite::Standard),
            "gm" => Ok(Suite::Gm),
            other => Err(SuiteError::Unknown(other.to_owned())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Suite::Standard => "standard",
            Suite::Gm => "gm",
        }
    }

    /// The algorithms, in words for logs and `check`.
    pub fn algorithms(self) -> &'static str {
        match self {
            Suite::Standard => "ECDSA P-256, SHA-256, AES-256-GCM, HPKE X25519",
            Suite::Gm => "SM2, SM3, SM4-GCM (国密)",
        }
    }

    /// The SAN URI a CA of this suite carries (none for the standard
    /// suite, so every CA made before suites existed is a standard one).
    pub fn san_uri(self) -> Option<String> {
        match self {
            Suite::Standard => None,
            Suite::Gm => Some(format!("{SAN_SUITE_PREFIX}{}", self.as_str())),
        }
    }

    /// The suite a CA certificate (DER) was made for.
    pub fn of_ca(der: &[u8]) -> Result<Suite, SuiteError> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|_| SuiteError::Certificate)?;
        let mut named = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                if let GeneralName::URI(uri) = name
                    && let Some(suite) = uri.strip_prefix(SAN_SUITE_PREFIX)
                {
                    named.push(Suite::parse(suite)?);
                }
            }
        }
        match named.as_slice() {
            [] => Ok(Suite::Standard),
            [one] => Ok(*one),
            _ => Err(SuiteError::Ambiguous),
        }
    }

    /// The name of this suite's digest as metadata.json and openssl give
    /// it: `sha256` or `sm3`.
    pub fn digest_name(self) -> &'static str {
        match self {
            Suite::Standard => "sha256",
            Suite::Gm => "sm3",
        }
    }

    /// The digest of this suite: SHA-256 or SM3.
    pub fn digest(self, data: &[u8]) -> [u8; 32] {
        match self {
            Suite::Standard => crate::digest::sha256(data),
            Suite::Gm => crate::gm::sm3(data),
        }
    }
}

/// Whether a hub configured for `configured` may serve a CA made for
/// `of_ca`: the reason in plain words when not.
pub fn check_hub_suite(configured: Suite, of_ca: Suite) -> Result<(), String> {
    if configured != of_ca {
        return Err(format!(
            "[crypto] suite = \"{configured}\", but the CA certificate (tls.ca) was made for the {of_ca} suite ({}): the two must agree; set [crypto] suite = \"{of_ca}\"",
            of_ca.algorithms()
        ));
    }
    Ok(())
}

/// A digest over data given in pieces, in a suite's algorithm (content
/// and file digests are computed as the bytes stream past).
#[derive(Clone)]
pub enum Hasher {
    Sha256(ring::digest::Context),
    Sm3(crate::gm::Sm3Hasher),
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hasher::Sha256(_) => "Hasher(SHA-256)",
            Hasher::Sm3(_) => "Hasher(SM3)",
        })
    }
}

impl Hasher {
    pub fn new(suite: Suite) -> Hasher {
        match suite {
            Suite::Standard => Hasher::Sha256(ring::digest::Context::new(&ring::digest::SHA256)),
            Suite::Gm => Hasher::Sm3(crate::gm::Sm3Hasher::default()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(c) => c.update(data),
            Hasher::Sm3(h) => h.update(data),
        }
    }

    pub fn finish(self) -> [u8; 32] {
        match self {
            Hasher::Sha256(c) => {
                let mut out = [0u8; 32];
                out.copy_from_slice(c.finish().as_ref());
                out
            }
            Hasher::Sm3(h) => h.finish(),
        }
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Suite {
    type Err = SuiteError;

    fn from_str(s: &str) -> Result<Suite, SuiteError> {
        Suite::parse(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ca_with(uris: &[&str]) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.subject_alt_names = uris
            .iter()
            .map(|u| rcgen::SanType::URI((*u).try_into().unwrap()))
            .collect();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn a_ca_names_its_suite_and_an_old_one_is_standard() {
        assert_eq!(Suite::of_ca(&ca_with(&[])), Ok(Suite::Standard));
        assert_eq!(Suite::of_ca(&ca_with(&["gongwen:suite/gm"])), Ok(Suite::Gm));
        assert_eq!(
            Suite::of_ca(&ca_with(&["gongwen:suite/gm", "gongwen:suite/standard"])),
            Err(SuiteError::Ambiguous)
        );
        assert_eq!(
            Suite::of_ca(&ca_with(&["gongwen:suite/rot13"])),
            Err(SuiteError::Unknown("rot13".into()))
        );
        assert_eq!(
            Suite::of_ca(b"not a certificate"),
            Err(SuiteError::Certificate)
        );
        assert_eq!(Suite::Gm.san_uri().as_deref(), Some("gongwen:suite/gm"));
        assert_eq!(Suite::Standard.san_uri(), None);
    }

    #[test]
    fn a_hub_serves_only_its_cas_suite() {
        assert_eq!(check_hub_suite(Suite::Standard, Suite::Standard), Ok(()));
        let why = check_hub_suite(Suite::Standard, Suite::Gm).unwrap_err();
        assert!(why.contains("set [crypto] suite = \"gm\""), "{why}");
        let why = check_hub_suite(Suite::Gm, Suite::Standard).unwrap_err();
        assert!(why.contains("made for the standard suite"), "{why}");
        assert_eq!(check_hub_suite(Suite::Gm, Suite::Gm), Ok(()));
    }

    #[test]
    fn a_digest_in_pieces_is_the_digest_of_the_whole() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        for suite in [Suite::Standard, Suite::Gm] {
            let mut h = Hasher::new(suite);
            for piece in data.chunks(333) {
                h.update(piece);
            }
            assert_eq!(h.finish(), suite.digest(&data), "{suite}");
        }
    }

    #[test]
    fn the_digest_follows_the_suite() {
        assert_eq!(
            Suite::Standard.digest(b"abc"),
            crate::signed::sha256(b"abc")
        );
        assert_eq!(Suite::Gm.digest(b"abc"), crate::gm::sm3(b"abc"));
        assert_ne!(Suite::Standard.digest(b"abc"), Suite::Gm.digest(b"abc"));
    }
}
