//! What the hub records of a document it accepted (from its signed
//! header, never its content): the record the lifecycle, the escalation
//! ladder and supervision read, and the store keeps.

use gongwen_common::envelope::Urgency;
use gongwen_common::supervision::FileRow;
use gongwen_common::{DocId, NodeId};
use serde::{Deserialize, Serialize};

/// A document the hub accepted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DocRecord {
    pub doc_id: DocId,
    pub sender: NodeId,
    pub to: Vec<NodeId>,
    pub cc: Vec<NodeId>,
    pub title: String,
    pub doc_number: String,
    pub doc_type: String,
    pub urgency: Urgency,
    pub deadline: Option<i64>,
    pub created_ms: i64,
    pub accepted_ms: i64,
    /// Hex SHA-256 of the signed header.
    pub digest: String,
    pub content_len: u64,
    pub files: Vec<FileRow>,
    /// True once every recipient has it and the ciphertext was removed.
    #[serde(default)]
    pub content_removed: bool,
    /// What it asks of its recipients, and what it answers.
    #[serde(default, skip_serializing_if = "DocLinks::is_empty")]
    pub links: DocLinks,
}

/// A document's links as the hub keeps them (from its signed header).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DocLinks {
    /// The answer each recipient is asked for.
    #[serde(default)]
    pub reply: Option<gongwen_common::links::ReplyKind>,
    /// By when (Unix ms, by the hub's clock for a span).
    #[serde(default)]
    pub reply_by_ms: Option<i64>,
    /// When the ladder's first step for a missing answer is due (set at
    /// acceptance from `[[escalation]]`); armed once a copy is signed for.
    #[serde(default)]
    pub reply_first_due_ms: Option<i64>,
    /// The document this one answers.
    #[serde(default)]
    pub answers: Option<DocId>,
    #[serde(default)]
    pub decision: Option<gongwen_common::links::Decision>,
    /// The original this one forwards (转发).
    #[serde(default)]
    pub forwards: Option<DocId>,
}

impl DocLinks {
    pub fn is_empty(&self) -> bool {
        *self == DocLinks::default()
    }
}

impl DocRecord {
    pub fn recipients(&self) -> Vec<NodeId> {
        let mut out = self.to.clone();
        let in_to: std::collections::HashSet<&NodeId> = self.to.iter().collect();
        for c in &self.cc {
            if !in_to.contains(c) {
                out.push(c.clone());
            }
        }
        out
    }

    /// The copies the escalation ladder runs for, and a 催办 that names no
    /// unit reaches: the 主送 ones. A 抄送 copy is for information; it is
    /// urged only when its sender names it in a 催办.
    pub fn main_copies(&self) -> std::collections::HashSet<&NodeId> {
        self.to.iter().collect()
    }
}
