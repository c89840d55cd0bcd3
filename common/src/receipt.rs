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
    /// What the recipient's clerk was shown of the document's electronic
    /// seals when signing for it (签收): empty for other kinds, and for
    /// documents without sealed OFD files.
    pub seals: Vec<SealSeen>,
}

/// One electronic seal as the recipient verified it (验章).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealSeen {
    /// The file the seal is in.
    pub file: String,
    pub outcome: SealOutcome,
    pub reason: String,
    pub seal_name: String,
    pub signer: String,
}

/// 印章有效 / 印章无效 / 无法验证.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SealOutcome {
    Valid,
    Invalid,
    Unverifiable,
}

impl SealOutcome {
    pub fn chinese(self) -> &'static str {
        match self {
            SealOutcome::Valid => "印章有效",
            SealOutcome::Invalid => "印章无效",
            SealOutcome::Unverifiable => "无法验证",
        }
    }
    fn code(self) -> u8 {
        match self {
            SealOutcome::Valid => 1,
            SealOutcome::Invalid => 2,
            SealOutcome::Unverifiable => 3,
        }
    }
    fn from_code(c: u8) -> Result<Self, CodecError> {
        Ok(match c {
            1 => SealOutcome::Valid,
            2 => SealOutcome::Invalid,
            3 => SealOutcome::Unverifiable,
            other => {
                return Err(CodecError::BadCode {
                    what: "seal outcome",
                    code: other.into(),
                });
            }
        })
    }
}

/// The most seals one receipt reports.
const MAX_SEALS: usize = 64;
/// Trailer tag of the seals (after `reason`; absent when there are none,
/// so receipts without seals encode as before).
const TRAILER_SEALS: u8 = 1;

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
        if !self.seals.is_empty() {
            w.u8(TRAILER_SEALS);
            w.u16(self.seals.len().min(MAX_SEALS) as u16);
            for seal in self.seals.iter().take(MAX_SEALS) {
                w.str(&seal.file);
                w.u8(seal.outcome.code());
                w.str(&seal.reason);
                w.str(&seal.seal_name);
                w.str(&seal.signer);
            }
        }
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
            seals: Vec::new(),
        };
        let mut receipt = receipt;
        if r.remaining() > 0 {
            let tag = r.u8()?;
            if tag != TRAILER_SEALS {
                return Err(CodecError::BadCode {
                    what: "receipt trailer",
                    code: tag.into(),
                });
            }
            let n = r.u16()? as usize;
            if n == 0 || n > MAX_SEALS {
                return Err(CodecError::TooLong {
                    len: n,
                    max: MAX_SEALS,
                });
            }
            for _ in 0..n {
                receipt.seals.push(SealSeen {
                    file: r.string()?,
                    outcome: SealOutcome::from_code(r.u8()?)?,
                    reason: r.string()?,
                    seal_name: r.string()?,
                    signer: r.string()?,
                });
            }
        }
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
            seals: Vec::new(),
        }
    }

    #[test]
    fn the_seals_a_clerk_saw_travel_in_the_signed_receipt() {
        let pki = TestPki::new();
        let harbin = pki.signer("harbin-gov", Role::Node);
        let mut r = delivered("harbin-gov");
        r.kind = ReceiptKind::Acknowledged;
        r.by = "李四".into();
        let plain_len = r.encode().len();
        r.seals = vec![
            SealSeen {
                file: "正文.ofd".into(),
                outcome: SealOutcome::Valid,
                reason: String::new(),
                seal_name: "黑龙江省人民政府".into(),
                signer: "王一".into(),
            },
            SealSeen {
                file: "附件.ofd".into(),
                outcome: SealOutcome::Invalid,
                reason: "Content.xml 在盖章后被改动".into(),
                seal_name: "某局".into(),
                signer: "张三".into(),
            },
        ];
        assert!(r.encode().len() > plain_len);
        let bytes = r.sign(&harbin).unwrap().encode();
        let (back, _) =
            Receipt::verify(&bytes, Some(&pki.checker()), OffsetDateTime::now_utc()).unwrap();
        assert_eq!(back, r);
        // An unknown trailer is refused, not skipped.
        let mut body = r.encode();
        let at = body.len() - r.encode()[plain_len..].len();
        body[at] = 9;
        assert!(Receipt::decode(&body).is_err());
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
