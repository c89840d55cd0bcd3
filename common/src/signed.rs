//! Signed statements: a document header, a receipt or a key binding, with
//! the signer's certificate and an ECDSA P-256 / SHA-256 signature (DER).
//!
//! ```text
//! statement = "GWS1" kind:u8 body:bytes cert:bytes signature:bytes
//! signed    = "gongwen/1 " kind-name NUL body
//! ```
//!
//! The signed message is plain bytes and the signature plain DER, so
//! `openssl dgst -sha256 -verify key.pem -signature sig.der signed.bin`
//! checks any statement without gongwen.

use std::sync::Arc;

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::parse_x509_certificate;

use crate::codec::{CodecError, Reader, Writer};
use crate::pki::{CertIdentity, PkiError};

const MAGIC: &[u8; 4] = b"GWS1";
/// Largest body of a statement.
pub const MAX_BODY: usize = 1 << 20;
/// Largest certificate carried in a statement.
pub const MAX_CERT: usize = 16 * 1024;
/// Largest signature (a P-256 DER signature is at most 72 bytes).
pub const MAX_SIG: usize = 256;

/// What a statement is; part of what is signed, so one kind cannot be
/// passed off as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    Document,
    Receipt,
    KeyBinding,
    /// The CA's list of enrolled units (signed by the CA key itself).
    UnitDirectory,
}

impl StatementKind {
    fn code(self) -> u8 {
        match self {
            StatementKind::Document => 1,
            StatementKind::Receipt => 2,
            StatementKind::KeyBinding => 3,
            StatementKind::UnitDirectory => 4,
        }
    }
    fn from_code(c: u8) -> Result<Self, CodecError> {
        match c {
            1 => Ok(StatementKind::Document),
            2 => Ok(StatementKind::Receipt),
            3 => Ok(StatementKind::KeyBinding),
            4 => Ok(StatementKind::UnitDirectory),
            other => Err(CodecError::BadCode {
                what: "statement kind",
                code: other.into(),
            }),
        }
    }
    /// The domain-separation prefix of the signed message.
    pub fn domain(self) -> &'static [u8] {
        match self {
            StatementKind::Document => b"gongwen/1 document\0",
            StatementKind::Receipt => b"gongwen/1 receipt\0",
            StatementKind::KeyBinding => b"gongwen/1 key-binding\0",
            StatementKind::UnitDirectory => b"gongwen/1 unit-directory\0",
        }
    }
}

/// Why a statement cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignedError {
    #[error("not a gongwen signed statement")]
    BadMagic,
    #[error("expected a {expected:?} statement, got a {got:?}")]
    WrongKind {
        expected: StatementKind,
        got: StatementKind,
    },
    #[error("malformed statement: {0}")]
    Codec(#[from] CodecError),
    #[error("the signer's certificate cannot be read")]
    BadCertificate,
    #[error("the signature does not verify with the signer's certificate")]
    BadSignature,
}

/// A signed statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub kind: StatementKind,
    pub body: Vec<u8>,
    /// The signer's certificate (DER).
    pub cert: Vec<u8>,
    /// ECDSA P-256 SHA-256 signature, DER.
    pub signature: Vec<u8>,
}

impl Statement {
    /// The exact bytes the signature covers.
    pub fn signed_message(&self) -> Vec<u8> {
        signed_message(self.kind, &self.body)
    }

    /// SHA-256 of the signed message: what receipts cite as the digest.
    pub fn digest(&self) -> [u8; 32] {
        sha256(&self.signed_message())
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + self.cert.len() + 100);
        let mut w = Writer(&mut out);
        w.raw(MAGIC);
        w.u8(self.kind.code());
        w.bytes(&self.body);
        w.bytes(&self.cert);
        w.bytes(&self.signature);
        out
    }

    /// Parse a statement of the `expected` kind. Does not verify it.
    pub fn decode(bytes: &[u8], expected: StatementKind) -> Result<Statement, SignedError> {
        let mut r = Reader::new(bytes);
        if r.take(4).map_err(|_| SignedError::BadMagic)? != MAGIC {
            return Err(SignedError::BadMagic);
        }
        let kind = StatementKind::from_code(r.u8()?)?;
        if kind != expected {
            return Err(SignedError::WrongKind {
                expected,
                got: kind,
            });
        }
        let body = r.bytes(MAX_BODY)?.to_vec();
        let cert = r.bytes(MAX_CERT)?.to_vec();
        let signature = r.bytes(MAX_SIG)?.to_vec();
        r.finish()?;
        Ok(Statement {
            kind,
            body,
            cert,
            signature,
        })
    }

    /// Check the signature against the certificate carried inside and say
    /// whose it is. Whether that certificate is valid (CA, time, CRL) is
    /// [`crate::pki::CertChecker`]'s question.
    pub fn verify_signature(&self) -> Result<CertIdentity, SignedError> {
        let (_, cert) =
            parse_x509_certificate(&self.cert).map_err(|_| SignedError::BadCertificate)?;
        self.verify_with_key(cert.public_key().subject_public_key.data.as_ref())?;
        CertIdentity::from_der(&self.cert).map_err(|_| SignedError::BadCertificate)
    }

    /// Check the signature against a P-256 public key (the uncompressed
    /// point), whatever certificate is carried — for statements signed
    /// before their certificate existed, and for the CA's own.
    pub fn verify_with_key(&self, public_key: &[u8]) -> Result<(), SignedError> {
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, public_key)
            .verify(&self.signed_message(), &self.signature)
            .map_err(|_| SignedError::BadSignature)
    }

    /// The same statement carrying `cert` (the signature does not cover it).
    pub fn with_cert(mut self, cert: Vec<u8>) -> Statement {
        self.cert = cert;
        self
    }
}

/// Sign `body` with a bare PKCS#8 P-256 key: a statement without a
/// certificate, to which [`Statement::with_cert`] adds one later (a unit's
/// key binding made with its CSR, before the CA has certified the key) —
/// or carrying `cert` when the signer is not a unit (the CA).
pub fn sign_with_key(
    pkcs8: &[u8],
    kind: StatementKind,
    body: Vec<u8>,
    cert: Vec<u8>,
) -> Result<Statement, PkiError> {
    let rng = SystemRandom::new();
    let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8, &rng)
        .map_err(|_| PkiError::KeyNotEcdsaP256)?;
    let sig = key
        .sign(&rng, &signed_message(kind, &body))
        .map_err(|_| PkiError::SigningFailed)?;
    Ok(Statement {
        kind,
        body,
        cert,
        signature: sig.as_ref().to_vec(),
    })
}

/// The P-256 public key (uncompressed point) in a certificate.
pub fn cert_public_key(cert: &[u8]) -> Result<Vec<u8>, SignedError> {
    let (_, parsed) = parse_x509_certificate(cert).map_err(|_| SignedError::BadCertificate)?;
    Ok(parsed.public_key().subject_public_key.data.to_vec())
}

pub fn signed_message(kind: StatementKind, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(kind.domain().len() + body.len());
    m.extend_from_slice(kind.domain());
    m.extend_from_slice(body);
    m
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// A node's (or the hub's) signing key with its certificate.
#[derive(Clone)]
pub struct Signer {
    key: Arc<EcdsaKeyPair>,
    cert: CertificateDer<'static>,
    identity: CertIdentity,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("id", &self.identity.id)
            .finish()
    }
}

impl Signer {
    /// From a PKCS#8 key and the certificate issued for it.
    pub fn new(key: &PrivateKeyDer<'_>, cert: CertificateDer<'static>) -> Result<Signer, PkiError> {
        let PrivateKeyDer::Pkcs8(pkcs8) = key else {
            return Err(PkiError::KeyNotEcdsaP256);
        };
        let key = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            pkcs8.secret_pkcs8_der(),
            &SystemRandom::new(),
        )
        .map_err(|_| PkiError::KeyNotEcdsaP256)?;
        let identity = CertIdentity::from_der(&cert)?;
        let (_, parsed) = parse_x509_certificate(&cert).map_err(|_| PkiError::CertificateParse)?;
        if parsed.public_key().subject_public_key.data.as_ref() != key.public_key().as_ref() {
            return Err(PkiError::KeyDoesNotMatchCertificate);
        }
        Ok(Signer {
            key: Arc::new(key),
            cert,
            identity,
        })
    }

    pub fn identity(&self) -> &CertIdentity {
        &self.identity
    }

    pub fn cert(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// Sign `body` as a statement of `kind`.
    pub fn sign(&self, kind: StatementKind, body: Vec<u8>) -> Result<Statement, PkiError> {
        let sig = self
            .key
            .sign(&SystemRandom::new(), &signed_message(kind, &body))
            .map_err(|_| PkiError::SigningFailed)?;
        Ok(Statement {
            kind,
            body,
            cert: self.cert.to_vec(),
            signature: sig.as_ref().to_vec(),
        })
    }
}
