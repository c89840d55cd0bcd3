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
}

impl Notice {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_bytes(b: &[u8]) -> Option<Notice> {
        serde_json::from_slice(b).ok()
    }
}
