//! Where one recipient's copy of a document we sent stands, judged from
//! the receipts this unit holds for it: the rule behind `status`, the
//! console's 签收情况 and 汇总. On the wire (the control socket's JSON) it
//! is the word the hub uses for the same state, so scripts see one
//! vocabulary.

use std::fmt;

use gongwen_common::receipt::ReceiptKind;
use gongwen_common::supervision::DeliveryState;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyState {
    /// Still with this agent: claimed, not yet taken by the hub.
    Waiting,
    /// Given up on before the hub took it (its files are in failed/).
    NotSent,
    /// Taken by the hub; where the copy is now.
    At(DeliveryState),
}

impl CopyState {
    /// The state the receipts kept for one recipient show. The recipient's
    /// own answer outranks everything (a 签收 or 退回 is final); a recall
    /// outranks delivery; a copy with no receipt yet is queued at the hub.
    pub fn from_receipts(kinds: &[ReceiptKind], recalled: bool) -> CopyState {
        let has = |k: ReceiptKind| kinds.contains(&k);
        CopyState::At(if has(ReceiptKind::Rejected) {
            DeliveryState::Rejected
        } else if has(ReceiptKind::Acknowledged) {
            DeliveryState::Acknowledged
        } else if recalled {
            DeliveryState::Recalled
        } else if has(ReceiptKind::Quarantined) {
            DeliveryState::Quarantined
        } else if has(ReceiptKind::Delivered) {
            DeliveryState::Delivered
        } else {
            DeliveryState::Queued
        })
    }

    /// The word for it in `status` and the control socket's JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            CopyState::Waiting => "waiting",
            CopyState::NotSent => "not sent",
            CopyState::At(d) => d.as_str(),
        }
    }

    pub fn parse(word: &str) -> Option<CopyState> {
        use DeliveryState as D;
        Some(match word {
            "waiting" => CopyState::Waiting,
            "not sent" => CopyState::NotSent,
            "queued" => CopyState::At(D::Queued),
            "delivered" => CopyState::At(D::Delivered),
            "quarantined" => CopyState::At(D::Quarantined),
            "acknowledged" => CopyState::At(D::Acknowledged),
            "rejected" => CopyState::At(D::Rejected),
            "recalled" => CopyState::At(D::Recalled),
            _ => return None,
        })
    }

    /// What a clerk reads for it.
    pub fn label(self) -> &'static str {
        use DeliveryState as D;
        match self {
            CopyState::Waiting | CopyState::At(D::Queued) => "待送达",
            CopyState::NotSent => "未发出",
            CopyState::At(D::Delivered) => "已送达",
            CopyState::At(D::Acknowledged) => "已签收",
            CopyState::At(D::Rejected) => "已退回",
            CopyState::At(D::Quarantined) => "已隔离",
            CopyState::At(D::Recalled) => "已撤回",
        }
    }

    /// Whether the recipient may still sign for it (so recall and urge
    /// apply): not answered, not withdrawn, and sent at all.
    pub fn is_open(self) -> bool {
        match self {
            CopyState::Waiting => true,
            CopyState::NotSent => false,
            CopyState::At(d) => !d.is_closed(),
        }
    }

    pub fn is_signed_for(self) -> bool {
        self == CopyState::At(DeliveryState::Acknowledged)
    }

    pub fn is_returned(self) -> bool {
        self == CopyState::At(DeliveryState::Rejected)
    }
}

impl From<DeliveryState> for CopyState {
    fn from(d: DeliveryState) -> CopyState {
        CopyState::At(d)
    }
}

impl fmt::Display for CopyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state compares equal to its word, so `state == "delivered"` reads as
/// the JSON does.
impl PartialEq<str> for CopyState {
    fn eq(&self, word: &str) -> bool {
        self.as_str() == word
    }
}

impl PartialEq<&str> for CopyState {
    fn eq(&self, word: &&str) -> bool {
        self.as_str() == *word
    }
}

impl Serialize for CopyState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CopyState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<CopyState, D::Error> {
        let word = String::deserialize(d)?;
        CopyState::parse(&word)
            .ok_or_else(|| serde::de::Error::custom(format!("no copy state is called {word:?}")))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use DeliveryState as D;
    use ReceiptKind as K;

    fn of(kinds: &[ReceiptKind]) -> CopyState {
        CopyState::from_receipts(kinds, false)
    }

    #[test]
    fn no_receipt_yet_is_queued_at_the_hub() {
        assert_eq!(of(&[]), CopyState::At(D::Queued));
        assert_eq!(of(&[K::Accepted]), CopyState::At(D::Queued));
    }

    #[test]
    fn a_delivered_receipt_makes_it_delivered() {
        assert_eq!(of(&[K::Delivered]), CopyState::At(D::Delivered));
    }

    #[test]
    fn a_sign_for_outranks_delivery_whatever_the_order_of_receipts() {
        assert_eq!(
            of(&[K::Acknowledged, K::Delivered]),
            CopyState::At(D::Acknowledged)
        );
        assert_eq!(
            of(&[K::Delivered, K::Acknowledged]),
            CopyState::At(D::Acknowledged)
        );
    }

    #[test]
    fn a_return_is_final_even_beside_a_sign_for() {
        // One copy can hold only one answer, but should two ever be kept,
        // the return is the one that must not be hidden.
        assert_eq!(
            of(&[K::Delivered, K::Acknowledged, K::Rejected]),
            CopyState::At(D::Rejected)
        );
    }

    #[test]
    fn a_recall_outranks_delivery_but_not_an_answer_given_before_it() {
        assert_eq!(
            CopyState::from_receipts(&[K::Delivered], true),
            CopyState::At(D::Recalled)
        );
        assert_eq!(
            CopyState::from_receipts(&[K::Delivered, K::Acknowledged], true),
            CopyState::At(D::Acknowledged)
        );
        assert_eq!(
            CopyState::from_receipts(&[], true),
            CopyState::At(D::Recalled)
        );
    }

    #[test]
    fn quarantine_shows_unless_answered() {
        assert_eq!(of(&[K::Quarantined]), CopyState::At(D::Quarantined));
        assert_eq!(
            CopyState::from_receipts(&[K::Quarantined], true),
            CopyState::At(D::Recalled)
        );
    }

    #[test]
    fn every_state_reads_back_from_its_word() {
        let all = [
            CopyState::Waiting,
            CopyState::NotSent,
            CopyState::At(D::Queued),
            CopyState::At(D::Delivered),
            CopyState::At(D::Quarantined),
            CopyState::At(D::Acknowledged),
            CopyState::At(D::Rejected),
            CopyState::At(D::Recalled),
        ];
        for s in all {
            assert_eq!(CopyState::parse(s.as_str()), Some(s), "{s}");
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(serde_json::from_str::<CopyState>(&json).unwrap(), s);
        }
        assert_eq!(CopyState::parse("signed"), None);
        assert!(serde_json::from_str::<CopyState>("\"signed\"").is_err());
    }

    #[test]
    fn the_words_are_the_hubs_words() {
        for d in [D::Queued, D::Delivered, D::Acknowledged, D::Rejected] {
            assert_eq!(CopyState::from(d).as_str(), d.as_str());
        }
        assert_eq!(
            serde_json::to_string(&CopyState::NotSent).unwrap(),
            "\"not sent\""
        );
    }

    #[test]
    fn only_copies_still_to_answer_are_open() {
        assert!(CopyState::Waiting.is_open());
        assert!(CopyState::At(D::Queued).is_open());
        assert!(CopyState::At(D::Delivered).is_open());
        assert!(CopyState::At(D::Quarantined).is_open());
        assert!(!CopyState::At(D::Acknowledged).is_open());
        assert!(!CopyState::At(D::Rejected).is_open());
        assert!(!CopyState::At(D::Recalled).is_open());
        assert!(!CopyState::NotSent.is_open());
    }

    #[test]
    fn every_state_has_a_chinese_label() {
        assert_eq!(CopyState::At(D::Acknowledged).label(), "已签收");
        assert_eq!(CopyState::At(D::Rejected).label(), "已退回");
        assert_eq!(CopyState::Waiting.label(), CopyState::At(D::Queued).label());
        assert!(
            CopyState::NotSent
                .label()
                .chars()
                .all(|c| !c.is_ascii_alphabetic())
        );
    }

    #[test]
    fn a_state_compares_with_its_word() {
        assert!(CopyState::At(D::Delivered) == "delivered");
        assert!(CopyState::At(D::Delivered) != "acknowledged");
        assert!(CopyState::At(D::Acknowledged).is_signed_for());
        assert!(CopyState::At(D::Rejected).is_returned());
    }
}
