//! Notices the hub sends to agents: urging (催办), escalation to the
//! supervision office (督办), and recall (撤回). They travel over the
//! authenticated link as JSON; receipts, not notices, are the evidence.

use serde::{Deserialize, Serialize};

use crate::id::{DocId, NodeId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// 催办: to a unit that has not signed for a document in time.
    Urge,
    /// 督办: to the supervisors, about a unit that has not signed for it.
    Supervise,
    /// 撤回: the sender withdrew the document.
    Recall,
    /// Between hubs only: a hub further on refused the copy for `recipient`
    /// for good (`reason`), so it will never arrive; each hub back towards
    /// the sender marks its copy so.
    Undeliverable,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub kind: NoticeKind,
    pub doc_id: DocId,
    pub sender: NodeId,
    pub title: String,
    pub doc_number: String,
    /// The unit the notice is about (the late one, or the one recalled from).
    pub recipient: NodeId,
    /// The acknowledgment deadline (RFC 3339).
    pub deadline: Option<String>,
    /// How late the unit is, in seconds (urge, supervise).
    #[serde(default)]
    pub late_seconds: i64,
    #[serde(default)]
    pub urge_count: u32,
    #[serde(default)]
    pub escalation_level: u32,
    /// When the hub issued it (RFC 3339, the hub's clock).
    pub at: String,
    /// The sender's reason (recall).
    #[serde(default)]
    pub reason: String,
    /// A 督办单: the supervision office that sent this urging, and its
    /// words (none for the ladder's and the sender's urging).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pressed_by: Option<PressedBy>,
}

/// Who sent a 督办单 and what it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PressedBy {
    pub unit: NodeId,
    /// Its 单位名称, from its certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub words: String,
}

impl Notice {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_bytes(b: &[u8]) -> Option<Notice> {
        serde_json::from_slice(b).ok()
    }

    /// The escalation round a 督办 notice belongs to: every notice one run
    /// of the ladder makes carries the same `at` (the hub's clock then) and
    /// level. None for other notices.
    pub fn round(&self) -> Option<(&str, u32)> {
        (self.kind == NoticeKind::Supervise).then_some((self.at.as_str(), self.escalation_level))
    }
}

/// The 督办 notices of one escalation round for one supervision office,
/// pushed together (to agents of protocol version 5 on): a unit that lets
/// ten thousand documents go overdue makes a few pushes and one list at the
/// office, not ten thousand files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeRound {
    /// Always `supervise_round`: how a round is told from one notice.
    pub round: String,
    /// The round's time (RFC 3339, the hub's clock).
    pub at: String,
    pub escalation_level: u32,
    pub items: Vec<Notice>,
}

/// What a `Notice` message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    One(Notice),
    Round(NoticeRound),
}

const ROUND: &str = "supervise_round";

impl NoticeRound {
    pub fn new(at: String, escalation_level: u32, items: Vec<Notice>) -> NoticeRound {
        NoticeRound {
            round: ROUND.into(),
            at,
            escalation_level,
            items,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl Pushed {
    pub fn from_bytes(b: &[u8]) -> Option<Pushed> {
        if let Ok(r) = serde_json::from_slice::<NoticeRound>(b)
            && r.round == ROUND
        {
            return Some(Pushed::Round(r));
        }
        Notice::from_bytes(b).map(Pushed::One)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn supervise(doc: DocId) -> Notice {
        Notice {
            kind: NoticeKind::Supervise,
            doc_id: doc,
            sender: NodeId::parse("prov-gov").unwrap(),
            title: "通知".into(),
            doc_number: String::new(),
            recipient: NodeId::parse("daqing-gov").unwrap(),
            deadline: None,
            late_seconds: 60,
            urge_count: 1,
            escalation_level: 2,
            at: "2026-12-07T05:00:00Z".into(),
            reason: String::new(),
            pressed_by: None,
        }
    }

    #[test]
    fn a_round_and_a_single_notice_are_told_apart() {
        let one = supervise(DocId::generate());
        assert_eq!(one.round(), Some(("2026-12-07T05:00:00Z", 2)));
        assert_eq!(
            Pushed::from_bytes(&one.to_bytes()),
            Some(Pushed::One(one.clone()))
        );
        let round = NoticeRound::new(
            one.at.clone(),
            2,
            vec![one.clone(), supervise(DocId::generate())],
        );
        assert_eq!(
            Pushed::from_bytes(&round.to_bytes()),
            Some(Pushed::Round(round))
        );
        assert_eq!(Pushed::from_bytes(b"not json"), None);
    }
}
