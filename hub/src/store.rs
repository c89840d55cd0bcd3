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
//! | `forward`    | (sender, sequence)          | receipt to pass on to the sender   |
//! | `bindings`   | node id                     | signed encryption-key binding      |
//! | `partial`    | doc id                      | [`PartialUpload`] (JSON)           |
//! | `counters`   | name                        | u64                                |

use std::path::Path;
use std::sync::Arc;

use gongwen_common::envelope::Urgency;
use gongwen_common::receipt::ReceiptKind;
use gongwen_common::{DocId, NodeId};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
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
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub state: DeliveryState,
    pub delivered_ms: Option<i64>,
    pub reason: Option<String>,
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
    /// True when no recipient is still waiting for the content.
    pub all_delivered: bool,
}

/// The hub's store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
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
        }
        txn.commit()?;
        Ok(Store { db: Arc::new(db) })
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

    /// Record an accepted document in one transaction: its record, header
    /// and receipt, a queued delivery row and a pending entry per
    /// recipient, and the end of its partial upload.
    pub fn accept(
        &self,
        doc: &DocRecord,
        header: &[u8],
        accepted: &[u8],
    ) -> Result<(), StoreError> {
        let key = doc.doc_id.as_bytes().as_slice();
        let queued = json(&DeliveryRecord {
            state: DeliveryState::Queued,
            delivered_ms: None,
            reason: None,
        })?;
        let txn = self.db.begin_write()?;
        {
            txn.open_table(DOCS)?.insert(key, json(doc)?.as_slice())?;
            txn.open_table(HEADERS)?.insert(key, header)?;
            txn.open_table(ACCEPTED)?.insert(key, accepted)?;
            let mut delivery = txn.open_table(DELIVERY)?;
            let mut pending = txn.open_table(PENDING)?;
            for r in doc.recipients() {
                delivery.insert((key, r.as_str()), queued.as_slice())?;
                pending.insert((r.as_str(), key), ())?;
            }
            txn.open_table(PARTIAL)?.remove(key)?;
        }
        txn.commit()?;
        Ok(())
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

    /// Record a recipient's `delivered` or `quarantined` receipt: the
    /// delivery row, the receipt, the end of the pending entry, and a copy
    /// queued for the sender — once; a repeat changes nothing.
    pub fn record_delivery(
        &self,
        doc_id: DocId,
        recipient: &NodeId,
        kind: ReceiptKind,
        time_ms: i64,
        reason: Option<String>,
        receipt: &[u8],
    ) -> Result<Recorded, StoreError> {
        let key = doc_id.as_bytes().as_slice();
        let txn = self.db.begin_write()?;
        let recorded = {
            let docs = txn.open_table(DOCS)?;
            let doc: DocRecord = match docs.get(key)? {
                Some(g) => parse(g.value())?,
                None => return Err(StoreError::Record(format!("no document {doc_id}"))),
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
            if new {
                let state = if kind == ReceiptKind::Delivered {
                    DeliveryState::Delivered
                } else {
                    DeliveryState::Quarantined
                };
                let rec = DeliveryRecord {
                    state,
                    delivered_ms: Some(time_ms),
                    reason,
                };
                delivery.insert((key, recipient.as_str()), json(&rec)?.as_slice())?;
                txn.open_table(RECEIPTS)?
                    .insert((key, recipient.as_str(), kind.code()), receipt)?;
                let mut counters = txn.open_table(COUNTERS)?;
                let seq = counters.get("forward")?.map(|g| g.value()).unwrap_or(0) + 1;
                counters.insert("forward", seq)?;
                txn.open_table(FORWARD)?
                    .insert((doc.sender.as_str(), seq), receipt)?;
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
            Recorded {
                new,
                sender: doc.sender.clone(),
                all_delivered,
            }
        };
        txn.commit()?;
        Ok(recorded)
    }

    /// Receipts waiting to be passed on to `node` (as sender).
    pub fn forward_queue(
        &self,
        node: &NodeId,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(FORWARD)?;
        let mut out = Vec::new();
        for row in t
            .range((node.as_str(), 0u64)..=(node.as_str(), u64::MAX))?
            .take(limit)
        {
            let (k, v) = row?;
            out.push((k.value().1, v.value().to_vec()));
        }
        Ok(out)
    }

    pub fn forwarded(&self, node: &NodeId, seq: u64) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(FORWARD)?.remove((node.as_str(), seq))?;
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

    pub fn mark_content_removed(&self, doc_id: DocId) -> Result<(), StoreError> {
        let key = doc_id.as_bytes().as_slice();
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(DOCS)?;
            let doc = t
                .get(key)?
                .map(|g| parse::<DocRecord>(g.value()))
                .transpose()?;
            if let Some(mut doc) = doc {
                doc.content_removed = true;
                t.insert(key, json(&doc)?.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}
