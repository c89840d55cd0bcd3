//! The hub's durable state, in one redb database (`store.redb`).
//!
//! Blobs too large for it (document content) live in the spool; this
//! holds everything else, and every change that must happen together
//! happens in one transaction (fsync on commit). The methods are blocking:
//! async callers go through [`Store::run`], which uses `spawn_blocking`.
//!
//! | table        | key                         | value                              |
//! |--------------|-----------------------------|------------------------------------|
//! | `docs`       | doc id                      | [`DocRecord`] (JSON)               |
//! | `headers`    | doc id                      | signed header statement            |
//! | `accepted`   | doc id                      | the hub's `accepted` receipt       |
//! | `delivery`   | (doc id, recipient)         | [`DeliveryRecord`] (JSON)          |
//! | `pending`    | (recipient, doc id)         | () — documents still to push       |
//! | `receipts`   | (doc id, recipient, kind)   | signed receipt                     |
//! | `forward`    | (node, sequence)            | [`Push`]: a receipt or notice for it|
//! | `bindings`   | node id                     | signed encryption-key binding      |
//! | `partial`    | doc id                      | [`PartialUpload`] (JSON)           |
//! | `counters`   | name                        | u64                                |
//! | `ladder`     | (due ms, doc id, recipient) | next escalation step to run        |

use std::path::Path;
use std::sync::Arc;

use gongwen_common::envelope::Urgency;
use gongwen_common::receipt::{Receipt, ReceiptKind};
use gongwen_common::{DocId, NodeId};
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

const DOCS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("docs");
const HEADERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("headers");
const ACCEPTED: TableDefinition<&[u8], &[u8]> = TableDefinition::new("accepted");
const DELIVERY: TableDefinition<(&[u8], &str), &[u8]> = TableDefinition::new("delivery");
const PENDING: TableDefinition<(&str, &[u8]), ()> = TableDefinition::new("pending");
const RECEIPTS: TableDefinition<(&[u8], &str, u8), &[u8]> = TableDefinition::new("receipts");
const FORWARD: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("forward");
const BINDINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("bindings");
const PARTIAL: TableDefinition<&[u8], &[u8]> = TableDefinition::new("partial");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");
const LADDER: TableDefinition<(u64, &[u8], &str), u32> = TableDefinition::new("ladder");

pub use gongwen_common::kvstore::StoreError;
use gongwen_common::kvstore::{from_json as parse, to_json as json};

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
}

/// A file as the hub may show it (name and size; never content).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileRow {
    pub name: String,
    pub kind: String,
    pub size: u64,
}

impl DocRecord {
    pub fn recipients(&self) -> Vec<NodeId> {
        let mut out = self.to.clone();
        for c in &self.cc {
            if !out.contains(c) {
                out.push(c.clone());
            }
        }
        out
    }
}

/// Where one recipient's copy stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Queued,
    Delivered,
    Quarantined,
    Acknowledged,
    Rejected,
    Recalled,
}

impl DeliveryState {
    /// No more urging: signed for, returned or withdrawn.
    pub fn is_closed(self) -> bool {
        matches!(
            self,
            DeliveryState::Acknowledged | DeliveryState::Rejected | DeliveryState::Recalled
        )
    }
}

/// One escalation step that ran.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StepRun {
    pub step: u32,
    pub action: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub state: DeliveryState,
    pub delivered_ms: Option<i64>,
    /// Why it was quarantined.
    pub reason: Option<String>,
    #[serde(default)]
    pub deadline_ms: i64,
    #[serde(default)]
    pub acknowledged_ms: Option<i64>,
    #[serde(default)]
    pub acknowledged_by: Option<String>,
    #[serde(default)]
    pub rejected_ms: Option<i64>,
    #[serde(default)]
    pub rejected_reason: Option<String>,
    #[serde(default)]
    pub recalled_ms: Option<i64>,
    /// Signed for or returned after the deadline.
    #[serde(default)]
    pub late: bool,
    #[serde(default)]
    pub urge_count: u32,
    /// How many escalation steps have run.
    #[serde(default)]
    pub escalation_level: u32,
    #[serde(default)]
    pub steps_run: Vec<StepRun>,
}

impl DeliveryRecord {
    #[cfg(test)]
    pub fn queued_for_tests(deadline_ms: i64) -> Self {
        Self::queued(deadline_ms)
    }

    fn queued(deadline_ms: i64) -> Self {
        DeliveryRecord {
            state: DeliveryState::Queued,
            delivered_ms: None,
            reason: None,
            deadline_ms,
            acknowledged_ms: None,
            acknowledged_by: None,
            rejected_ms: None,
            rejected_reason: None,
            recalled_ms: None,
            late: false,
            urge_count: 0,
            escalation_level: 0,
            steps_run: Vec::new(),
        }
    }
}

/// Something queued for a node: a receipt for a document it sent, or a
/// notice (urge, supervision, recall).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Push {
    Receipt(Vec<u8>),
    Notice(Vec<u8>),
}

impl Push {
    fn encode(&self) -> Vec<u8> {
        let (tag, body) = match self {
            Push::Receipt(b) => (0u8, b),
            Push::Notice(b) => (1u8, b),
        };
        let mut v = Vec::with_capacity(body.len() + 1);
        v.push(tag);
        v.extend_from_slice(body);
        v
    }
    fn decode(b: &[u8]) -> Option<Push> {
        match b.split_first()? {
            (0, rest) => Some(Push::Receipt(rest.to_vec())),
            (1, rest) => Some(Push::Notice(rest.to_vec())),
            _ => None,
        }
    }
}

/// An escalation step run by [`Store::run_due`]: who must be woken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    pub doc_id: DocId,
    pub recipient: NodeId,
    pub step: u32,
    pub notified: Vec<NodeId>,
}

/// Why a clerk's answer (acknowledged / rejected) was not recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("the document was recalled by its sender")]
    Recalled,
    #[error("the document was already {0}")]
    AlreadyAnswered(&'static str),
    #[error("the document has not been delivered to this unit")]
    NotDelivered,
}

/// An upload that has not finished: how much content is durable.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartialUpload {
    pub digest: String,
    pub durable: u64,
}

/// The outcome of recording a recipient's receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// False when the same receipt kind was already recorded.
    pub new: bool,
    pub sender: NodeId,
    /// True when this receipt was the last one the content was kept for:
    /// the document is marked as having no content in the same commit, and
    /// the caller removes the spool file.
    pub content_done: bool,
}

/// The hub's store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Arc<gongwen_common::kvstore::Db>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

/// Queue `push` for `node` inside `txn`.
fn queue_push(txn: &redb::WriteTransaction, node: &NodeId, push: &Push) -> Result<(), StoreError> {
    let mut counters = txn.open_table(COUNTERS)?;
    let seq = counters.get("forward")?.map(|g| g.value()).unwrap_or(0) + 1;
    counters.insert("forward", seq)?;
    txn.open_table(FORWARD)?
        .insert((node.as_str(), seq), push.encode().as_slice())?;
    Ok(())
}

impl Store {
    /// Open the store at `path`. A missing file is created only when
    /// `fresh_ok` (nothing else in the data directory says a store existed);
    /// a damaged file is an error, never replaced.
    pub fn open(path: &Path, fresh_ok: bool) -> Result<Store, StoreError> {
        let db = gongwen_common::kvstore::open(path, fresh_ok, "the hub's spool holds documents")?;
        let txn = db.begin_write()?;
        {
            txn.open_table(DOCS)?;
            txn.open_table(HEADERS)?;
            txn.open_table(ACCEPTED)?;
            txn.open_table(DELIVERY)?;
            txn.open_table(PENDING)?;
            txn.open_table(RECEIPTS)?;
            txn.open_table(FORWARD)?;
            txn.open_table(BINDINGS)?;
            txn.open_table(PARTIAL)?;
            txn.open_table(COUNTERS)?;
            txn.open_table(LADDER)?;
        }
        txn.commit()?;
        Ok(Store {
            db: Arc::new(gongwen_common::kvstore::Db::new(path, db)),
        })
    }

    /// Run blocking store work off the async threads.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        gongwen_common::kvstore::blocking(self, f).await
    }

    pub fn put_binding(&self, node: &NodeId, binding: &[u8]) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(BINDINGS)?.insert(node.as_str(), binding)?;
        txn.commit()?;
        Ok(())
    }

    pub fn binding(&self, node: &NodeId) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(BINDINGS)?;
        Ok(t.get(node.as_str())?.map(|g| g.value().to_vec()))
    }

    /// Every node that has published a key, with its binding: the nodes
    /// the hub knows across restarts.
    pub fn bindings(&self) -> Result<Vec<(NodeId, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(BINDINGS)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            if let Ok(id) = NodeId::parse(k.value()) {
                out.push((id, v.value().to_vec()));
            }
        }
        Ok(out)
    }

    pub fn doc(&self, doc_id: DocId) -> Result<Option<DocRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(DOCS)?;
        t.get(doc_id.as_bytes().as_slice())?
            .map(|g| parse(g.value()))
            .transpose()
    }

    pub fn header(&self, doc_id: DocId) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(HEADERS)?;
        Ok(t.get(doc_id.as_bytes().as_slice())?
            .map(|g| g.value().to_vec()))
    }

    pub fn accepted_receipt(&self, doc_id: DocId) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(ACCEPTED)?;
        Ok(t.get(doc_id.as_bytes().as_slice())?
            .map(|g| g.value().to_vec()))
    }

    pub fn partial(&self, doc_id: DocId) -> Result<Option<PartialUpload>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(PARTIAL)?;
        t.get(doc_id.as_bytes().as_slice())?
            .map(|g| parse(g.value()))
            .transpose()
    }

    pub fn set_partial(&self, doc_id: DocId, p: &PartialUpload) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(PARTIAL)?
            .insert(doc_id.as_bytes().as_slice(), json(p)?.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// Record an accepted document inside `txn`: its record, header and
    /// receipt, a queued delivery row and a pending entry per recipient,
    /// and the end of its partial upload.
    pub(crate) fn accept_in(
        txn: &redb::WriteTransaction,
        doc: &DocRecord,
        header: &[u8],
        accepted: &[u8],
        deadline_ms: i64,
        first_due_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        let key = doc.doc_id.as_bytes().as_slice();
        let queued = json(&DeliveryRecord::queued(deadline_ms))?;
        txn.open_table(DOCS)?.insert(key, json(doc)?.as_slice())?;
        txn.open_table(HEADERS)?.insert(key, header)?;
        txn.open_table(ACCEPTED)?.insert(key, accepted)?;
        let mut delivery = txn.open_table(DELIVERY)?;
        let mut pending = txn.open_table(PENDING)?;
        let mut ladder = txn.open_table(LADDER)?;
        for r in doc.recipients() {
            delivery.insert((key, r.as_str()), queued.as_slice())?;
            pending.insert((r.as_str(), key), ())?;
            if let Some(due) = first_due_ms {
                ladder.insert((due.max(0) as u64, key, r.as_str()), 0u32)?;
            }
        }
        txn.open_table(PARTIAL)?.remove(key)?;
        Ok(())
    }

    /// A write transaction (the group committer's).
    pub(crate) fn begin_write(&self) -> Result<redb::WriteTransaction, StoreError> {
        self.db.begin_write()
    }

    /// Documents waiting for `node`, oldest first (doc ids are time-ordered).
    pub fn pending_for(&self, node: &NodeId, limit: usize) -> Result<Vec<DocId>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(PENDING)?;
        let lo: (&str, &[u8]) = (node.as_str(), &[]);
        let hi: (&str, &[u8]) = (node.as_str(), &[0xff; 17]);
        let mut out = Vec::new();
        for row in t.range(lo..hi)?.take(limit) {
            let (k, _) = row?;
            let (_, id) = k.value();
            let bytes: [u8; 16] = id
                .try_into()
                .map_err(|_| StoreError::Record("pending key is not a doc id".into()))?;
            out.push(DocId::from_bytes(bytes));
        }
        Ok(out)
    }

    /// Record a recipient's `delivered` or `quarantined` receipt inside
    /// `txn`: the delivery row, the receipt, the end of the pending entry,
    /// and a copy queued for the sender — once; a repeat changes nothing.
    /// `now_ms`: when the receipt arrived by the hub's clock (the unit's
    /// own time is in the signed receipt; state times follow one clock).
    /// `None` (nothing written) for an unknown document; any error may
    /// leave `txn` half written, so it must not be committed.
    pub(crate) fn record_delivery_in(
        txn: &redb::WriteTransaction,
        r: &Receipt,
        receipt: &[u8],
        now_ms: i64,
    ) -> Result<Option<Recorded>, StoreError> {
        let (doc_id, recipient, kind) = (r.doc_id, &r.recipient, r.kind);
        let reason = (kind == ReceiptKind::Quarantined).then(|| r.reason.clone());
        let key = doc_id.as_bytes().as_slice();
        let docs = txn.open_table(DOCS)?;
        let doc: DocRecord = match docs.get(key)? {
            Some(g) => parse(g.value())?,
            None => return Ok(None),
        };
        drop(docs);
        let mut delivery = txn.open_table(DELIVERY)?;
        let current: Option<DeliveryRecord> = delivery
            .get((key, recipient.as_str()))?
            .map(|g| parse(g.value()))
            .transpose()?;
        let new = matches!(
            current,
            Some(DeliveryRecord {
                state: DeliveryState::Queued,
                ..
            })
        );
        if let (true, Some(mut rec)) = (new, current) {
            rec.state = if kind == ReceiptKind::Delivered {
                DeliveryState::Delivered
            } else {
                DeliveryState::Quarantined
            };
            rec.delivered_ms = Some(now_ms);
            rec.reason = reason;
            delivery.insert((key, recipient.as_str()), json(&rec)?.as_slice())?;
            txn.open_table(RECEIPTS)?
                .insert((key, recipient.as_str(), kind.code()), receipt)?;
            queue_push(txn, &doc.sender, &Push::Receipt(receipt.to_vec()))?;
        }
        txn.open_table(PENDING)?.remove((recipient.as_str(), key))?;
        let mut all_delivered = true;
        for r in doc.recipients() {
            if let Some(g) = delivery.get((key, r.as_str()))? {
                let d: DeliveryRecord = parse(g.value())?;
                if d.state == DeliveryState::Queued {
                    all_delivered = false;
                }
            }
        }
        drop(delivery);
        // Marked in the receipt's own commit: whoever sees the receipt
        // (the sender it is forwarded to, a supervisor) sees the hub no
        // longer keeping the content.
        let content_done = all_delivered && !doc.content_removed;
        if content_done {
            let mut doc = doc.clone();
            doc.content_removed = true;
            txn.open_table(DOCS)?.insert(key, json(&doc)?.as_slice())?;
        }
        Ok(Some(Recorded {
            new,
            sender: doc.sender.clone(),
            content_done,
        }))
    }

    /// Receipts and notices waiting to be passed on to `node`.
    pub fn forward_queue(
        &self,
        node: &NodeId,
        limit: usize,
    ) -> Result<Vec<(u64, Push)>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(FORWARD)?;
        let mut out = Vec::new();
        for row in t
            .range((node.as_str(), 0u64)..=(node.as_str(), u64::MAX))?
            .take(limit)
        {
            let (k, v) = row?;
            if let Some(p) = Push::decode(v.value()) {
                out.push((k.value().1, p));
            }
        }
        Ok(out)
    }

    /// Record a clerk's answer (acknowledged or rejected) from a recipient,
    /// and queue the receipt for the sender. Returns the sender and whether
    /// it was new; the same answer twice changes nothing.
    pub fn record_answer(
        &self,
        r: &Receipt,
        receipt: &[u8],
        now_ms: i64,
        log: &dyn Fn() -> std::io::Result<()>,
    ) -> Result<Result<(NodeId, bool), AnswerError>, StoreError> {
        let (doc_id, recipient, kind) = (r.doc_id, &r.recipient, r.kind);
        let detail = if kind == ReceiptKind::Acknowledged {
            &r.by
        } else {
            &r.reason
        };
        let key = doc_id.as_bytes().as_slice();
        let txn = self.db.begin_write()?;
        let outcome = {
            let doc: DocRecord = match txn.open_table(DOCS)?.get(key)? {
                Some(g) => parse(g.value())?,
                None => return Err(StoreError::Record(format!("no document {doc_id}"))),
            };
            let mut delivery = txn.open_table(DELIVERY)?;
            let current = delivery
                .get((key, recipient.as_str()))?
                .map(|g| parse::<DeliveryRecord>(g.value()))
                .transpose()?;
            let Some(mut rec) = current else {
                return Err(StoreError::Record(format!(
                    "{recipient} is not a recipient"
                )));
            };
            match rec.state {
                DeliveryState::Recalled => Err(AnswerError::Recalled),
                DeliveryState::Acknowledged if kind == ReceiptKind::Acknowledged => Ok(false),
                DeliveryState::Rejected if kind == ReceiptKind::Rejected => Ok(false),
                DeliveryState::Acknowledged => Err(AnswerError::AlreadyAnswered("acknowledged")),
                DeliveryState::Rejected => Err(AnswerError::AlreadyAnswered("rejected")),
                DeliveryState::Queued | DeliveryState::Quarantined => {
                    Err(AnswerError::NotDelivered)
                }
                DeliveryState::Delivered => {
                    // Late is judged by the hub's clock when the answer
                    // arrives (a unit's own clock may be off).
                    rec.late = now_ms > rec.deadline_ms;
                    if kind == ReceiptKind::Acknowledged {
                        rec.state = DeliveryState::Acknowledged;
                        rec.acknowledged_ms = Some(now_ms);
                        rec.acknowledged_by = Some(detail.to_owned());
                    } else {
                        rec.state = DeliveryState::Rejected;
                        rec.rejected_ms = Some(now_ms);
                        rec.rejected_reason = Some(detail.to_owned());
                    }
                    delivery.insert((key, recipient.as_str()), json(&rec)?.as_slice())?;
                    txn.open_table(RECEIPTS)?
                        .insert((key, recipient.as_str(), kind.code()), receipt)?;
                    queue_push(&txn, &doc.sender, &Push::Receipt(receipt.to_vec()))?;
                    log().map_err(|e| StoreError::Db(redb::Error::Io(e)))?;
                    Ok(true)
                }
            }
            .map(|new| (doc.sender.clone(), new))
        };
        txn.commit()?;
        Ok(outcome)
    }

    /// Withdraw a document for every recipient that has not answered.
    /// Returns (recipients whose queued copy was withdrawn at the hub,
    /// recipients holding it who were sent a recall notice, recipients
    /// that had already acknowledged or rejected it).
    #[allow(clippy::type_complexity)]
    pub fn recall(
        &self,
        doc_id: DocId,
        notice: &dyn Fn(&NodeId) -> Vec<u8>,
        now_ms: i64,
    ) -> Result<(Vec<NodeId>, Vec<NodeId>, Vec<NodeId>), StoreError> {
        let key = doc_id.as_bytes().as_slice();
        let txn = self.db.begin_write()?;
        let mut withdrawn = Vec::new();
        let mut notified = Vec::new();
        let mut answered = Vec::new();
        {
            let doc: DocRecord = match txn.open_table(DOCS)?.get(key)? {
                Some(g) => parse(g.value())?,
                None => return Err(StoreError::Record(format!("no document {doc_id}"))),
            };
            let mut delivery = txn.open_table(DELIVERY)?;
            let mut pending = txn.open_table(PENDING)?;
            for r in doc.recipients() {
                let current = delivery
                    .get((key, r.as_str()))?
                    .map(|g| parse::<DeliveryRecord>(g.value()))
                    .transpose()?;
                let Some(mut rec) = current else {
                    continue;
                };
                match rec.state {
                    DeliveryState::Acknowledged | DeliveryState::Rejected => {
                        answered.push(r.clone());
                        continue;
                    }
                    DeliveryState::Recalled => continue,
                    DeliveryState::Queued => {
                        pending.remove((r.as_str(), key))?;
                        withdrawn.push(r.clone());
                    }
                    DeliveryState::Delivered | DeliveryState::Quarantined => {
                        queue_push(&txn, &r, &Push::Notice(notice(&r)))?;
                        notified.push(r.clone());
                    }
                }
                rec.state = DeliveryState::Recalled;
                rec.recalled_ms = Some(now_ms);
                delivery.insert((key, r.as_str()), json(&rec)?.as_slice())?;
            }
        }
        txn.commit()?;
        Ok((withdrawn, notified, answered))
    }

    /// Run every escalation step due at `now_ms`, each exactly once: the
    /// step's record, its notices and the next step's place in the ladder
    /// are written in one transaction. `notice` makes a step's notices:
    /// (node to notify, body).
    pub fn run_due(
        &self,
        now_ms: i64,
        steps: &[gongwen_common::config::EscalationStep],
        notice: impl Fn(&DocRecord, &NodeId, &DeliveryRecord, u32) -> Vec<(NodeId, Vec<u8>)>,
    ) -> Result<Vec<Ran>, StoreError> {
        let txn = self.db.begin_write()?;
        let mut ran = Vec::new();
        {
            let mut ladder = txn.open_table(LADDER)?;
            loop {
                let first = ladder.first()?.map(|(k, v)| {
                    let (due, d, r) = k.value();
                    (due, d.to_vec(), r.to_owned(), v.value())
                });
                let Some((due, doc_key, recipient, step)) = first else {
                    break;
                };
                if due > now_ms.max(0) as u64 {
                    break;
                }
                ladder.remove((due, doc_key.as_slice(), recipient.as_str()))?;
                let (Ok(doc_bytes), Ok(recipient_id)) = (
                    <[u8; 16]>::try_from(doc_key.as_slice()),
                    NodeId::parse(&recipient),
                ) else {
                    continue;
                };
                let doc = txn
                    .open_table(DOCS)?
                    .get(doc_key.as_slice())?
                    .map(|g| parse::<DocRecord>(g.value()))
                    .transpose()?;
                let Some(doc) = doc else {
                    continue;
                };
                let mut delivery = txn.open_table(DELIVERY)?;
                let current = delivery
                    .get((doc_key.as_slice(), recipient.as_str()))?
                    .map(|g| parse::<DeliveryRecord>(g.value()))
                    .transpose()?;
                let Some(mut rec) = current else {
                    continue;
                };
                // Answered, withdrawn, or this step already ran: nothing to do.
                if rec.state.is_closed() || rec.escalation_level != step {
                    continue;
                }
                let Some(s) = steps.get(step as usize) else {
                    continue;
                };
                rec.escalation_level += 1;
                let action = match s.action {
                    gongwen_common::config::EscalationAction::Urge => {
                        rec.urge_count += 1;
                        "urge"
                    }
                    gongwen_common::config::EscalationAction::Supervise => "supervise",
                };
                rec.steps_run.push(StepRun {
                    step,
                    action: action.into(),
                    at_ms: now_ms,
                });
                let mut notified = Vec::new();
                for (node, body) in notice(&doc, &recipient_id, &rec, step) {
                    queue_push(&txn, &node, &Push::Notice(body))?;
                    notified.push(node);
                }
                delivery.insert(
                    (doc_key.as_slice(), recipient.as_str()),
                    json(&rec)?.as_slice(),
                )?;
                let next = crate::escalation::next_due_ms(
                    rec.deadline_ms,
                    rec.escalation_level as usize,
                    steps,
                );
                if let Some(next) = next {
                    ladder.insert(
                        (next.max(0) as u64, doc_key.as_slice(), recipient.as_str()),
                        rec.escalation_level,
                    )?;
                }
                ran.push(Ran {
                    doc_id: DocId::from_bytes(doc_bytes),
                    recipient: recipient_id,
                    step,
                    notified,
                });
            }
        }
        if !ran.is_empty() {
            gongwen_common::failpoint::hit("hub-escalation-before-commit");
        }
        txn.commit()?;
        if !ran.is_empty() {
            gongwen_common::failpoint::hit("hub-escalation-committed");
        }
        Ok(ran)
    }

    /// The sender urges (催办) now: every recipient of `doc_id` in `units`
    /// (all when empty) that has not signed for, returned or been recalled
    /// from it gets an urging notice and one more on its urge count, in one
    /// commit. The escalation ladder is not moved. Returns who was urged.
    pub fn urge_now(
        &self,
        doc_id: DocId,
        units: &[NodeId],
        now_ms: i64,
        notice: impl Fn(&DocRecord, &NodeId, &DeliveryRecord) -> Vec<u8>,
    ) -> Result<Vec<NodeId>, StoreError> {
        let key = doc_id.as_bytes().as_slice();
        let txn = self.db.begin_write()?;
        let mut urged = Vec::new();
        {
            let doc = txn
                .open_table(DOCS)?
                .get(key)?
                .map(|g| parse::<DocRecord>(g.value()))
                .transpose()?;
            let Some(doc) = doc else {
                return Ok(urged);
            };
            let mut delivery = txn.open_table(DELIVERY)?;
            for r in doc.recipients() {
                if !units.is_empty() && !units.contains(&r) {
                    continue;
                }
                let current = delivery
                    .get((key, r.as_str()))?
                    .map(|g| parse::<DeliveryRecord>(g.value()))
                    .transpose()?;
                let Some(mut rec) = current else { continue };
                if rec.state.is_closed() {
                    continue;
                }
                rec.urge_count += 1;
                rec.steps_run.push(StepRun {
                    step: u32::MAX,
                    action: "urge (by the sender)".into(),
                    at_ms: now_ms,
                });
                queue_push(&txn, &r, &Push::Notice(notice(&doc, &r, &rec)))?;
                delivery.insert((key, r.as_str()), json(&rec)?.as_slice())?;
                urged.push(r);
            }
        }
        txn.commit()?;
        Ok(urged)
    }

    /// When the next escalation step is due (Unix ms), if any.
    pub fn next_due(&self) -> Result<Option<i64>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(LADDER)?;
        Ok(t.first()?.map(|(k, _)| k.value().0 as i64))
    }

    /// Every document with every recipient's record (for supervision).
    #[allow(clippy::type_complexity)]
    pub fn all_deliveries(
        &self,
    ) -> Result<Vec<(DocRecord, Vec<(NodeId, DeliveryRecord)>)>, StoreError> {
        let txn = self.db.begin_read()?;
        let docs = txn.open_table(DOCS)?;
        let delivery = txn.open_table(DELIVERY)?;
        let mut out = Vec::new();
        for row in docs.iter()? {
            let (k, v) = row?;
            let doc: DocRecord = parse(v.value())?;
            let key = k.value();
            let mut rows = Vec::new();
            for r in delivery.range((key, "")..(key, "\u{10ffff}"))? {
                let (rk, rv) = r?;
                if let Ok(id) = NodeId::parse(rk.value().1) {
                    rows.push((id, parse(rv.value())?));
                }
            }
            out.push((doc, rows));
        }
        Ok(out)
    }

    /// Drop pushes the unit has taken, in one commit.
    pub fn forwarded(&self, node: &NodeId, seqs: &[u64]) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(FORWARD)?;
            for seq in seqs {
                t.remove((node.as_str(), *seq))?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Per-recipient delivery state of a document.
    pub fn deliveries(&self, doc_id: DocId) -> Result<Vec<(NodeId, DeliveryRecord)>, StoreError> {
        let key = doc_id.as_bytes().as_slice();
        let txn = self.db.begin_read()?;
        let t = txn.open_table(DELIVERY)?;
        let mut out = Vec::new();
        for row in t.range((key, "")..(key, "\u{10ffff}"))? {
            let (k, v) = row?;
            if let Ok(id) = NodeId::parse(k.value().1) {
                out.push((id, parse(v.value())?));
            }
        }
        Ok(out)
    }

    /// Receipt kinds held for each recipient of a document.
    pub fn receipt_kinds(&self, doc_id: DocId) -> Result<Vec<(NodeId, ReceiptKind)>, StoreError> {
        let key = doc_id.as_bytes().as_slice();
        let txn = self.db.begin_read()?;
        let t = txn.open_table(RECEIPTS)?;
        let mut out = Vec::new();
        for row in t.range((key, "", 0u8)..(key, "\u{10ffff}", u8::MAX))? {
            let (k, _) = row?;
            let (_, r, kind) = k.value();
            if let (Ok(id), Some(kind)) = (NodeId::parse(r), ReceiptKind::from_code(kind).ok()) {
                out.push((id, kind));
            }
        }
        Ok(out)
    }
}
