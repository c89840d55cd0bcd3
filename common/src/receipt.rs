//! Receipts (回执): signed statements that a document reached a stage.
//!
//! | kind           | issued by            | meaning                                  |
//! |----------------|----------------------|------------------------------------------|
//! | `accepted`     | hub                  | the hub holds the document durably       |
//! | `delivered`    | recipient agent      | verified, decrypted, written to the inbox|
//! | `quarantined`  | recipient agent      | failed verification; `reason` says why   |
//! | `acknowledged` | recipient, by a clerk| signed for (签收); `by` names the person  |
//! | `rejected`     | recipient, by a clerk| returned (退回); `reason` required        |
//!
//! Each names the document and the SHA-256 of its signed header, so a
//! receipt is evidence for exactly one version of one document.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::codec::{CodecError, Reader, Writer};
use crate::id::{DocId, NodeId};
use crate::pki::{CertChecker, PkiError, Role};
use crate::signed::{SignedError, Signer, Statement, StatementKind};

/// What a receipt attests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptKind {
    Accepted,
    Delivered,
    Quarantined,
    Acknowledged,
    Rejected,
}

impl ReceiptKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptKind::Accepted => "accepted",
            ReceiptKind::Delivered => "delivered",
            ReceiptKind::Quarantined => "quarantined",
            ReceiptKind::Acknowledged => "acknowledged",
            ReceiptKind::Rejected => "rejected",
        }
    }
    /// The byte that stands for this kind in encodings and store keys.
    pub fn code(self) -> u8 {
        match self {
            ReceiptKind::Accepted => 1,
            ReceiptKind::Delivered => 2,
            ReceiptKind::Quarantined => 3,
            ReceiptKind::Acknowledged => 4,
            ReceiptKind::Rejected => 5,
        }
    }
    pub fn from_code(c: u8) -> Result<Self, CodecError> {
        Ok(match c {
            1 => ReceiptKind::Accepted,
            2 => ReceiptKind::Delivered,
            3 => ReceiptKind::Quarantined,
            4 => ReceiptKind::Acknowledged,
            5 => ReceiptKind::Rejected,
            other => {
                return Err(CodecError::BadCode {
                    what: "receipt kind",
                    code: other.into(),
                });
            }
        })
    }
}

/// The content of a receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub doc_id: DocId,
    pub kind: ReceiptKind,
    /// The recipient it is about (the hub's own id for `accepted`).
    pub recipient: NodeId,
    /// Who signed it: the hub for `accepted`, the recipient otherwise.
    pub issuer: NodeId,
    /// SHA-256 of the document's signed header.
    pub doc_digest: [u8; 32],
    /// When (Unix milliseconds, issuer's clock).
    pub time_ms: i64,
    /// The person who signed for it (acknowledged).
    pub by: String,
    /// Why (rejected, quarantined).
    pub reason: String,
}

/// Why a receipt cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    #[error("not a receipt: {0}")]
    Statement(SignedError),
    #[error("malformed receipt: {0}")]
    Malformed(#[from] CodecError),
    #[error("the receipt's signature does not verify")]
    BadSignature,
    #[error("the receipt says it is from {issuer} but is signed by {signer}")]
    WrongSigner { issuer: NodeId, signer: NodeId },
    #[error("a {kind} receipt must be issued by {expected}, not by {issuer}")]
    WrongIssuer {
        kind: &'static str,
        expected: &'static str,
        issuer: NodeId,
    },
    #[error("the signer's certificate is not valid: {0}")]
    Certificate(String),
    /// The signer cannot be judged now (the revocation list is stale); the
    /// same receipt may pass later.
    #[error("the signer's certificate cannot be checked now: {0}")]
    SignerUnjudged(String),
    #[error("the receipt is refused: {0}")]
    Suite(String),
}

impl ReceiptError {
    /// True when the same receipt may pass later.
    pub fn is_transient(&self) -> bool {
        matches!(self, ReceiptError::SignerUnjudged(_))
    }
}

impl From<SignedError> for ReceiptError {
    fn from(e: SignedError) -> Self {
        match e {
            SignedError::BadSignature => ReceiptError::BadSignature,
            other => ReceiptError::Statement(other),
        }
    }
}

impl Receipt {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = Writer(&mut out);
        w.raw(self.doc_id.as_bytes());
        w.u8(self.kind.code());
        w.str(self.recipient.as_str());
        w.str(self.issuer.as_str());
        w.raw(&self.doc_digest);
        w.i64(self.time_ms);
        w.str(&self.by);
        w.str(&self.reason);
        out
    }

    fn decode(body: &[u8]) -> Result<Receipt, CodecError> {
        let mut r = Reader::new(body);
        let receipt = Receipt {
            doc_id: DocId::from_bytes(r.array()?),
            kind: ReceiptKind::from_code(r.u8()?)?,
            recipient: r.node_id()?,
            issuer: r.node_id()?,
            doc_digest: r.array()?,
            time_ms: r.i64()?,
            by: r.string()?,
            reason: r.string()?,
        };
        r.finish()?;
        Ok(receipt)
    }

    /// Sign this receipt; the signer must be its issuer.
    pub fn sign(&self, signer: &Signer) -> Result<Statement, PkiError> {
        signer.sign(StatementKind::Receipt, self.encode())
    }

    /// Read a receipt this node already verified when it arrived (from its
    /// own store), without checking the signature again: for display.
    pub fn decode_stored(bytes: &[u8]) -> Result<Receipt, ReceiptError> {
        let st = Statement::decode(bytes, StatementKind::Receipt)?;
        Ok(Receipt::decode(&st.body)?)
    }

    /// Parse a receipt statement and check who signed it: the signature
    /// verifies, the signer is the stated issuer, the issuer is the hub
    /// for `accepted` and the recipient itself otherwise, and (with a
    /// checker) the signer's certificate is valid at `now`.
    pub fn verify(
        bytes: &[u8],
        checker: Option<&CertChecker>,
        now: OffsetDateTime,
    ) -> Result<(Receipt, Statement), ReceiptError> {
        let st = Statement::decode(bytes, StatementKind::Receipt)?;
        let receipt = Receipt::decode(&st.body)?;
        let signer = st.verify_signature()?;
        if signer.id != receipt.issuer {
            return Err(ReceiptError::WrongSigner {
                issuer: receipt.issuer,
                signer: signer.id,
            });
        }
        match receipt.kind {
            ReceiptKind::Accepted if signer.role != Role::Hub => {
                return Err(ReceiptError::WrongIssuer {
                    kind: "accepted",
                    expected: "the hub",
                    issuer: receipt.issuer,
                });
            }
            ReceiptKind::Accepted => {}
            _ if signer.role == Role::Hub || receipt.issuer != receipt.recipient => {
                return Err(ReceiptError::WrongIssuer {
                    kind: receipt.kind.as_str(),
                    expected: "the recipient",
                    issuer: receipt.issuer,
                });
            }
            _ => {}
        }
        if let Some(checker) = checker {
            checker
                .check_suite(st.suite())
                .map_err(ReceiptError::Suite)?;
            checker.check(&st.cert, now).map_err(|e| match e {
                crate::pki::PkiError::Invalid { problem, .. } if problem.is_transient() => {
                    ReceiptError::SignerUnjudged(problem.to_string())
                }
                other => ReceiptError::Certificate(other.to_string()),
            })?;
        }
        Ok((receipt, st))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::tests::TestPki;

    fn id(s: &str) -> NodeId {
        NodeId::parse(s).unwrap()
    }

    fn delivered(recipient: &str) -> Receipt {
        Receipt {
            doc_id: DocId::generate(),
            kind: ReceiptKind::Delivered,
            recipient: id(recipient),
            issuer: id(recipient),
            doc_digest: [9; 32],
            time_ms: 1_700_000_000_000,
            by: String::new(),
            reason: String::new(),
        }
    }

    #[test]
    fn a_recipients_receipt_verifies_and_round_trips() {
        let pki = TestPki::new();
        let harbin = pki.signer("harbin-gov", Role::Node);
        let r = delivered("harbin-gov");
        let bytes = r.sign(&harbin).unwrap().encode();
        let (back, _) =
            Receipt::verify(&bytes, Some(&pki.checker()), OffsetDateTime::now_utc()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn a_receipt_of_the_other_suite_is_refused_with_the_reason() {
        use crate::suite::Suite;
        let now = OffsetDateTime::now_utc();
        // A standard deployment: a GM-signed receipt is refused.
        let pki = TestPki::new();
        let (gm, _) = crate::signed::tests::gm(&pki.signer("harbin-gov", Role::Node));
        let bytes = delivered("harbin-gov").sign(&gm).unwrap().encode();
        match Receipt::verify(&bytes, Some(&pki.checker()), now) {
            Err(ReceiptError::Suite(why)) => {
                assert!(why.contains("signed in the gm suite"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        // A GM deployment: the GM receipt passes, a standard one does not.
        let pki = TestPki::for_suite(Suite::Gm);
        let harbin = pki.signer("harbin-gov", Role::Node);
        let (gm, _) = crate::signed::tests::gm(&harbin);
        let checker = pki.checker();
        assert_eq!(checker.suite(), Suite::Gm);
        let bytes = delivered("harbin-gov").sign(&gm).unwrap().encode();
        let (_, st) = Receipt::verify(&bytes, Some(&checker), now).unwrap();
        assert_eq!(st.suite(), Suite::Gm);
        let bytes = delivered("harbin-gov").sign(&harbin).unwrap().encode();
        assert!(matches!(
            Receipt::verify(&bytes, Some(&checker), now),
            Err(ReceiptError::Suite(_))
        ));
    }

    #[test]
    fn a_receipt_signed_by_the_wrong_node_is_refused() {
        let pki = TestPki::new();
        let daqing = pki.signer("daqing-gov", Role::Node);
        // daqing-gov claims harbin-gov received it.
        let bytes = delivered("harbin-gov").sign(&daqing).unwrap().encode();
        assert!(matches!(
            Receipt::verify(&bytes, None, OffsetDateTime::now_utc()),
            Err(ReceiptError::WrongSigner { .. })
        ));
        // Issuer and signer agree, but the issuer is not the recipient.
        let mut r = delivered("harbin-gov");
        r.issuer = id("daqing-gov");
        let bytes = r.sign(&daqing).unwrap().encode();
        assert!(matches!(
            Receipt::verify(&bytes, None, OffsetDateTime::now_utc()),
            Err(ReceiptError::WrongIssuer { .. })
        ));
    }

    #[test]
    fn only_the_hub_issues_accepted() {
        let pki = TestPki::new();
        let harbin = pki.signer("harbin-gov", Role::Node);
        let hub = pki.signer("hub", Role::Hub);
        let mut r = delivered("hub");
        r.kind = ReceiptKind::Accepted;
        r.issuer = id("hub");
        assert!(
            Receipt::verify(
                &r.sign(&hub).unwrap().encode(),
                Some(&pki.checker()),
                OffsetDateTime::now_utc()
            )
            .is_ok()
        );
        r.issuer = id("harbin-gov");
        assert!(matches!(
            Receipt::verify(
                &r.sign(&harbin).unwrap().encode(),
                None,
                OffsetDateTime::now_utc()
            ),
            Err(ReceiptError::WrongIssuer { .. })
        ));
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let pki = TestPki::new();
        let harbin = pki.signer("harbin-gov", Role::Node);
        let bytes = delivered("harbin-gov").sign(&harbin).unwrap().encode();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x04;
            assert!(
                Receipt::verify(&b, Some(&pki.checker()), OffsetDateTime::now_utc()).is_err(),
                "flip at {i} accepted"
            );
        }
    }
}
