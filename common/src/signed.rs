//! Signed statements: a document header, a receipt or a key binding, with
//! the signer's certificate and a signature (DER) in the deployment's
//! suite ([`crate::suite`]):
//!
//! ```text
//! standard  = "GWS1" kind:u8 body:bytes cert:bytes signature:bytes
//!             ECDSA P-256 / SHA-256 by the certificate's key
//! gm        = "GWG1" kind:u8 body:bytes cert:bytes binding:bytes signature:bytes
//!             SM2 / SM3 by the key the binding names, with its distinguishing id;
//!             the binding is a standard statement by the certificate's key
//! signed    = "gongwen/1 " kind-name NUL body
//! ```
//!
//! No maintained crate makes SM2 certificates, so a unit's SM2 keys are
//! bound to it by a statement its certificate key signs (as its X25519 key
//! is today), and every GM statement carries that binding.
//!
//! The signed message is plain bytes and the signature plain DER, so
//! `openssl dgst -sha256 -verify key.pem -signature sig.der signed.bin`
//! (or `-sm3 … -sigopt distid:…` for GM) checks any statement without
//! gongwen.

use std::sync::Arc;

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::parse_x509_certificate;

use crate::codec::{CodecError, Reader, Writer};
pub use crate::digest::sha256;
use crate::pki::{CertIdentity, PkiError};
use crate::suite::Suite;

const MAGIC: &[u8; 4] = b"GWS1";
const MAGIC_GM: &[u8; 4] = b"GWG1";
/// Largest SM2 key binding carried in a GM statement (a certificate and
/// two keys).
pub const MAX_BINDING: usize = MAX_CERT + 1024;
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
    /// A unit's SM2 signing and encryption keys (GM suite), signed by its
    /// certificate key.
    Sm2KeyBinding,
    /// A peer domain's name and CA certificate, signed by our CA key
    /// ([`crate::federation`]).
    Federation,
}

impl StatementKind {
    fn code(self) -> u8 {
        match self {
            StatementKind::Document => 1,
            StatementKind::Receipt => 2,
            StatementKind::KeyBinding => 3,
            StatementKind::UnitDirectory => 4,
            StatementKind::Sm2KeyBinding => 5,
            StatementKind::Federation => 6,
        }
    }
    fn from_code(c: u8) -> Result<Self, CodecError> {
        match c {
            1 => Ok(StatementKind::Document),
            2 => Ok(StatementKind::Receipt),
            3 => Ok(StatementKind::KeyBinding),
            4 => Ok(StatementKind::UnitDirectory),
            5 => Ok(StatementKind::Sm2KeyBinding),
            6 => Ok(StatementKind::Federation),
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
            StatementKind::Sm2KeyBinding => b"gongwen/1 sm2-key-binding\0",
            StatementKind::Federation => b"gongwen/1 federation\0",
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
    #[error("the SM2 key binding is not the signer's: {0}")]
    BadBinding(String),
}

/// A signed statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub kind: StatementKind,
    pub body: Vec<u8>,
    /// The signer's certificate (DER).
    pub cert: Vec<u8>,
    /// GM suite: the signer's SM2 key binding (an encoded
    /// [`StatementKind::Sm2KeyBinding`] statement); `None`: standard.
    pub sm2_binding: Option<Vec<u8>>,
    /// The signature, DER: ECDSA P-256 / SHA-256 by the certificate's key,
    /// or SM2 / SM3 by the binding's signing key.
    pub signature: Vec<u8>,
}

impl Statement {
    /// The suite the statement is signed in.
    pub fn suite(&self) -> Suite {
        if self.sm2_binding.is_some() {
            Suite::Gm
        } else {
            Suite::Standard
        }
    }

    /// The exact bytes the signature covers.
    pub fn signed_message(&self) -> Vec<u8> {
        signed_message(self.kind, &self.body)
    }

    /// The suite's digest (SHA-256 or SM3) of the signed message: what
    /// receipts cite as the digest.
    pub fn digest(&self) -> [u8; 32] {
        self.suite().digest(&self.signed_message())
    }

    pub fn encode(&self) -> Vec<u8> {
        let binding_len = self.sm2_binding.as_ref().map_or(0, Vec::len);
        let mut out = Vec::with_capacity(self.body.len() + self.cert.len() + binding_len + 100);
        let mut w = Writer(&mut out);
        w.raw(if self.sm2_binding.is_some() {
            MAGIC_GM
        } else {
            MAGIC
        });
        w.u8(self.kind.code());
        w.bytes(&self.body);
        w.bytes(&self.cert);
        if let Some(binding) = &self.sm2_binding {
            w.bytes(binding);
        }
        w.bytes(&self.signature);
        out
    }

    /// Parse a statement of the `expected` kind. Does not verify it.
    pub fn decode(bytes: &[u8], expected: StatementKind) -> Result<Statement, SignedError> {
        Statement::decode_within(bytes, expected, MAX_BODY)
    }

    /// [`Statement::decode`] with a body of up to `max_body` bytes: for a
    /// statement read from a local file the administrator put there (the
    /// unit directory), not from a frame.
    pub fn decode_within(
        bytes: &[u8],
        expected: StatementKind,
        max_body: usize,
    ) -> Result<Statement, SignedError> {
        let mut r = Reader::new(bytes);
        let magic = r.take(4).map_err(|_| SignedError::BadMagic)?;
        let gm = match magic {
            m if m == MAGIC => false,
            m if m == MAGIC_GM => true,
            _ => return Err(SignedError::BadMagic),
        };
        let kind = StatementKind::from_code(r.u8()?)?;
        if kind != expected {
            return Err(SignedError::WrongKind {
                expected,
                got: kind,
            });
        }
        let body = r.bytes(max_body)?.to_vec();
        let cert = r.bytes(MAX_CERT)?.to_vec();
        let sm2_binding = if gm {
            Some(r.bytes(MAX_BINDING)?.to_vec())
        } else {
            None
        };
        let signature = r.bytes(MAX_SIG)?.to_vec();
        r.finish()?;
        Ok(Statement {
            kind,
            body,
            cert,
            sm2_binding,
            signature,
        })
    }

    /// Check the signature against the certificate carried inside (for
    /// GM, against the SM2 key its binding names, the binding checked
    /// against the certificate) and say whose it is. Whether that
    /// certificate is valid (CA, time, CRL) is
    /// [`crate::pki::CertChecker`]'s question.
    pub fn verify_signature(&self) -> Result<CertIdentity, SignedError> {
        let identity =
            CertIdentity::from_der(&self.cert).map_err(|_| SignedError::BadCertificate)?;
        match &self.sm2_binding {
            None => {
                let (_, cert) =
                    parse_x509_certificate(&self.cert).map_err(|_| SignedError::BadCertificate)?;
                self.verify_with_key(cert.public_key().subject_public_key.data.as_ref())?;
            }
            Some(bytes) => {
                let binding = Sm2Binding::verify(bytes, &self.cert, &identity)?;
                crate::gm::verify(
                    &binding.sign_public,
                    &binding.distid,
                    &self.signed_message(),
                    &self.signature,
                )
                .map_err(|_| SignedError::BadSignature)?;
            }
        }
        Ok(identity)
    }

    /// The SM2 key binding of a GM statement, checked against its
    /// certificate.
    pub fn sm2_binding(&self) -> Result<Option<Sm2Binding>, SignedError> {
        let Some(bytes) = &self.sm2_binding else {
            return Ok(None);
        };
        let identity =
            CertIdentity::from_der(&self.cert).map_err(|_| SignedError::BadCertificate)?;
        Sm2Binding::verify(bytes, &self.cert, &identity).map(Some)
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
        sm2_binding: None,
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

/// A unit's SM2 keys (GM suite), bound to it by its certificate key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sm2Binding {
    pub node: crate::id::NodeId,
    /// SEC1 public keys: the signing key and the encryption key (the
    /// dual-key model, GB/T 20518).
    pub sign_public: Vec<u8>,
    pub enc_public: Vec<u8>,
    /// The distinguishing id the signing key signs with.
    pub distid: String,
    pub created_ms: i64,
}

impl Sm2Binding {
    /// The binding of a unit's SM2 signing and encryption keys.
    pub fn for_keys(
        node: crate::id::NodeId,
        sign: &crate::gm::Sm2Key,
        enc: &crate::gm::Sm2Key,
        distid: &str,
        created_ms: i64,
    ) -> Sm2Binding {
        Sm2Binding {
            node,
            sign_public: sign.public(),
            enc_public: enc.public(),
            distid: distid.to_owned(),
            created_ms,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = Writer(&mut out);
        w.str(self.node.as_str());
        w.bytes(&self.sign_public);
        w.bytes(&self.enc_public);
        w.str(&self.distid);
        w.u64(self.created_ms.max(0) as u64);
        out
    }

    pub fn decode(body: &[u8]) -> Result<Sm2Binding, SignedError> {
        let mut r = Reader::new(body);
        let node = r.node_id()?;
        let sign_public = r.bytes(65)?.to_vec();
        let enc_public = r.bytes(65)?.to_vec();
        let distid = r.string()?;
        crate::gm::check_distid(&distid).map_err(SignedError::BadBinding)?;
        let created_ms = i64::try_from(r.u64()?).unwrap_or(i64::MAX);
        r.finish()?;
        Ok(Sm2Binding {
            node,
            sign_public,
            enc_public,
            distid,
            created_ms,
        })
    }

    /// Sign this binding with the unit's certificate key (`signer`, a
    /// standard signer): the statement a GM statement carries.
    pub fn sign(&self, signer: &Signer) -> Result<Vec<u8>, PkiError> {
        signer
            .standard()
            .sign(StatementKind::Sm2KeyBinding, self.encode())
            .map(|s| s.encode())
    }

    /// Check a binding carried with a statement signed under `cert` by
    /// `identity`: signed by that certificate's key, for that unit.
    pub fn verify(
        bytes: &[u8],
        cert: &[u8],
        identity: &CertIdentity,
    ) -> Result<Sm2Binding, SignedError> {
        let st = Statement::decode(bytes, StatementKind::Sm2KeyBinding)?;
        if st.sm2_binding.is_some() {
            return Err(SignedError::BadBinding(
                "a binding is signed with the certificate key itself".into(),
            ));
        }
        st.verify_with_key(&cert_public_key(cert)?).map_err(|_| {
            SignedError::BadBinding("not signed by the signer's certificate key".into())
        })?;
        let binding = Sm2Binding::decode(&st.body)?;
        if binding.node != identity.id {
            return Err(SignedError::BadBinding(format!(
                "it binds keys to {}, not to {}",
                binding.node, identity.id
            )));
        }
        Ok(binding)
    }
}

/// The SM2 half of a GM signer: its signing key and its binding.
#[derive(Debug, Clone)]
pub struct Sm2Signer {
    key: crate::gm::Sm2Key,
    distid: String,
    /// The encoded binding statement, carried with every signature.
    binding: Vec<u8>,
}

impl Sm2Signer {
    /// `key` must be the signing key `binding` (an encoded
    /// [`StatementKind::Sm2KeyBinding`] statement) names.
    pub fn new(
        key: crate::gm::Sm2Key,
        binding: Vec<u8>,
        cert: &[u8],
    ) -> Result<Sm2Signer, PkiError> {
        let identity = CertIdentity::from_der(cert)?;
        let bound = Sm2Binding::verify(&binding, cert, &identity)
            .map_err(|e| PkiError::Sm2Binding(e.to_string()))?;
        if bound.sign_public != key.public() {
            return Err(PkiError::Sm2Binding(
                "the SM2 signing key is not the one its binding names".into(),
            ));
        }
        Ok(Sm2Signer {
            key,
            distid: bound.distid,
            binding,
        })
    }
}

/// A node's (or the hub's) signing key with its certificate; in a GM
/// deployment also its SM2 signing key, which then signs every statement
/// but its own binding.
#[derive(Clone)]
pub struct Signer {
    key: Arc<EcdsaKeyPair>,
    cert: CertificateDer<'static>,
    identity: CertIdentity,
    sm2: Option<Arc<Sm2Signer>>,
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
            sm2: None,
        })
    }

    /// The same signer signing in the GM suite with `sm2`.
    pub fn with_sm2(mut self, sm2: Sm2Signer) -> Signer {
        self.sm2 = Some(Arc::new(sm2));
        self
    }

    /// Its SM2 half, in the GM suite (kept across a renewed certificate:
    /// the binding names the certificate key, which a renewal keeps).
    pub fn sm2(&self) -> Option<&Sm2Signer> {
        self.sm2.as_deref()
    }

    /// The unit's SM2 binding with this signer's certificate in it: what
    /// a GM unit publishes so others can seal documents to it.
    pub fn sm2_reach_binding(&self) -> Option<Result<Vec<u8>, SignedError>> {
        let sm2 = self.sm2.as_deref()?;
        Some(
            Statement::decode(&sm2.binding, StatementKind::Sm2KeyBinding)
                .map(|st| st.with_cert(self.cert.to_vec()).encode()),
        )
    }

    /// The suite this signer signs in.
    pub fn suite(&self) -> Suite {
        if self.sm2.is_some() {
            Suite::Gm
        } else {
            Suite::Standard
        }
    }

    /// The certificate key alone (what signs an SM2 binding).
    fn standard(&self) -> Signer {
        Signer {
            sm2: None,
            ..self.clone()
        }
    }

    pub fn identity(&self) -> &CertIdentity {
        &self.identity
    }

    pub fn cert(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// Sign `body` as a statement of `kind`, in this signer's suite.
    pub fn sign(&self, kind: StatementKind, body: Vec<u8>) -> Result<Statement, PkiError> {
        let message = signed_message(kind, &body);
        let (signature, sm2_binding) = match &self.sm2 {
            None => (
                self.key
                    .sign(&SystemRandom::new(), &message)
                    .map_err(|_| PkiError::SigningFailed)?
                    .as_ref()
                    .to_vec(),
                None,
            ),
            Some(sm2) => (
                sm2.key
                    .sign(&sm2.distid, &message)
                    .map_err(|_| PkiError::SigningFailed)?,
                Some(sm2.binding.clone()),
            ),
        };
        Ok(Statement {
            kind,
            body,
            cert: self.cert.to_vec(),
            sm2_binding,
            signature,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use crate::envelope::tests::TestPki;
    use crate::gm::{DEFAULT_DISTID, Sm2Key};
    use crate::pki::Role;

    /// `signer` with fresh SM2 keys bound to it.
    pub(crate) fn gm(signer: &Signer) -> (Signer, Sm2Key) {
        let (sign, enc) = (Sm2Key::generate(), Sm2Key::generate());
        let binding =
            Sm2Binding::for_keys(signer.identity().id.clone(), &sign, &enc, DEFAULT_DISTID, 1)
                .sign(signer)
                .unwrap();
        let sm2 = Sm2Signer::new(sign.clone(), binding, signer.cert()).unwrap();
        (signer.clone().with_sm2(sm2), sign)
    }

    #[test]
    fn a_gm_statement_is_signed_with_sm2_under_its_binding_and_digested_with_sm3() {
        let pki = TestPki::new();
        let (signer, sign) = gm(&pki.signer("harbin-gov", Role::Node));
        assert_eq!(signer.suite(), Suite::Gm);
        let st = signer
            .sign(StatementKind::Receipt, b"delivered".to_vec())
            .unwrap();
        let back = Statement::decode(&st.encode(), StatementKind::Receipt).unwrap();
        assert_eq!(back, st);
        assert_eq!(back.suite(), Suite::Gm);
        assert_eq!(back.verify_signature().unwrap().id.as_str(), "harbin-gov");
        assert_eq!(back.digest(), crate::gm::sm3(&back.signed_message()));
        // The signature is plain SM2 over the signed message.
        crate::gm::verify(
            &sign.public(),
            DEFAULT_DISTID,
            &back.signed_message(),
            &back.signature,
        )
        .unwrap();
        let binding = back.sm2_binding().unwrap().unwrap();
        assert_eq!(binding.sign_public, sign.public());

        // One changed byte of the body: refused.
        let mut changed = st.clone();
        changed.body[0] ^= 1;
        assert_eq!(changed.verify_signature(), Err(SignedError::BadSignature));
        // A standard statement of the same body has another digest.
        let plain = pki
            .signer("harbin-gov", Role::Node)
            .sign(StatementKind::Receipt, b"delivered".to_vec())
            .unwrap();
        assert_eq!(plain.suite(), Suite::Standard);
        assert_ne!(plain.digest(), st.digest());
    }

    #[test]
    fn a_binding_must_be_the_signers_own() {
        let pki = TestPki::new();
        let harbin = pki.signer("harbin-gov", Role::Node);
        let daqing = pki.signer("daqing-gov", Role::Node);
        let (harbin_gm, _) = gm(&harbin);
        let st = harbin_gm
            .sign(StatementKind::Receipt, b"delivered".to_vec())
            .unwrap();
        // daqing-gov's certificate with harbin-gov's binding and signature.
        let stolen = Statement {
            cert: daqing.cert().to_vec(),
            ..st.clone()
        };
        assert!(matches!(
            stolen.verify_signature(),
            Err(SignedError::BadBinding(_))
        ));
        // daqing-gov's binding naming harbin-gov (signed by daqing's key).
        let (sign, enc) = (Sm2Key::generate(), Sm2Key::generate());
        let forged =
            Sm2Binding::for_keys(harbin.identity().id.clone(), &sign, &enc, DEFAULT_DISTID, 1)
                .sign(&daqing)
                .unwrap();
        let forged_st = Statement {
            sm2_binding: Some(forged.clone()),
            signature: sign.sign(DEFAULT_DISTID, &st.signed_message()).unwrap(),
            ..st.clone()
        };
        assert!(matches!(
            forged_st.verify_signature(),
            Err(SignedError::BadBinding(_))
        ));
        // A signing key the binding does not name cannot sign.
        assert!(matches!(
            Sm2Signer::new(Sm2Key::generate(), forged, harbin.cert()),
            Err(PkiError::Sm2Binding(_))
        ));
    }
}
