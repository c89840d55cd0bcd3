//! The embedded store: one hub's state in its data directory.
//!
//! Records and queues in one redb database (`store.redb`), ciphertext in
//! the spool folder, the receipt chain in `audit.log`. Every change that
//! must happen together happens in one redb transaction (fsync on commit);
//! the redb work is blocking and runs on the blocking pool.
//!
//! | table        | key                           | value                              |
//! |--------------|-------------------------------|------------------------------------|
//! | `meta`       | name                          | e.g. the generation id             |
//! | `docs`       | doc id                        | [`DocRecord`] (JSON)               |
//! | `headers`    | doc id                        | signed header statement            |
//! | `accepted`   | doc id                        | the hub's `accepted` receipt       |
//! | `delivery`   | (doc id, recipient)           | [`DeliveryRecord`] (JSON)          |
//! | `queue`      | (recipient, rank, doc id)     | () — documents still to deliver    |
//! | `queued_from`| (sender, recipient, doc id)   | () — the same, by sender           |
//! | `receipts`   | (doc id, recipient, kind)     | signed receipt                     |
//! | `forward`    | (node, sequence)              | [`Push`]: a receipt or notice      |
//! | `bindings`   | node id                       | signed encryption-key binding      |
//! | `partial`    | doc id                        | [`PartialUpload`] (JSON)           |
//! | `counters`   | name                          | u64                                |
//! | `ladder`     | (due ms, doc id, recipient)   | next escalation step to run        |
//!
//! `queue` orders each unit's deliveries by [`delivery_rank`] (urgency)
//! and then by doc id (time). Stores from before it had `pending`
//! (recipient, doc id); it is moved over when such a store is opened.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use gongwen_common::config::EscalationStep;
use gongwen_common::receipt::{Receipt, ReceiptKind};
use gongwen_common::suite::{Hasher, Suite};
use gongwen_common::transfer::{Batches, read_file_chunks};
use gongwen_common::{DocId, NodeId};
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{
    Accept, AnswerError, DeliveryRecord, DocRecord, Outcome, Push, Ran, RecallNotice, Recalled,
    Recorded, StepNotices, Store, StoreError, UploadSink, UrgeNotice, Verdict, Write,
};
use crate::rules::lifecycle::{Answer, REPLY_PHASE, Recall, content_done, delivery_rank};
use crate::store::audit::AuditLog;
use crate::store::spool::Spool;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const DOCS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("docs");
const HEADERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("headers");
const ACCEPTED: TableDefinition<&[u8], &[u8]> = TableDefinition::new("accepted");
const DELIVERY: TableDefinition<(&[u8], &str), &[u8]> = TableDefinition::new("delivery");
const QUEUE: TableDefinition<(&str, u8, &[u8]), ()> = TableDefinition::new("queue");
/// The queue again, keyed by sender first: how many documents one unit has
/// waiting for another is a short range read (the quota on floods).
const QUEUED_FROM: TableDefinition<(&str, &str, &[u8]), ()> = TableDefinition::new("queued_from");
/// Before `queue`: (recipient, doc id), oldest first whatever the urgency.
const OLD_PENDING: TableDefinition<(&str, &[u8]), ()> = TableDefinition::new("pending");
const RECEIPTS: TableDefinition<(&[u8], &str, u8), &[u8]> = TableDefinition::new("receipts");
const FORWARD: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("forward");
const BINDINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("bindings");
const PARTIAL: TableDefinition<&[u8], &[u8]> = TableDefinition::new("partial");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");
const LADDER: TableDefinition<(u64, &[u8], &str), u32> = TableDefinition::new("ladder");

use gongwen_common::kvstore::{Db, from_json as parse, to_json as json};

/// An upload that has not finished: how much content is durable.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartialUpload {
    pub digest: String,
    pub durable: u64,
}

/// The embedded store; cheap to clone.
#[derive(Clone)]
pub struct Embedded {
    db: Arc<Db>,
    spool: Spool,
    audit: Arc<AuditLog>,
    audit_path: PathBuf,
    generation: Arc<str>,
}

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedded")
            .field("generation", &self.generation)
            .finish()
    }
}

/// Queue `push` for `node` inside `txn`.
fn queue_push(txn: &redb::WriteTransaction, node: &NodeId, push: &Push) -> Result<(), StoreError> {
    let mut counters = txn.open_table(COUNTERS)?;
    let seq = counters.get("forward")?.map(|g| g.value()).unwrap_or(0) + 1;
    counters.insert("forward", seq)?;
    txn.open_table(FORWARD)?
        .insert((node.queue().as_str(), seq), push.encode().as_slice())?;
    Ok(())
}

fn doc_in(txn: &redb::WriteTransaction, key: &[u8]) -> Result<Option<DocRecord>, StoreError> {
    txn.open_table(DOCS)?
        .get(key)?
        .map(|g| parse(g.value()))
        .transpose()
}

/// When a just signed-for copy's answer ladder starts, if it has one.
pub(crate) fn reply_ladder_due(doc: &DocRecord, rec: &DeliveryRecord) -> Option<i64> {
    (rec.state == crate::rules::lifecycle::DeliveryState::Acknowledged
        && rec.reply.answered_ms.is_none()
        && rec.reply.escalation_level == 0)
        .then_some(doc.links.reply_first_due_ms)
        .flatten()
}

fn doc_id_of(key: &[u8]) -> Result<DocId, StoreError> {
    let bytes: [u8; 16] = key
        .try_into()
        .map_err(|_| StoreError::Record("a key is not a doc id".into()))?;
    Ok(DocId::from_bytes(bytes))
}

/// A fresh generation id: 128 random bits, hex.
pub(crate) fn new_generation() -> Result<String, StoreError> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| StoreError::Task("the system random generator failed".into()))?;
    Ok(gongwen_common::pki::serial_hex(&b))
}

/// Everything an embedded store holds but content and the audit log, for
/// `gongwen-hub db import`. Records stay in their stored JSON.
#[derive(Debug, Default)]
pub struct Dump {
    pub generation: String,
    pub bindings: Vec<(String, Vec<u8>)>,
    /// (doc id, record, header, accepted receipt).
    pub docs: Vec<(DocId, DocRecord, Vec<u8>, Vec<u8>)>,
    /// (doc id, recipient, record JSON).
    pub deliveries: Vec<(DocId, String, String)>,
    /// (recipient, rank, doc id).
    pub queue: Vec<(String, u8, DocId)>,
    /// (doc id, recipient, kind code, signed receipt).
    pub receipts: Vec<(DocId, String, u8, Vec<u8>)>,
    /// (node, sequence, encoded push), in order.
    pub forward: Vec<(String, u64, Vec<u8>)>,
    /// (due ms, doc id, recipient, step).
    pub ladder: Vec<(u64, DocId, String, u32)>,
}

impl Embedded {
    /// Read every table (blocking; for `db import`, with the hub stopped).
    pub fn dump(&self) -> Result<Dump, StoreError> {
        let txn = self.db.begin_read()?;
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let mut d = Dump {
            generation: self.generation.to_string(),
            ..Dump::default()
        };
        for row in txn.open_table(BINDINGS)?.iter()? {
            let (k, v) = row?;
            d.bindings.push((k.value().to_owned(), v.value().to_vec()));
        }
        let (headers, accepted) = (txn.open_table(HEADERS)?, txn.open_table(ACCEPTED)?);
        for row in txn.open_table(DOCS)?.iter()? {
            let (k, v) = row?;
            let key = k.value();
            let header = headers.get(key)?.map(|g| g.value().to_vec());
            let receipt = accepted.get(key)?.map(|g| g.value().to_vec());
            let (Some(header), Some(receipt)) = (header, receipt) else {
                return Err(StoreError::Record(format!(
                    "document {} has no header or accepted receipt",
                    doc_id_of(key)?
                )));
            };
            d.docs
                .push((doc_id_of(key)?, parse(v.value())?, header, receipt));
        }
        for row in txn.open_table(DELIVERY)?.iter()? {
            let (k, v) = row?;
            let (doc, recipient) = k.value();
            d.deliveries
                .push((doc_id_of(doc)?, recipient.to_owned(), text(v.value())));
        }
        for row in txn.open_table(QUEUE)?.iter()? {
            let (k, _) = row?;
            let (recipient, rank, doc) = k.value();
            d.queue.push((recipient.to_owned(), rank, doc_id_of(doc)?));
        }
        for row in txn.open_table(RECEIPTS)?.iter()? {
            let (k, v) = row?;
            let (doc, recipient, kind) = k.value();
            d.receipts.push((
                doc_id_of(doc)?,
                recipient.to_owned(),
                kind,
                v.value().to_vec(),
            ));
        }
        for row in txn.open_table(FORWARD)?.iter()? {
            let (k, v) = row?;
            let (node, seq) = k.value();
            d.forward.push((node.to_owned(), seq, v.value().to_vec()));
        }
        for row in txn.open_table(LADDER)?.iter()? {
            let (k, v) = row?;
            let (due, doc, recipient) = k.value();
            d.ladder
                .push((due, doc_id_of(doc)?, recipient.to_owned(), v.value()));
        }
        Ok(d)
    }

    /// Where the audit log is.
    pub fn audit_path(&self) -> &Path {
        &self.audit_path
    }

    /// Where a document's content is in the spool.
    pub fn content_path(&self, doc_id: DocId) -> PathBuf {
        self.spool.content(doc_id)
    }

    /// Open the store in `data_dir`. A missing database is created only
    /// when nothing else there says a store existed (documents in the
    /// spool, an audit log); a damaged one is an error, never replaced.
    /// Content every recipient already has (left by a crash between the
    /// last receipt and the removal) is swept away.
    pub fn open(data_dir: &Path) -> Result<Embedded, StoreError> {
        let audit_path = data_dir.join("audit.log");
        let fresh_ok = !Spool::holds_documents(data_dir) && !audit_path.exists();
        let path = data_dir.join("store.redb");
        let db = gongwen_common::kvstore::open(
            &path,
            fresh_ok,
            "the hub's spool or audit log holds documents",
        )?;
        let txn = db.begin_write()?;
        let generation;
        {
            let mut meta = txn.open_table(META)?;
            let existing = meta
                .get("generation")?
                .map(|g| String::from_utf8_lossy(g.value()).into_owned());
            generation = match existing {
                Some(g) => g,
                None => {
                    // A new store, or one from before generations: either
                    // way this is the generation agents will know it by.
                    let g = new_generation()?;
                    meta.insert("generation", g.as_bytes())?;
                    g
                }
            };
            txn.open_table(DOCS)?;
            txn.open_table(HEADERS)?;
            txn.open_table(ACCEPTED)?;
            txn.open_table(DELIVERY)?;
            txn.open_table(RECEIPTS)?;
            txn.open_table(FORWARD)?;
            txn.open_table(BINDINGS)?;
            txn.open_table(PARTIAL)?;
            txn.open_table(COUNTERS)?;
            txn.open_table(LADDER)?;
            let mut queue = txn.open_table(QUEUE)?;
            migrate_pending(&txn, &mut queue)?;
            let mut by_sender = txn.open_table(QUEUED_FROM)?;
            if by_sender.is_empty()? && !queue.is_empty()? {
                // A store from before the index: build it once.
                for row in queue.iter()? {
                    let (k, _) = row?;
                    let (recipient, _, key) = k.value();
                    if let Some(doc) = doc_in(&txn, key)? {
                        by_sender.insert((doc.sender.as_str(), recipient, key), ())?;
                    }
                }
            }
        }
        txn.commit()?;
        let spool = Spool::open(data_dir)?;
        let audit = AuditLog::open(&audit_path)?;
        let store = Embedded {
            db: Arc::new(Db::new(&path, db)),
            spool,
            audit: Arc::new(audit),
            audit_path,
            generation: generation.into(),
        };
        store.remove_delivered_content()?;
        Ok(store)
    }

    /// Give a restored store a new generation, so that agents offer again
    /// what they sent after the backup (blocking; the hub stopped).
    pub fn renew_generation(data_dir: &Path) -> Result<String, StoreError> {
        let path = data_dir.join("store.redb");
        let db = gongwen_common::kvstore::open(&path, false, "a restored store")?;
        let txn = db.begin_write()?;
        let g = new_generation()?;
        txn.open_table(META)?.insert("generation", g.as_bytes())?;
        txn.commit()?;
        Ok(g)
    }

    /// See [`Store::snapshot`]. Blocking.
    fn snapshot_blocking(&self, into: &Path) -> Result<usize, StoreError> {
        let io = StoreError::Io;
        let data_dir = self.audit_path.parent().unwrap_or(Path::new("."));
        // Every change takes the write transaction and appends to the audit
        // log inside it: holding one (never committed) keeps the database
        // file and the log still and in step while they are copied.
        let txn = self.db.begin_write()?;
        let documents = {
            use redb::ReadableTableMetadata;
            txn.open_table(DOCS)?.len()? as usize
        };
        gongwen_common::fsutil::create_private_dir(into).map_err(io)?;
        std::fs::copy(data_dir.join("store.redb"), into.join("store.redb")).map_err(io)?;
        if self.audit_path.exists() {
            std::fs::copy(&self.audit_path, into.join("audit.log")).map_err(io)?;
        }
        let spool = into.join("spool");
        std::fs::create_dir_all(spool.join("partial")).map_err(io)?;
        for doc_id in self.spool.stored().map_err(io)? {
            let from = self.spool.content(doc_id);
            let to = spool.join(format!("{doc_id}.ct"));
            // Sealed content never changes: a link is a copy, made at once.
            if std::fs::hard_link(&from, &to).is_err() {
                std::fs::copy(&from, &to).map_err(io)?;
            }
        }
        if let Ok(entries) = std::fs::read_dir(data_dir.join("spool").join("partial")) {
            for e in entries.flatten() {
                std::fs::copy(e.path(), spool.join("partial").join(e.file_name())).map_err(io)?;
            }
        }
        drop(txn);
        Ok(documents)
    }

    fn remove_delivered_content(&self) -> Result<(), StoreError> {
        for doc_id in self.spool.stored()? {
            if let Some(doc) = self.doc_now(doc_id)?
                && doc.content_removed
            {
                std::fs::remove_file(self.spool.content(doc_id))?;
            }
        }
        Ok(())
    }

    /// Run blocking store work off the async threads.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Embedded) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        gongwen_common::kvstore::blocking(self, f).await
    }

    fn doc_now(&self, doc_id: DocId) -> Result<Option<DocRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(DOCS)?;
        t.get(doc_id.as_bytes().as_slice())?
            .map(|g| parse(g.value()))
            .transpose()
    }

    fn read_bytes(
        &self,
        table: TableDefinition<&[u8], &[u8]>,
        doc_id: DocId,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(table)?;
        Ok(t.get(doc_id.as_bytes().as_slice())?
            .map(|g| g.value().to_vec()))
    }

    fn deliveries_now(&self, doc_id: DocId) -> Result<Vec<(NodeId, DeliveryRecord)>, StoreError> {
        let key = doc_id.as_bytes().as_slice();
        let txn = self.db.begin_read()?;
        let t = txn.open_table(DELIVERY)?;
        let mut out = Vec::new();
        for row in t.range((key, "")..(key, "\u{10ffff}"))? {
            let (k, v) = row?;
            if let Ok(id) = NodeId::parse_address(k.value().1) {
                out.push((id, parse(v.value())?));
            }
        }
        Ok(out)
    }

    fn set_partial(&self, doc_id: DocId, p: &PartialUpload) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(PARTIAL)?
            .insert(doc_id.as_bytes().as_slice(), json(p)?.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    fn partial(&self, doc_id: DocId) -> Result<Option<PartialUpload>, StoreError> {
        self.read_bytes(PARTIAL, doc_id)?
            .map(|b| parse(&b))
            .transpose()
    }

    /// Make one batch durable: the spool folder (the accepted contents'
    /// renames), the audit log, then the store. Blocking.
    fn write_batch(&self, batch: &[Write]) -> Result<Vec<Outcome>, StoreError> {
        if batch.iter().any(|w| matches!(w, Write::Accept(..))) {
            self.spool.sync_blocking()?;
        }
        let txn = self.db.begin_write()?;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut logged: Vec<(&[u8], &Receipt, i64)> = Vec::new();
        for w in batch {
            match w {
                Write::Accept(a) => {
                    accept_in(&txn, a)?;
                    logged.push((&a.receipt_bytes, &a.receipt, a.at_ms));
                    outcomes.push(None);
                }
                Write::Delivery(d) => {
                    let recorded = record_delivery_in(&txn, &d.receipt, &d.receipt_bytes, d.at_ms)?;
                    if recorded.as_ref().is_some_and(|r| r.new) {
                        logged.push((&d.receipt_bytes, &d.receipt, d.at_ms));
                    }
                    outcomes.push(recorded);
                }
            }
        }
        // Logged before the commit, so no recorded receipt is missing from
        // the audit log (a failed commit can leave a logged receipt the
        // store does not have; it is retried and logged again, which
        // `audit verify` reports as a repeat).
        self.audit.append_all(&logged)?;
        txn.commit()?;
        Ok(outcomes)
    }

    fn record_answer_now(
        &self,
        r: &Receipt,
        receipt: &[u8],
        now_ms: i64,
    ) -> Result<Result<(NodeId, bool), AnswerError>, StoreError> {
        let key = r.doc_id.as_bytes().as_slice();
        let recipient = r.recipient.as_str();
        let answer = if r.kind == ReceiptKind::Acknowledged {
            Answer::SignedFor { by: &r.by }
        } else {
            Answer::Returned { reason: &r.reason }
        };
        let txn = self.db.begin_write()?;
        let outcome = {
            let Some(doc) = doc_in(&txn, key)? else {
                return Err(StoreError::Record(format!("no document {}", r.doc_id)));
            };
            let mut delivery = txn.open_table(DELIVERY)?;
            let current = delivery
                .get((key, recipient))?
                .map(|g| parse::<DeliveryRecord>(g.value()))
                .transpose()?;
            let Some(mut rec) = current else {
                return Err(StoreError::Record(format!(
                    "{recipient} is not a recipient"
                )));
            };
            let outcome = rec.answer(answer, now_ms);
            if outcome == Ok(true) {
                delivery.insert((key, recipient), json(&rec)?.as_slice())?;
                // Signed for, not answered yet: the ladder runs on for the
                // answer asked of it.
                if let Some(due) = reply_ladder_due(&doc, &rec) {
                    txn.open_table(LADDER)?
                        .insert((due.max(0) as u64, key, recipient), REPLY_PHASE)?;
                }
                txn.open_table(RECEIPTS)?
                    .insert((key, recipient, r.kind.code()), receipt)?;
                queue_push(&txn, &doc.sender, &Push::Receipt(receipt.to_vec()))?;
                self.audit.append(receipt, r, now_ms)?;
            }
            outcome.map(|new| (doc.sender.clone(), new))
        };
        txn.commit()?;
        Ok(outcome)
    }

    fn recall_now(
        &self,
        doc_id: DocId,
        notice: &RecallNotice,
        now_ms: i64,
    ) -> Result<Recalled, StoreError> {
        let key = doc_id.as_bytes().as_slice();
        let txn = self.db.begin_write()?;
        let mut out = Recalled::default();
        {
            let Some(doc) = doc_in(&txn, key)? else {
                return Err(StoreError::Record(format!("no document {doc_id}")));
            };
            let mut delivery = txn.open_table(DELIVERY)?;
            let mut queue = txn.open_table(QUEUE)?;
            let rank = delivery_rank(doc.urgency);
            for r in doc.recipients() {
                let current = delivery
                    .get((key, r.as_str()))?
                    .map(|g| parse::<DeliveryRecord>(g.value()))
                    .transpose()?;
                let Some(mut rec) = current else { continue };
                match rec.recall(now_ms) {
                    Recall::AlreadyAnswered => {
                        out.answered.push(r);
                        continue;
                    }
                    Recall::AlreadyRecalled => continue,
                    Recall::Withdrawn => {
                        queue.remove((r.queue().as_str(), rank, key))?;
                        txn.open_table(QUEUED_FROM)?.remove((
                            doc.sender.as_str(),
                            r.as_str(),
                            key,
                        ))?;
                        if r.is_local() {
                            out.withdrawn.push(r.clone());
                        } else {
                            // A copy for another domain may be on its way
                            // there already: the recall follows it (a hub
                            // that never got it refuses it).
                            queue_push(&txn, &r, &Push::Notice(notice(&r)))?;
                            out.notified.push(r.clone());
                        }
                    }
                    Recall::Notify => {
                        queue_push(&txn, &r, &Push::Notice(notice(&r)))?;
                        out.notified.push(r.clone());
                    }
                }
                delivery.insert((key, r.as_str()), json(&rec)?.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(out)
    }

    fn run_due_now(
        &self,
        now_ms: i64,
        steps: &[EscalationStep],
        notices: &StepNotices,
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
                let (Ok(doc_id), Ok(recipient_id)) =
                    (doc_id_of(&doc_key), NodeId::parse_address(&recipient))
                else {
                    continue;
                };
                let Some(doc) = doc_in(&txn, &doc_key)? else {
                    continue;
                };
                let mut delivery = txn.open_table(DELIVERY)?;
                let current = delivery
                    .get((doc_key.as_slice(), recipient.as_str()))?
                    .map(|g| parse::<DeliveryRecord>(g.value()))
                    .transpose()?;
                let Some(mut rec) = current else { continue };
                // Answered, withdrawn, or this step already ran: nothing.
                let Some((escalated, next_entry)) =
                    rec.escalate_entry(step, steps, now_ms, doc.links.reply_by_ms)
                else {
                    continue;
                };
                let mut notified = Vec::new();
                for (node, body) in notices(&doc, &recipient_id, &rec, step) {
                    queue_push(&txn, &node, &Push::Notice(body))?;
                    notified.push(node);
                }
                delivery.insert(
                    (doc_key.as_slice(), recipient.as_str()),
                    json(&rec)?.as_slice(),
                )?;
                if let Some(next) = escalated.next_due_ms {
                    ladder.insert(
                        (next.max(0) as u64, doc_key.as_slice(), recipient.as_str()),
                        next_entry,
                    )?;
                }
                ran.push(Ran {
                    doc_id,
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

    fn urge_now_blocking(
        &self,
        doc_id: DocId,
        units: &[NodeId],
        now_ms: i64,
        notice: &UrgeNotice,
    ) -> Result<Vec<NodeId>, StoreError> {
        let key = doc_id.as_bytes().as_slice();
        let txn = self.db.begin_write()?;
        let mut urged = Vec::new();
        {
            let Some(doc) = doc_in(&txn, key)? else {
                return Ok(urged);
            };
            let mut delivery = txn.open_table(DELIVERY)?;
            let main = doc.main_copies();
            for r in doc.recipients() {
                let named = if units.is_empty() {
                    main.contains(&r)
                } else {
                    units.contains(&r)
                };
                if !named {
                    continue;
                }
                let current = delivery
                    .get((key, r.as_str()))?
                    .map(|g| parse::<DeliveryRecord>(g.value()))
                    .transpose()?;
                let Some(mut rec) = current else { continue };
                if !rec.urge_by_sender(now_ms) {
                    continue;
                }
                queue_push(&txn, &r, &Push::Notice(notice(&doc, &r, &rec)))?;
                delivery.insert((key, r.as_str()), json(&rec)?.as_slice())?;
                urged.push(r);
            }
        }
        txn.commit()?;
        Ok(urged)
    }

    fn queued_from(
        &self,
        sender: &NodeId,
        recipient: &NodeId,
        at_most: u64,
    ) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(QUEUED_FROM)?;
        let lo: (&str, &str, &[u8]) = (sender.as_str(), recipient.as_str(), &[]);
        let hi: (&str, &str, &[u8]) = (sender.as_str(), recipient.as_str(), &[0xff; 17]);
        let mut n = 0;
        for row in t.range(lo..hi)? {
            row?;
            n += 1;
            if n >= at_most {
                break;
            }
        }
        Ok(n)
    }

    fn queued_for(
        &self,
        node: &NodeId,
        limit: usize,
        skip: &[DocId],
    ) -> Result<Vec<DocId>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(QUEUE)?;
        let lo: (&str, u8, &[u8]) = (node.as_str(), 0, &[]);
        let hi: (&str, u8, &[u8]) = (node.as_str(), u8::MAX, &[0xff; 17]);
        let mut out = Vec::new();
        for row in t.range(lo..hi)? {
            if out.len() >= limit {
                break;
            }
            let (k, _) = row?;
            let id = doc_id_of(k.value().2)?;
            if !skip.contains(&id) {
                out.push(id);
            }
        }
        Ok(out)
    }
}

/// Move a store's old `pending` rows (no urgency in the key) into `queue`.
fn migrate_pending(
    txn: &redb::WriteTransaction,
    queue: &mut redb::Table<(&str, u8, &[u8]), ()>,
) -> Result<(), StoreError> {
    let old: Vec<(String, Vec<u8>)> = match txn.open_table(OLD_PENDING) {
        Ok(t) => t
            .iter()?
            .map(|row| row.map(|(k, _)| (k.value().0.to_owned(), k.value().1.to_vec())))
            .collect::<Result<_, _>>()?,
        Err(e) => return Err(e.into()),
    };
    for (node, key) in &old {
        let rank = match doc_in(txn, key)? {
            Some(doc) => delivery_rank(doc.urgency),
            None => continue,
        };
        queue.insert((node.as_str(), rank, key.as_slice()), ())?;
    }
    txn.delete_table(OLD_PENDING)?;
    Ok(())
}

/// Record an accepted document inside `txn`: its record, header and
/// receipt, a queued copy per recipient (in its delivery queue and on the
/// ladder), and the end of its partial upload.
fn accept_in(txn: &redb::WriteTransaction, a: &Accept) -> Result<(), StoreError> {
    let doc = &a.record;
    let key = doc.doc_id.as_bytes().as_slice();
    let queued = json(&DeliveryRecord::queued(a.deadline_ms))?;
    let rank = delivery_rank(doc.urgency);
    txn.open_table(DOCS)?.insert(key, json(doc)?.as_slice())?;
    txn.open_table(HEADERS)?.insert(key, a.header.as_slice())?;
    txn.open_table(ACCEPTED)?
        .insert(key, a.receipt_bytes.as_slice())?;
    let mut delivery = txn.open_table(DELIVERY)?;
    let mut queue = txn.open_table(QUEUE)?;
    let mut by_sender = txn.open_table(QUEUED_FROM)?;
    let mut ladder = txn.open_table(LADDER)?;
    let main = doc.main_copies();
    for r in doc.recipients() {
        delivery.insert((key, r.as_str()), queued.as_slice())?;
        queue.insert((r.queue().as_str(), rank, key), ())?;
        by_sender.insert((doc.sender.as_str(), r.as_str(), key), ())?;
        if let Some(due) = a.first_due_ms.filter(|_| main.contains(&r)) {
            ladder.insert((due.max(0) as u64, key, r.as_str()), 0u32)?;
        }
    }
    txn.open_table(PARTIAL)?.remove(key)?;
    if let Some(asked) = doc.links.answers {
        // The answering unit's copy of the question notes the answer, in
        // the answer's own commit.
        let asked_key = asked.as_bytes().as_slice();
        if let Some(question) = doc_in(txn, asked_key)? {
            let unit = doc.sender.as_str();
            let current = delivery
                .get((asked_key, unit))?
                .map(|g| parse::<DeliveryRecord>(g.value()))
                .transpose()?;
            if let Some(mut rec) = current
                && rec.take_reply(
                    &doc.doc_id.to_string(),
                    doc.links.decision,
                    a.at_ms,
                    question.links.reply_by_ms,
                )
            {
                delivery.insert((asked_key, unit), json(&rec)?.as_slice())?;
            }
        }
    }
    Ok(())
}

/// Record a recipient's `delivered` or `quarantined` receipt inside `txn`:
/// the copy's record, the receipt, the end of its queue entry, and a copy
/// queued for the sender — once; a repeat changes nothing. `now_ms`: when
/// it arrived by the hub's clock (the unit's own time is in the signed
/// receipt; state times follow one clock). `None` (nothing written) for
/// an unknown document; any error may leave `txn` half written, so it must
/// not be committed.
fn record_delivery_in(
    txn: &redb::WriteTransaction,
    r: &Receipt,
    receipt: &[u8],
    now_ms: i64,
) -> Result<Option<Recorded>, StoreError> {
    let key = r.doc_id.as_bytes().as_slice();
    let recipient = r.recipient.as_str();
    let quarantined = (r.kind == ReceiptKind::Quarantined).then_some(r.reason.as_str());
    let Some(mut doc) = doc_in(txn, key)? else {
        return Ok(None);
    };
    let mut delivery = txn.open_table(DELIVERY)?;
    let current: Option<DeliveryRecord> = delivery
        .get((key, recipient))?
        .map(|g| parse(g.value()))
        .transpose()?;
    let mut new = false;
    if let Some(mut rec) = current
        && rec.arrive(quarantined, now_ms)
    {
        new = true;
        delivery.insert((key, recipient), json(&rec)?.as_slice())?;
        txn.open_table(RECEIPTS)?
            .insert((key, recipient, r.kind.code()), receipt)?;
        queue_push(txn, &doc.sender, &Push::Receipt(receipt.to_vec()))?;
    }
    let queue_key = r.recipient.queue();
    txn.open_table(QUEUE)?
        .remove((queue_key.as_str(), delivery_rank(doc.urgency), key))?;
    txn.open_table(QUEUED_FROM)?
        .remove((doc.sender.as_str(), recipient, key))?;
    // Whether a copy still waits for the content (`content_done`), asked
    // from this recipient on (in the recipients' order, wrapping) and no
    // further than the first that waits: every receipt of a notice to
    // 10,000 units read all 10,000 records (O(N²) over the notice); now
    // about N/(copies waiting + 1) each.
    let done = !doc.content_removed && {
        let all = doc.recipients();
        let from = all
            .iter()
            .position(|n| n.as_str() == recipient)
            .unwrap_or(0);
        let mut waiting = false;
        for n in all[from..].iter().chain(&all[..from]) {
            if let Some(g) = delivery.get((key, n.as_str()))?
                && !content_done([&parse::<DeliveryRecord>(g.value())?])
            {
                waiting = true;
                break;
            }
        }
        !waiting
    };
    drop(delivery);
    // Marked in the receipt's own commit: whoever sees the receipt (the
    // sender it is forwarded to, a supervisor) sees the hub no longer
    // keeping the content.
    if done {
        doc.content_removed = true;
        txn.open_table(DOCS)?.insert(key, json(&doc)?.as_slice())?;
    }
    Ok(Some(Recorded {
        new,
        sender: doc.sender,
        content_done: done,
    }))
}

#[async_trait]
impl Store for Embedded {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    fn generation(&self) -> &str {
        &self.generation
    }

    async fn snapshot(&self, into: &Path) -> Result<usize, StoreError> {
        let into = into.to_owned();
        self.run(move |s| s.snapshot_blocking(&into)).await
    }

    async fn put_binding(&self, node: &NodeId, binding: &[u8]) -> Result<(), StoreError> {
        let (node, binding) = (node.clone(), binding.to_vec());
        self.run(move |s| {
            let txn = s.db.begin_write()?;
            txn.open_table(BINDINGS)?
                .insert(node.as_str(), binding.as_slice())?;
            txn.commit()?;
            Ok(())
        })
        .await
    }

    async fn binding(&self, node: &NodeId) -> Result<Option<Vec<u8>>, StoreError> {
        let node = node.clone();
        self.run(move |s| {
            let txn = s.db.begin_read()?;
            let t = txn.open_table(BINDINGS)?;
            Ok(t.get(node.as_str())?.map(|g| g.value().to_vec()))
        })
        .await
    }

    async fn bindings(&self) -> Result<Vec<(NodeId, Vec<u8>)>, StoreError> {
        self.run(|s| {
            let txn = s.db.begin_read()?;
            let t = txn.open_table(BINDINGS)?;
            let mut out = Vec::new();
            for row in t.iter()? {
                let (k, v) = row?;
                if let Ok(id) = NodeId::parse(k.value()) {
                    out.push((id, v.value().to_vec()));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn doc(&self, doc_id: DocId) -> Result<Option<DocRecord>, StoreError> {
        self.run(move |s| s.doc_now(doc_id)).await
    }

    async fn header(&self, doc_id: DocId) -> Result<Option<Vec<u8>>, StoreError> {
        self.run(move |s| s.read_bytes(HEADERS, doc_id)).await
    }

    async fn accepted_receipt(&self, doc_id: DocId) -> Result<Option<Vec<u8>>, StoreError> {
        self.run(move |s| s.read_bytes(ACCEPTED, doc_id)).await
    }

    async fn delivery(
        &self,
        doc_id: DocId,
        node: &NodeId,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        let node = node.clone();
        self.run(move |s| {
            let txn = s.db.begin_read()?;
            let t = txn.open_table(DELIVERY)?;
            t.get((doc_id.as_bytes().as_slice(), node.as_str()))?
                .map(|g| parse(g.value()))
                .transpose()
        })
        .await
    }

    async fn deliveries(&self, doc_id: DocId) -> Result<Vec<(NodeId, DeliveryRecord)>, StoreError> {
        self.run(move |s| s.deliveries_now(doc_id)).await
    }

    async fn receipt_kinds(&self, doc_id: DocId) -> Result<Vec<(NodeId, ReceiptKind)>, StoreError> {
        self.run(move |s| {
            let key = doc_id.as_bytes().as_slice();
            let txn = s.db.begin_read()?;
            let t = txn.open_table(RECEIPTS)?;
            let mut out = Vec::new();
            for row in t.range((key, "", 0u8)..(key, "\u{10ffff}", u8::MAX))? {
                let (k, _) = row?;
                let (_, r, kind) = k.value();
                if let (Ok(id), Ok(kind)) = (NodeId::parse_address(r), ReceiptKind::from_code(kind))
                {
                    out.push((id, kind));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn all_deliveries(
        &self,
    ) -> Result<Vec<(DocRecord, Vec<(NodeId, DeliveryRecord)>)>, StoreError> {
        self.run(|s| {
            let txn = s.db.begin_read()?;
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
                    if let Ok(id) = NodeId::parse_address(rk.value().1) {
                        rows.push((id, parse(rv.value())?));
                    }
                }
                out.push((doc, rows));
            }
            Ok(out)
        })
        .await
    }

    async fn open_upload(
        &self,
        doc_id: DocId,
        digest: &str,
        content_len: u64,
        suite: Suite,
    ) -> Result<Box<dyn UploadSink>, StoreError> {
        let digest = digest.to_owned();
        self.run(move |s| {
            let offset = match s.partial(doc_id)? {
                Some(p) if p.digest == digest => p.durable,
                _ => 0,
            };
            let path = s.spool.partial(doc_id);
            let (file, hasher, offset) = open_partial(&path, offset, suite)?;
            Ok(Box::new(FileUpload {
                store: s.clone(),
                doc_id,
                digest,
                content_len,
                path,
                offset,
                open: Some((file, hasher)),
                written: offset,
            }) as Box<dyn UploadSink>)
        })
        .await
    }

    async fn read_content(
        &self,
        doc_id: DocId,
        offset: u64,
    ) -> Result<mpsc::Receiver<std::io::Result<Bytes>>, StoreError> {
        Ok(read_file_chunks(self.spool.content(doc_id), offset))
    }

    async fn drop_content(&self, doc_id: DocId) -> Result<(), StoreError> {
        match tokio::fs::remove_file(self.spool.content(doc_id)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn commit(&self, batch: Vec<Write>) -> Result<Vec<Outcome>, StoreError> {
        self.run(move |s| s.write_batch(&batch)).await
    }

    async fn record_answer(
        &self,
        receipt: Receipt,
        bytes: Vec<u8>,
        now_ms: i64,
    ) -> Result<Result<(NodeId, bool), AnswerError>, StoreError> {
        self.run(move |s| s.record_answer_now(&receipt, &bytes, now_ms))
            .await
    }

    async fn recall(
        &self,
        doc_id: DocId,
        notice: RecallNotice,
        now_ms: i64,
    ) -> Result<Recalled, StoreError> {
        self.run(move |s| s.recall_now(doc_id, &notice, now_ms))
            .await
    }

    async fn urge_now(
        &self,
        doc_id: DocId,
        units: Vec<NodeId>,
        now_ms: i64,
        notice: UrgeNotice,
    ) -> Result<Vec<NodeId>, StoreError> {
        self.run(move |s| s.urge_now_blocking(doc_id, &units, now_ms, &notice))
            .await
    }

    async fn undeliverable(
        &self,
        queue: &NodeId,
        doc_id: DocId,
        recipients: Vec<NodeId>,
        reason: String,
        onward: RecallNotice,
        now_ms: i64,
    ) -> Result<Vec<NodeId>, StoreError> {
        let queue = queue.clone();
        self.run(move |s| {
            let key = doc_id.as_bytes().as_slice();
            let txn = s.db.begin_write()?;
            let mut marked = Vec::new();
            {
                let Some(doc) = doc_in(&txn, key)? else {
                    return Ok(marked);
                };
                let mut delivery = txn.open_table(DELIVERY)?;
                for r in &recipients {
                    let current = delivery
                        .get((key, r.as_str()))?
                        .map(|g| parse::<DeliveryRecord>(g.value()))
                        .transpose()?;
                    let Some(mut rec) = current else { continue };
                    if !rec.arrive(Some(&reason), now_ms) {
                        continue;
                    }
                    delivery.insert((key, r.as_str()), json(&rec)?.as_slice())?;
                    txn.open_table(QUEUED_FROM)?
                        .remove((doc.sender.as_str(), r.as_str(), key))?;
                    if !doc.sender.is_local() {
                        queue_push(&txn, &doc.sender, &Push::Notice(onward(r)))?;
                    }
                    marked.push(r.clone());
                }
                txn.open_table(QUEUE)?
                    .remove((queue.as_str(), delivery_rank(doc.urgency), key))?;
            }
            txn.commit()?;
            Ok(marked)
        })
        .await
    }

    async fn run_due(
        &self,
        now_ms: i64,
        steps: Vec<EscalationStep>,
        notices: StepNotices,
    ) -> Result<Vec<Ran>, StoreError> {
        self.run(move |s| s.run_due_now(now_ms, &steps, &notices))
            .await
    }

    async fn next_due(&self) -> Result<Option<i64>, StoreError> {
        self.run(|s| {
            let txn = s.db.begin_read()?;
            let t = txn.open_table(LADDER)?;
            Ok(t.first()?.map(|(k, _)| k.value().0 as i64))
        })
        .await
    }

    async fn claim_deliveries(
        &self,
        node: &NodeId,
        limit: usize,
        in_flight: &[DocId],
    ) -> Result<Vec<DocId>, StoreError> {
        // One hub: its own in-flight set is the only claim there is.
        let (node, skip) = (node.clone(), in_flight.to_vec());
        self.run(move |s| s.queued_for(&node, limit, &skip)).await
    }

    async fn release_delivery(&self, _node: &NodeId, _doc_id: DocId) -> Result<(), StoreError> {
        Ok(())
    }

    async fn queue_length(&self, queue: &NodeId, at_most: u64) -> Result<u64, StoreError> {
        let queue = queue.clone();
        self.run(move |s| {
            let txn = s.db.begin_read()?;
            let t = txn.open_table(QUEUE)?;
            let lo: (&str, u8, &[u8]) = (queue.as_str(), 0, &[]);
            let hi: (&str, u8, &[u8]) = (queue.as_str(), u8::MAX, &[0xff; 17]);
            let mut n = 0;
            for row in t.range(lo..hi)? {
                row?;
                n += 1;
                if n >= at_most {
                    break;
                }
            }
            Ok(n)
        })
        .await
    }

    async fn relayed(&self, queue: &NodeId, doc_id: DocId) -> Result<(), StoreError> {
        let queue = queue.clone();
        self.run(move |s| {
            let key = doc_id.as_bytes().as_slice();
            let txn = s.db.begin_write()?;
            if let Some(doc) = doc_in(&txn, key)? {
                txn.open_table(QUEUE)?
                    .remove((queue.as_str(), delivery_rank(doc.urgency), key))?;
            }
            txn.commit()?;
            Ok(())
        })
        .await
    }

    async fn queued_from(
        &self,
        sender: &NodeId,
        recipient: &NodeId,
        at_most: u64,
    ) -> Result<u64, StoreError> {
        let (sender, recipient) = (sender.clone(), recipient.clone());
        self.run(move |s| s.queued_from(&sender, &recipient, at_most))
            .await
    }

    async fn claim_pushes(
        &self,
        node: &NodeId,
        limit: usize,
    ) -> Result<Vec<(u64, Push)>, StoreError> {
        let node = node.clone();
        self.run(move |s| {
            let txn = s.db.begin_read()?;
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
        })
        .await
    }

    async fn forwarded(
        &self,
        node: &NodeId,
        taken: Vec<u64>,
        _not_taken: Vec<u64>,
    ) -> Result<(), StoreError> {
        if taken.is_empty() {
            return Ok(());
        }
        let node = node.clone();
        self.run(move |s| {
            let txn = s.db.begin_write()?;
            {
                let mut t = txn.open_table(FORWARD)?;
                for seq in taken {
                    t.remove((node.as_str(), seq))?;
                }
            }
            txn.commit()?;
            Ok(())
        })
        .await
    }

    async fn audit_verify(&self) -> Result<Verdict, StoreError> {
        let path = self.audit_path.clone();
        tokio::task::spawn_blocking(move || crate::store::audit::verify(&path))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
            .map_err(StoreError::Io)
    }
}

/// Open an upload's partial file for writing at `offset` (its last durable
/// point), cutting anything after it, with the hash of what it holds.
/// Falls back to 0 if the file is shorter than the record says. Blocking.
fn open_partial(
    path: &Path,
    offset: u64,
    suite: Suite,
) -> std::io::Result<(std::fs::File, Hasher, u64)> {
    use std::io::Seek;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)?;
    let offset = if file.metadata()?.len() < offset {
        0
    } else {
        offset
    };
    // Anything past the durable offset may be torn: cut it off.
    file.set_len(offset)?;
    let mut hasher = Hasher::new(suite);
    let offset = if gongwen_common::transfer::hash_kept(&mut file, offset, &mut hasher)? {
        offset
    } else {
        hasher = Hasher::new(suite);
        file.set_len(0)?;
        0
    };
    file.seek(std::io::SeekFrom::Start(offset))?;
    Ok((file, hasher, offset))
}

/// Bytes written to the file at a time.
const IO_CHUNK: usize = 256 * 1024;

/// An upload into `spool/partial/<doc_id>.part`, renamed into the spool
/// once complete.
struct FileUpload {
    store: Embedded,
    doc_id: DocId,
    digest: String,
    content_len: u64,
    path: PathBuf,
    offset: u64,
    /// The open file and the hash so far (taken while a write runs).
    open: Option<(std::fs::File, Hasher)>,
    written: u64,
}

impl FileUpload {
    /// Write batches as they come, hashing them, and make them durable
    /// every checkpoint interval (recording the durable offset). Blocking.
    fn write_blocking(
        store: &Embedded,
        doc_id: DocId,
        digest: &str,
        content_len: u64,
        (file, mut hasher): (std::fs::File, Hasher),
        offset: u64,
        mut batches: Batches,
    ) -> Result<(std::fs::File, Hasher, u64), StoreError> {
        use std::io::Write as _;
        let mut out = std::io::BufWriter::with_capacity(IO_CHUNK, file);
        let (mut written, mut durable) = (offset, offset);
        let every = gongwen_common::stream::checkpoint_interval(content_len);
        while let Some(batch) = batches.next_blocking() {
            for chunk in &batch {
                hasher.update(chunk);
                out.write_all(chunk)?;
                written += chunk.len() as u64;
            }
            if written - durable >= every {
                out.flush()?;
                out.get_ref().sync_data()?;
                durable = written;
                store.set_partial(
                    doc_id,
                    &PartialUpload {
                        digest: digest.to_owned(),
                        durable,
                    },
                )?;
            }
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        Ok((file, hasher, written))
    }
}

#[async_trait]
impl UploadSink for FileUpload {
    fn offset(&self) -> u64 {
        self.offset
    }

    async fn write(&mut self, batches: Batches) -> Result<(u64, [u8; 32]), StoreError> {
        let open = self
            .open
            .take()
            .ok_or_else(|| StoreError::Task("the upload was already written".into()))?;
        let (store, doc_id, digest, len, offset) = (
            self.store.clone(),
            self.doc_id,
            self.digest.clone(),
            self.content_len,
            self.offset,
        );
        let (file, hasher, written) = tokio::task::spawn_blocking(move || {
            FileUpload::write_blocking(&store, doc_id, &digest, len, open, offset, batches)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))??;
        let mut sha = [0u8; 32];
        sha.copy_from_slice(&hasher.clone().finish());
        self.open = Some((file, hasher));
        self.written = written;
        Ok((written, sha))
    }

    async fn seal(mut self: Box<Self>) -> Result<(), StoreError> {
        let Some((file, _)) = self.open.take() else {
            return Err(StoreError::Task("the upload was not written".into()));
        };
        gongwen_common::failpoint::hit("hub-upload-written");
        tokio::task::spawn_blocking(move || file.sync_all())
            .await
            .map_err(|e| StoreError::Task(e.to_string()))??;
        tokio::fs::rename(&self.path, self.store.spool.content(self.doc_id)).await?;
        // (The spool folder is synced with the batch this accept commits in.)
        gongwen_common::failpoint::hit("hub-upload-synced");
        Ok(())
    }

    async fn discard(self: Box<Self>) {
        let _ = tokio::fs::remove_file(&self.path).await;
    }
}
