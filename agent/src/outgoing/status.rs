//! What became of what this unit sent: each document's stage and each
//! recipient's [`CopyState`], from the store's records and receipts and
//! the spool. `gongwen-agent status`, the console and 汇总 read it.

use std::path::Path;

use gongwen_common::DocId;
use gongwen_common::receipt::{Receipt, ReceiptKind};
use gongwen_common::timefmt::rfc3339;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::outgoing::outbox::read_claim;
use crate::rules::copy_state::CopyState;
use crate::unit::store::{SentRecord, Store, StoreError};

/// One recipient's state in `status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecipientStatus {
    pub recipient: String,
    pub state: CopyState,
    pub delivered_at: Option<String>,
    /// Receipt kinds held from this recipient.
    pub receipts: Vec<ReceiptKind>,
    /// Why it was quarantined or returned.
    pub reason: Option<String>,
    /// Who signed for it.
    #[serde(default)]
    pub acknowledged_by: Option<String>,
    #[serde(default)]
    pub acknowledged_at: Option<String>,
    /// The electronic seals as the recipient verified them when it signed
    /// for (or returned) the document: what its clerk saw.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seals: Vec<gongwen_common::receipt::SealSeen>,
}

/// One document in `status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DocStatus {
    pub doc_id: String,
    pub title: String,
    pub doc_number: String,
    /// sending (still with this agent), sent (accepted by the hub), or
    /// failed (moved to failed/; `reason` says why)
    pub stage: String,
    /// Upload progress while sending: bytes sent and total.
    #[serde(default)]
    pub progress: Option<(u64, u64)>,
    #[serde(default)]
    pub reason: Option<String>,
    pub sent_at: Option<String>,
    pub recipients: Vec<RecipientStatus>,
    /// Units it was addressed to but not sent to (a revoked member of a
    /// group, say), each with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<crate::rules::addressing::LeftOut>,
}

fn ms_time(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .map(rfc3339)
        .unwrap_or_default()
}

pub fn doc_status(store: &Store, rec: &SentRecord) -> Result<DocStatus, StoreError> {
    let receipts = store.receipts(rec.doc_id)?;
    let recipients = rec
        .recipients
        .iter()
        .map(|r| {
            let mine: Vec<_> = receipts.iter().filter(|(who, _, _)| who == r).collect();
            let kinds: Vec<ReceiptKind> = mine.iter().map(|(_, k, _)| *k).collect();
            let state = CopyState::from_receipts(&kinds, rec.recalled.contains(r));
            let parsed = |kind: ReceiptKind| {
                mine.iter()
                    .find(|(_, k, _)| *k == kind)
                    .and_then(|(_, _, b)| Receipt::decode_stored(b).ok())
            };
            let delivered = parsed(ReceiptKind::Delivered);
            let quarantined = parsed(ReceiptKind::Quarantined);
            let acknowledged = parsed(ReceiptKind::Acknowledged);
            let rejected = parsed(ReceiptKind::Rejected);
            RecipientStatus {
                recipient: r.to_string(),
                state,
                delivered_at: delivered
                    .as_ref()
                    .or(quarantined.as_ref())
                    .map(|r| ms_time(r.time_ms)),
                receipts: kinds,
                reason: rejected
                    .as_ref()
                    .map(|x| x.reason.clone())
                    .or(quarantined.map(|q| q.reason)),
                acknowledged_by: acknowledged.as_ref().map(|a| a.by.clone()),
                acknowledged_at: acknowledged.as_ref().map(|a| ms_time(a.time_ms)),
                seals: acknowledged
                    .as_ref()
                    .or(rejected.as_ref())
                    .map(|a| a.seals.clone())
                    .unwrap_or_default(),
            }
        })
        .collect();
    Ok(DocStatus {
        doc_id: rec.doc_id.to_string(),
        title: rec.title.clone(),
        doc_number: rec.doc_number.clone(),
        stage: "sent".into(),
        progress: None,
        reason: None,
        sent_at: Some(ms_time(rec.sent_ms)),
        recipients,
        left_out: rec.left_out.clone(),
    })
}

/// `status`: one document sent or being sent, or all of them.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Statuses {
    One(Box<DocStatus>),
    All(Vec<DocStatus>),
}

pub fn status(store: &Store, spool: &Path, doc: Option<DocId>) -> Result<Statuses, StoreError> {
    match doc {
        Some(id) => match store.sent(id)? {
            Some(rec) => Ok(Statuses::One(Box::new(doc_status(store, &rec)?))),
            // Recorded as failed before its spool entry goes.
            None => match store.failed(id)? {
                Some(f) => Ok(Statuses::One(Box::new(failed_status(&f)))),
                None => being_sent_or_unknown(spool, id),
            },
        },
        None => {
            let mut all: Vec<DocStatus> = store
                .all_sent()?
                .iter()
                .map(|r| doc_status(store, r))
                .collect::<Result<_, _>>()?;
            if let Ok(entries) = std::fs::read_dir(spool) {
                let mut ids: Vec<DocId> = entries
                    .filter_map(|e| e.ok())
                    .filter_map(|e| DocId::parse(&e.file_name().to_string_lossy()).ok())
                    .collect();
                ids.sort();
                all.extend(ids.into_iter().map(|id| being_sent(spool, id)));
            }
            Ok(Statuses::All(all))
        }
    }
}

fn being_sent_or_unknown(spool: &Path, id: DocId) -> Result<Statuses, StoreError> {
    if crate::outgoing::spool::entry_in(spool, id).exists() {
        Ok(Statuses::One(Box::new(being_sent(spool, id))))
    } else {
        Err(StoreError::Record(format!(
            "no document {id} was sent from this unit"
        )))
    }
}

/// A document still with this agent (claimed, not yet taken by the hub).
fn being_sent(spool: &Path, id: DocId) -> DocStatus {
    let claim = read_claim(&crate::outgoing::spool::entry_in(spool, id)).ok();
    DocStatus {
        doc_id: id.to_string(),
        title: claim
            .as_ref()
            .map(|c| crate::outgoing::draft::default_title(&c.name))
            .unwrap_or_default(),
        doc_number: String::new(),
        stage: "sending".into(),
        progress: None,
        reason: None,
        sent_at: None,
        recipients: claim
            .map(|c| {
                vec![RecipientStatus {
                    recipient: c.to,
                    state: CopyState::Waiting,
                    delivered_at: None,
                    receipts: vec![],
                    reason: None,
                    acknowledged_by: None,
                    seals: Vec::new(),
                    acknowledged_at: None,
                }]
            })
            .unwrap_or_default(),
        left_out: Vec::new(),
    }
}

/// The status of a document given up on: why, and where its files are.
pub fn failed_status(f: &crate::unit::store::FailedRecord) -> DocStatus {
    DocStatus {
        doc_id: f.doc_id.to_string(),
        title: crate::outgoing::draft::default_title(&f.name),
        doc_number: String::new(),
        stage: "failed".into(),
        progress: None,
        reason: Some(format!("{} (files in failed/{})", f.reason, f.name)),
        sent_at: None,
        recipients: f
            .to
            .iter()
            .chain(&f.cc)
            .map(|r| RecipientStatus {
                recipient: r.clone(),
                state: CopyState::NotSent,
                delivered_at: None,
                receipts: vec![],
                reason: None,
                acknowledged_by: None,
                seals: Vec::new(),
                acknowledged_at: None,
            })
            .collect(),
        left_out: Vec::new(),
    }
}
