//! The agent's durable state, in one redb database (`state/agent.redb`).
//!
//! | table         | key                        | value                                  |
//! |---------------|----------------------------|----------------------------------------|
//! | `sent`        | doc id                     | [`SentRecord`] (JSON)                  |
//! | `receipts`    | (doc id, recipient, kind)  | signed receipt (for documents we sent) |
//! | `received`    | doc id                     | [`ReceivedRecord`] (JSON)              |
//! | `my_receipts` | doc id                     | our own delivered/quarantined receipt  |
//! | `answers`     | doc id                     | our acknowledged/rejected receipt      |
//! | `headers`     | doc id                     | the document's signed header (evidence)|
//! | `to_submit`   | doc id                     | an answer the hub has not confirmed    |
//! | `failed`      | doc id                     | [`FailedRecord`]: a send given up      |
//! | `supervision` | (round, level, doc, unit)  | a 督办 notice received (JSON)          |
//! | `pending`     | doc id                     | (index) received, not yet answered     |
//! | `returned`    | doc id                     | (index) sent, returns not yet dealt with|
//!
//! Outgoing documents not yet accepted by the hub are not here: their
//! spool directory is the record (see [`crate::outgoing::outbox`]).

use std::path::Path;
use std::sync::Arc;

use gongwen_common::envelope::Urgency;
use gongwen_common::receipt::ReceiptKind;
use gongwen_common::{DocId, NodeId};
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

/// An answer waiting to be given to the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedAnswer {
    pub doc_id: DocId,
    pub receipt: Vec<u8>,
    /// Bumped each time the answer is queued (see `SUBMIT_TURN`).
    pub turn: u64,
}

/// Queue `receipt` for the hub, as a new turn.
fn queue_answer(
    txn: &redb::WriteTransaction,
    key: &[u8],
    receipt: &[u8],
) -> Result<(), StoreError> {
    let mut turns = txn.open_table(SUBMIT_TURN)?;
    let turn = turns
        .get(key)?
        .map(|g| g.value())
        .unwrap_or(0)
        .wrapping_add(1);
    turns.insert(key, turn)?;
    txn.open_table(TO_SUBMIT)?.insert(key, receipt)?;
    Ok(())
}

const SENT: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sent");
const RECEIPTS: TableDefinition<(&[u8], &str, u8), &[u8]> = TableDefinition::new("receipts");
const RECEIVED: TableDefinition<&[u8], &[u8]> = TableDefinition::new("received");
const MY_RECEIPTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("my_receipts");
const ANSWERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("answers");
const HEADERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("headers");
const TO_SUBMIT: TableDefinition<&[u8], &[u8]> = TableDefinition::new("to_submit");
/// How many times each queued answer was queued: a confirmation from the
/// hub removes the answer only if it was not queued again meanwhile (a
/// redelivery can queue it again while an earlier offer is in flight).
const SUBMIT_TURN: TableDefinition<&[u8], u64> = TableDefinition::new("submit_turn");
/// The content key of each sent document, kept so that the document can be
/// offered again, byte for byte, to a hub that lost it (the plaintext is in
/// sent/ anyway; the key adds nothing an intruder there would not have).
const SENT_KEYS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sent_keys");
/// Small facts: the generation of the hub's store last seen.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Documents we answered (asked doc id → our latest answer's id).
const REPLIED: TableDefinition<&[u8], &[u8]> = TableDefinition::new("replied");
/// Documents we gave up sending (doc id → [`FailedRecord`], JSON).
const FAILED: TableDefinition<&[u8], &[u8]> = TableDefinition::new("failed");
/// 督办 notices a supervisor unit received, by round: (round time, level,
/// doc id, unit) → the notice (JSON).
const SUPERVISION: TableDefinition<(&str, u32, &[u8], &str), &[u8]> =
    TableDefinition::new("supervision");
/// Received documents still to sign for or return (the console's `/` and
/// its count read this, not every record).
const PENDING: TableDefinition<&[u8], u8> = TableDefinition::new("pending");
/// Sent documents returned (退回) by some recipient that the clerk has not
/// yet sent again or put aside: doc id → how many returns.
const RETURNED: TableDefinition<&[u8], u32> = TableDefinition::new("returned");
/// The text of a received document's pages (OFD), for the inbox search.
const TEXTS: TableDefinition<&[u8], &str> = TableDefinition::new("texts");
/// Which version of the indexes above the store holds (built once from
/// the records by a store written before them).
const INDEX_VERSION: &[u8] = b"1";

/// Keep the pending index in step with a received record just written.
fn index_pending(txn: &redb::WriteTransaction, rec: &ReceivedRecord) -> Result<(), StoreError> {
    let mut t = txn.open_table(PENDING)?;
    let key = rec.doc_id.as_bytes().as_slice();
    if rec.state == ReceivedState::Delivered {
        t.insert(key, 0)?;
    } else {
        t.remove(key)?;
    }
    Ok(())
}

pub use gongwen_common::kvstore::StoreError;
use gongwen_common::kvstore::{from_json as parse, to_json as json};

/// A document the hub accepted from us.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SentRecord {
    pub doc_id: DocId,
    pub title: String,
    pub doc_number: String,
    pub urgency: Urgency,
    pub recipients: Vec<NodeId>,
    /// When the hub accepted it (Unix ms).
    pub sent_ms: i64,
    /// Hex digest (SHA-256, or SM3 on GM) of the signed header.
    pub digest: String,
    /// Recipients the document was recalled from, and when.
    #[serde(default)]
    pub recalled: Vec<NodeId>,
    #[serde(default)]
    pub recalled_ms: Option<i64>,
    /// Units it was addressed to (in a group, say) but not sent to, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<crate::rules::addressing::LeftOut>,
}

/// A document this unit tried to send and gave up on: its files are in
/// `failed/`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FailedRecord {
    pub doc_id: DocId,
    /// Where its file (or folder) is now, under `failed/`.
    pub name: String,
    /// Whom it was for: the outbox folder (or first recipient) and the
    /// sidecar's `to` and `cc`.
    #[serde(default)]
    pub to: Vec<String>,
    #[serde(default)]
    pub cc: Vec<String>,
    pub reason: String,
    pub failed_ms: i64,
}

/// What happened to a document delivered to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceivedState {
    Delivered,
    Quarantined,
    /// Signed for (签收).
    Acknowledged,
    /// Returned (退回).
    Rejected,
    /// Withdrawn by its sender (撤回); the copy is in recalled/.
    Recalled,
}

impl ReceivedState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReceivedState::Delivered => "delivered",
            ReceivedState::Quarantined => "quarantined",
            ReceivedState::Acknowledged => "acknowledged",
            ReceivedState::Rejected => "rejected",
            ReceivedState::Recalled => "recalled",
        }
    }
}

/// A document the hub accepted, as [`Store::record_sent`] records it.
#[derive(Debug, Clone, Copy)]
pub struct Accepted<'a> {
    pub record: &'a SentRecord,
    /// The hub's signed `accepted` receipt.
    pub receipt: &'a [u8],
    pub hub: &'a NodeId,
    pub header: &'a [u8],
    /// Its content key (none for documents sealed before keys were kept).
    pub key: Option<&'a [u8; 32]>,
}

/// A sent document some recipient has not answered yet, with what it takes
/// to offer it again.
#[derive(Debug, Clone)]
pub struct Unfinished {
    pub record: SentRecord,
    pub header: Vec<u8>,
    pub key: Option<[u8; 32]>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReceivedRecord {
    pub doc_id: DocId,
    pub sender: NodeId,
    pub title: String,
    pub doc_number: String,
    pub doc_type: String,
    pub urgency: Urgency,
    pub deadline: Option<i64>,
    pub received_ms: i64,
    pub state: ReceivedState,
    /// Why it was quarantined.
    pub reason: Option<String>,
    /// Hex digest (SHA-256, or SM3 on GM) of the signed header (what our
    /// receipts cite).
    #[serde(default)]
    pub digest: String,
    #[serde(default)]
    pub urge_count: u32,
    /// Who signed for it, or why it was returned.
    #[serde(default)]
    pub answer: Option<String>,
    #[serde(default)]
    pub answered_ms: Option<i64>,
    /// The sender's reason for recalling it.
    #[serde(default)]
    pub recall_reason: Option<String>,
    /// The sender's display name (哈尔滨市人民政府), from its certificate.
    #[serde(default)]
    pub sender_name: Option<String>,
}

/// Build the indexes from the records, once, in a store written before
/// they existed.
fn build_indexes(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META)?;
    if meta
        .get("indexes")?
        .is_some_and(|v| v.value() == INDEX_VERSION)
    {
        return Ok(());
    }
    let received = txn.open_table(RECEIVED)?;
    for row in received.iter()? {
        let (_, v) = row?;
        index_pending(txn, &parse::<ReceivedRecord>(v.value())?)?;
    }
    let receipts = txn.open_table(RECEIPTS)?;
    let mut returned = txn.open_table(RETURNED)?;
    for row in receipts.iter()? {
        let (k, _) = row?;
        let (doc, _, kind) = k.value();
        if kind == ReceiptKind::Rejected.code() {
            let n = returned.get(doc)?.map(|g| g.value()).unwrap_or(0);
            returned.insert(doc, n + 1)?;
        }
    }
    meta.insert("indexes", INDEX_VERSION)?;
    Ok(())
}

/// How many documents wait on the clerk, for the console's navigation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WaitingCounts {
    /// 待签收.
    pub pending: usize,
    /// Sent documents returned and not yet sent again or put aside.
    pub returned: usize,
}

/// Which received documents to list (the console's filters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceivedFilter {
    /// Any of these states (empty: any state).
    pub states: Vec<ReceivedState>,
    /// Text in the sender's id or name (哈尔滨, harbin-gov).
    pub sender: Option<String>,
    /// Text in the title or the document number.
    pub text: Option<String>,
    /// Received at or after (Unix ms).
    pub since_ms: Option<i64>,
    /// Received before (Unix ms).
    pub until_ms: Option<i64>,
}

impl ReceivedFilter {
    /// Documents still to sign for or return (待签收).
    pub fn pending() -> ReceivedFilter {
        ReceivedFilter {
            states: vec![ReceivedState::Delivered],
            ..Default::default()
        }
    }

    pub fn matches(&self, r: &ReceivedRecord) -> bool {
        self.matches_with(r, |_| false)
    }

    /// [`ReceivedFilter::matches`], where the text may also be found in
    /// the document's pages (`in_pages` asks the store only when the title
    /// and number do not have it).
    pub fn matches_with(&self, r: &ReceivedRecord, in_pages: impl FnOnce(&str) -> bool) -> bool {
        let text = self.text.as_deref();
        let in_heading = |t: &str| r.title.contains(t) || r.doc_number.contains(t);
        self.matches_but_text(r) && text.is_none_or(|t| in_heading(t) || in_pages(t))
    }

    fn matches_but_text(&self, r: &ReceivedRecord) -> bool {
        (self.states.is_empty() || self.states.contains(&r.state))
            && self.sender.as_deref().is_none_or(|s| {
                r.sender.as_str().contains(s)
                    || r.sender_name.as_deref().is_some_and(|n| n.contains(s))
            })
            && self.since_ms.is_none_or(|t| r.received_ms >= t)
            && self.until_ms.is_none_or(|t| r.received_ms < t)
    }
}

/// The agent's store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Arc<gongwen_common::kvstore::Db>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// True while another handle to this store exists (work of a stopped
    /// agent still running on a blocking thread keeps the file in use).
    pub fn shared(&self) -> bool {
        Arc::strong_count(&self.db) > 1
    }

    /// Open the store; create it only when `fresh_ok`. A damaged file is an
    /// error, never replaced.
    pub fn open(path: &Path, fresh_ok: bool) -> Result<Store, StoreError> {
        let db = gongwen_common::kvstore::open(path, fresh_ok, "sent/ or inbox/ hold documents")?;
        let txn = db.begin_write()?;
        {
            txn.open_table(SENT)?;
            txn.open_table(RECEIPTS)?;
            txn.open_table(RECEIVED)?;
            txn.open_table(MY_RECEIPTS)?;
            txn.open_table(ANSWERS)?;
            txn.open_table(TO_SUBMIT)?;
            txn.open_table(SUBMIT_TURN)?;
            txn.open_table(HEADERS)?;
            txn.open_table(SENT_KEYS)?;
            txn.open_table(META)?;
            txn.open_table(REPLIED)?;
            txn.open_table(FAILED)?;
            txn.open_table(SUPERVISION)?;
            txn.open_table(PENDING)?;
            txn.open_table(RETURNED)?;
            txn.open_table(TEXTS)?;
            build_indexes(&txn)?;
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

    /// Note that `from` no longer hold the document (recalled).
    pub fn mark_recalled(
        &self,
        doc_id: DocId,
        from: &[NodeId],
        at_ms: i64,
    ) -> Result<(), StoreError> {
        let key = doc_id.as_bytes().as_slice();
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(SENT)?;
            let rec = t
                .get(key)?
                .map(|g| parse::<SentRecord>(g.value()))
                .transpose()?;
            if let Some(mut rec) = rec {
                for r in from {
                    if !rec.recalled.contains(r) {
                        rec.recalled.push(r.clone());
                    }
                }
                rec.recalled_ms = Some(at_ms);
                t.insert(key, json(&rec)?.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Record a document the hub accepted, with its `accepted` receipt.
    /// Record documents the hub accepted, in one commit: each one's
    /// record, header and `accepted` receipt.
    pub fn record_sent(&self, accepted: &[Accepted<'_>]) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut sent = txn.open_table(SENT)?;
            let mut headers = txn.open_table(HEADERS)?;
            let mut receipts = txn.open_table(RECEIPTS)?;
            let mut keys = txn.open_table(SENT_KEYS)?;
            let mut replied = txn.open_table(REPLIED)?;
            for a in accepted {
                let key = a.record.doc_id.as_bytes().as_slice();
                if let Ok(h) = gongwen_common::envelope::SealedHeader::parse(a.header)
                    && let Some(answers) = h.meta().links.answers
                {
                    replied.insert(answers.doc_id.as_bytes().as_slice(), key)?;
                }
                sent.insert(key, json(a.record)?.as_slice())?;
                headers.insert(key, a.header)?;
                if let Some(k) = a.key {
                    keys.insert(key, k.as_slice())?;
                }
                receipts.insert(
                    (key, a.hub.as_str(), ReceiptKind::Accepted.code()),
                    a.receipt,
                )?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    pub fn sent(&self, doc_id: DocId) -> Result<Option<SentRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(SENT)?;
        t.get(doc_id.as_bytes().as_slice())?
            .map(|g| parse(g.value()))
            .transpose()
    }

    /// Every sent document, oldest first.
    pub fn all_sent(&self) -> Result<Vec<SentRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(SENT)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (_, v) = row?;
            out.push(parse(v.value())?);
        }
        Ok(out)
    }

    /// One page of sent documents, newest first, and whether there are more.
    pub fn sent_page(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<SentRecord>, bool), StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(SENT)?;
        let mut page = Vec::with_capacity(limit);
        for row in t.iter()?.rev().skip(offset) {
            let (_, v) = row?;
            if page.len() == limit {
                return Ok((page, true));
            }
            page.push(parse(v.value())?);
        }
        Ok((page, false))
    }

    /// Store receipts about documents we sent, in one commit; for each,
    /// false if already held.
    pub fn add_receipts(
        &self,
        receipts: &[(DocId, &NodeId, ReceiptKind, &[u8])],
    ) -> Result<Vec<bool>, StoreError> {
        let txn = self.db.begin_write()?;
        let mut new = Vec::with_capacity(receipts.len());
        {
            let mut t = txn.open_table(RECEIPTS)?;
            let mut returned = txn.open_table(RETURNED)?;
            for &(doc_id, recipient, kind, receipt) in receipts {
                let key = doc_id.as_bytes().as_slice();
                let k = (key, recipient.as_str(), kind.code());
                let fresh = t.get(k)?.is_none();
                if fresh {
                    t.insert(k, receipt)?;
                    if kind == ReceiptKind::Rejected {
                        let n = returned.get(key)?.map(|g| g.value()).unwrap_or(0);
                        returned.insert(key, n + 1)?;
                    }
                }
                new.push(fresh);
            }
        }
        txn.commit()?;
        Ok(new)
    }

    /// Receipts held for a sent document: (recipient, kind, time).
    pub fn receipts(
        &self,
        doc_id: DocId,
    ) -> Result<Vec<(NodeId, ReceiptKind, Vec<u8>)>, StoreError> {
        let key = doc_id.as_bytes().as_slice();
        let txn = self.db.begin_read()?;
        let t = txn.open_table(RECEIPTS)?;
        let mut out = Vec::new();
        for row in t.range((key, "", 0u8)..(key, "\u{10ffff}", u8::MAX))? {
            let (k, v) = row?;
            let (_, r, kind) = k.value();
            if let (Ok(id), Some(kind)) =
                (NodeId::parse_address(r), ReceiptKind::from_code(kind).ok())
            {
                out.push((id, kind, v.value().to_vec()));
            }
        }
        Ok(out)
    }

    pub fn received(&self, doc_id: DocId) -> Result<Option<(ReceivedRecord, Vec<u8>)>, StoreError> {
        let key = doc_id.as_bytes().as_slice();
        let txn = self.db.begin_read()?;
        let rec = txn.open_table(RECEIVED)?;
        let mine = txn.open_table(MY_RECEIPTS)?;
        let r = rec
            .get(key)?
            .map(|g| parse::<ReceivedRecord>(g.value()))
            .transpose()?;
        let m = mine.get(key)?.map(|g| g.value().to_vec());
        Ok(r.zip(m))
    }

    /// Record a document delivered to us (or quarantined) with our receipt.
    pub fn record_received(
        &self,
        rec: &ReceivedRecord,
        my_receipt: &[u8],
        header: &[u8],
    ) -> Result<(), StoreError> {
        self.record_received_all(&[(rec, my_receipt, header)])
    }

    /// Record received documents (record, our receipt, header), all in one
    /// commit.
    pub fn record_received_all(
        &self,
        items: &[(&ReceivedRecord, &[u8], &[u8])],
    ) -> Result<(), StoreError> {
        let items: Vec<_> = items.iter().map(|(r, m, h)| (*r, *m, *h, "")).collect();
        self.record_filed(&items)
    }

    /// [`Store::record_received_all`], with the text of each document's
    /// pages (what the inbox search looks in besides title and number;
    /// empty when there is none).
    pub fn record_filed(
        &self,
        items: &[(&ReceivedRecord, &[u8], &[u8], &str)],
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut received = txn.open_table(RECEIVED)?;
            let mut headers = txn.open_table(HEADERS)?;
            let mut receipts = txn.open_table(MY_RECEIPTS)?;
            let mut texts = txn.open_table(TEXTS)?;
            for (rec, my_receipt, header, text) in items {
                let key = rec.doc_id.as_bytes().as_slice();
                received.insert(key, json(rec)?.as_slice())?;
                headers.insert(key, *header)?;
                receipts.insert(key, *my_receipt)?;
                if !text.is_empty() {
                    texts.insert(key, *text)?;
                }
                index_pending(&txn, rec)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Change the record of a received document in one write transaction:
    /// `change` sees the record as it stands now, so a change made
    /// meanwhile by another thread (a clerk's answer, a recall) is never
    /// overwritten by one computed from an older copy. Nothing is written
    /// when there is no record or `change` says no (`Ok(None)`); returns
    /// the record as written.
    pub fn update_received(
        &self,
        doc_id: DocId,
        change: impl FnOnce(&ReceivedRecord) -> Option<ReceivedRecord>,
    ) -> Result<Option<ReceivedRecord>, StoreError> {
        let key = doc_id.as_bytes().as_slice();
        let txn = self.db.begin_write()?;
        let written = {
            let mut t = txn.open_table(RECEIVED)?;
            let now = t
                .get(key)?
                .map(|g| parse::<ReceivedRecord>(g.value()))
                .transpose()?;
            match now.as_ref().and_then(change) {
                Some(rec) => {
                    t.insert(key, json(&rec)?.as_slice())?;
                    index_pending(&txn, &rec)?;
                    Some(rec)
                }
                None => None,
            }
        };
        txn.commit()?;
        Ok(written)
    }

    /// Record a clerk's answer and queue its receipt for the hub, decided
    /// and written in one write transaction (redb runs one at a time): of
    /// two answers given at the same moment, the second `decide` sees the
    /// first one's record and refuses, so this unit never records — nor,
    /// since `decide` signs, even makes — two answers to one document.
    /// `decide` gets the record as it stands (`None`: never received) and
    /// returns the answered record with its signed receipt, or why not.
    pub fn record_answer<E: From<StoreError>>(
        &self,
        doc_id: DocId,
        decide: impl FnOnce(Option<&ReceivedRecord>) -> Result<(ReceivedRecord, Vec<u8>), E>,
    ) -> Result<ReceivedRecord, E> {
        let key = doc_id.as_bytes().as_slice();
        let txn = self.db.begin_write()?;
        let rec = {
            let mut received = txn.open_table(RECEIVED).map_err(StoreError::from)?;
            let now = received
                .get(key)
                .map_err(StoreError::from)?
                .map(|g| parse::<ReceivedRecord>(g.value()))
                .transpose()?;
            let (rec, receipt) = decide(now.as_ref())?;
            received
                .insert(key, json(&rec)?.as_slice())
                .map_err(StoreError::from)?;
            txn.open_table(ANSWERS)
                .map_err(StoreError::from)?
                .insert(key, receipt.as_slice())
                .map_err(StoreError::from)?;
            queue_answer(&txn, key, &receipt)?;
            index_pending(&txn, &rec)?;
            rec
        };
        txn.commit().map_err(StoreError::from)?;
        Ok(rec)
    }

    /// Remember that sending `rec.doc_id` was given up, and why.
    pub fn record_failed(&self, rec: &FailedRecord) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(FAILED)?
            .insert(rec.doc_id.as_bytes().as_slice(), json(rec)?.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// Why sending `doc_id` was given up, if it was.
    pub fn failed(&self, doc_id: DocId) -> Result<Option<FailedRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(FAILED)?;
        t.get(doc_id.as_bytes().as_slice())?
            .map(|g| parse(g.value()))
            .transpose()
    }

    /// Every failure kept, in no particular order.
    pub fn all_failed(&self) -> Result<Vec<FailedRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(FAILED)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (_, v) = row?;
            out.push(parse(v.value())?);
        }
        Ok(out)
    }

    /// Record 督办 notices of one escalation round (`at`, `level`); every
    /// notice of that round held, in order of document and unit. A notice
    /// given again (pushed again after a reconnect) is held once.
    pub fn record_supervision(
        &self,
        at: &str,
        level: u32,
        notices: &[gongwen_common::notice::Notice],
    ) -> Result<Vec<gongwen_common::notice::Notice>, StoreError> {
        let txn = self.db.begin_write()?;
        let all = {
            let mut t = txn.open_table(SUPERVISION)?;
            for n in notices {
                t.insert(
                    (
                        at,
                        level,
                        n.doc_id.as_bytes().as_slice(),
                        n.recipient.as_str(),
                    ),
                    json(n)?.as_slice(),
                )?;
            }
            let lo: (&str, u32, &[u8], &str) = (at, level, &[], "");
            let hi: (&str, u32, &[u8], &str) = (at, level, &[0xff; 17], "");
            let mut all = Vec::new();
            for row in t.range(lo..hi)? {
                let (_, v) = row?;
                all.push(parse(v.value())?);
            }
            all
        };
        txn.commit()?;
        Ok(all)
    }

    /// The 督办 notices this (supervision) unit received, newest round
    /// first, at most `limit`.
    pub fn supervision_notices(
        &self,
        limit: usize,
    ) -> Result<Vec<gongwen_common::notice::Notice>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(SUPERVISION)?;
        let mut out = Vec::new();
        for row in t.iter()?.rev().take(limit) {
            let (_, v) = row?;
            out.push(parse(v.value())?);
        }
        Ok(out)
    }

    /// Our latest answer (accepted by the hub) to a received document.
    pub fn replied(&self, asked: DocId) -> Result<Option<DocId>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(REPLIED)?;
        Ok(t.get(asked.as_bytes().as_slice())?
            .and_then(|g| <[u8; 16]>::try_from(g.value()).ok().map(DocId::from_bytes)))
    }

    /// A document's signed header (sent or received).
    pub fn header(&self, doc_id: DocId) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(HEADERS)?;
        Ok(t.get(doc_id.as_bytes().as_slice())?
            .map(|g| g.value().to_vec()))
    }

    /// Our own answer receipt for a document, if any.
    pub fn answer(&self, doc_id: DocId) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(ANSWERS)?;
        Ok(t.get(doc_id.as_bytes().as_slice())?
            .map(|g| g.value().to_vec()))
    }

    /// Sent documents that some recipient (not recalled from) has neither
    /// signed for nor returned: what a hub that lost its store must be
    /// offered again.
    pub fn unfinished_sent(&self) -> Result<Vec<Unfinished>, StoreError> {
        let txn = self.db.begin_read()?;
        let (sent, receipts) = (txn.open_table(SENT)?, txn.open_table(RECEIPTS)?);
        let (headers, keys) = (txn.open_table(HEADERS)?, txn.open_table(SENT_KEYS)?);
        let answered = [
            ReceiptKind::Acknowledged.code(),
            ReceiptKind::Rejected.code(),
        ];
        let mut out = Vec::new();
        for row in sent.iter()? {
            let (k, v) = row?;
            let record: SentRecord = parse(v.value())?;
            let key = k.value();
            let mut open = false;
            for r in record
                .recipients
                .iter()
                .filter(|r| !record.recalled.contains(r))
            {
                let mut done = false;
                for code in answered {
                    done |= receipts.get((key, r.as_str(), code))?.is_some();
                }
                open |= !done;
            }
            if !open {
                continue;
            }
            let Some(header) = headers.get(key)?.map(|g| g.value().to_vec()) else {
                continue;
            };
            let content_key = keys
                .get(key)?
                .and_then(|g| <[u8; 32]>::try_from(g.value()).ok());
            out.push(Unfinished {
                record,
                header,
                key: content_key,
            });
        }
        Ok(out)
    }

    /// The generation of the hub's store this agent last worked with.
    pub fn hub_generation(&self) -> Result<Option<String>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(META)?;
        Ok(t.get("hub_generation")?
            .map(|g| String::from_utf8_lossy(g.value()).into_owned()))
    }

    pub fn set_hub_generation(&self, generation: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(META)?
            .insert("hub_generation", generation.as_bytes())?;
        txn.commit()?;
        Ok(())
    }

    /// Queue our answer to `doc_id` for the hub again (it asked for a
    /// document we already answered: it has lost our answer). Whether
    /// there was one.
    pub fn resubmit_answer(&self, doc_id: DocId) -> Result<bool, StoreError> {
        let key = doc_id.as_bytes().as_slice();
        let txn = self.db.begin_write()?;
        let found = {
            let answer = txn
                .open_table(ANSWERS)?
                .get(key)?
                .map(|g| g.value().to_vec());
            match answer {
                Some(a) => {
                    queue_answer(&txn, key, &a)?;
                    true
                }
                None => false,
            }
        };
        txn.commit()?;
        Ok(found)
    }

    /// Answers the hub has not confirmed yet, each with its turn (give it
    /// back to [`Store::submitted`]).
    pub fn to_submit(&self) -> Result<Vec<QueuedAnswer>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(TO_SUBMIT)?;
        let turns = txn.open_table(SUBMIT_TURN)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            if let Ok(b) = <[u8; 16]>::try_from(k.value()) {
                out.push(QueuedAnswer {
                    doc_id: DocId::from_bytes(b),
                    receipt: v.value().to_vec(),
                    turn: turns.get(k.value())?.map(|g| g.value()).unwrap_or(0),
                });
            }
        }
        Ok(out)
    }

    /// The hub has the answer queued at `turn`: unqueue it, unless it was
    /// queued again since (then the hub must be given it again).
    pub fn submitted(&self, doc_id: DocId, turn: u64) -> Result<(), StoreError> {
        let key = doc_id.as_bytes().as_slice();
        let txn = self.db.begin_write()?;
        {
            let mut turns = txn.open_table(SUBMIT_TURN)?;
            let now = turns.get(key)?.map(|g| g.value()).unwrap_or(0);
            if now == turn {
                turns.remove(key)?;
                txn.open_table(TO_SUBMIT)?.remove(key)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// How many documents wait on the clerk: two index lengths.
    pub fn waiting_counts(&self) -> Result<WaitingCounts, StoreError> {
        let txn = self.db.begin_read()?;
        Ok(WaitingCounts {
            pending: txn.open_table(PENDING)?.len()? as usize,
            returned: txn.open_table(RETURNED)?.len()? as usize,
        })
    }

    /// Sent documents returned by some recipient and not yet dealt with,
    /// newest first, each with how many returned it.
    pub fn returned_open(&self) -> Result<Vec<(SentRecord, u32)>, StoreError> {
        let txn = self.db.begin_read()?;
        let (returned, sent) = (txn.open_table(RETURNED)?, txn.open_table(SENT)?);
        let mut out = Vec::new();
        for row in returned.iter()?.rev() {
            let (k, n) = row?;
            if let Some(rec) = sent.get(k.value())? {
                out.push((parse(rec.value())?, n.value()));
            }
        }
        Ok(out)
    }

    /// How many recipients returned `doc_id`, of the returns not yet
    /// dealt with.
    pub fn returns_open(&self, doc_id: DocId) -> Result<u32, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(RETURNED)?;
        Ok(t.get(doc_id.as_bytes().as_slice())?
            .map(|g| g.value())
            .unwrap_or(0))
    }

    /// The clerk has dealt with the returns of `doc_id` (sent it again, or
    /// put it aside): it leaves the 已退回 list until another return.
    pub fn close_returns(&self, doc_id: DocId) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(RETURNED)?
            .remove(doc_id.as_bytes().as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// Received documents whose answer (签收/退回) has not reached the
    /// hub yet (未送达交换中心).
    pub fn answers_not_at_hub(&self) -> Result<std::collections::HashSet<DocId>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(TO_SUBMIT)?;
        let mut out = std::collections::HashSet::new();
        for row in t.iter()? {
            let (k, _) = row?;
            if let Ok(b) = <[u8; 16]>::try_from(k.value()) {
                out.insert(DocId::from_bytes(b));
            }
        }
        Ok(out)
    }

    /// One page of the received documents that match `filter`, newest
    /// first: `limit` after skipping `offset`, and whether more match. Read
    /// in the store, stopping as soon as the page is full.
    pub fn received_page(
        &self,
        filter: &ReceivedFilter,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<ReceivedRecord>, bool), StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(RECEIVED)?;
        let texts = txn.open_table(TEXTS)?;
        let mut page = Vec::with_capacity(limit);
        let mut skipped = 0;
        // Newest first: a record matching the filter is skipped while
        // `offset` are not, then kept; true once the page is full and more
        // match.
        let mut take = |r: ReceivedRecord, page: &mut Vec<ReceivedRecord>| {
            let in_pages = |t: &str| {
                texts
                    .get(r.doc_id.as_bytes().as_slice())
                    .ok()
                    .flatten()
                    .is_some_and(|body| body.value().contains(t))
            };
            if !filter.matches_with(&r, in_pages) {
                return false;
            }
            if skipped < offset {
                skipped += 1;
                return false;
            }
            if page.len() == limit {
                return true;
            }
            page.push(r);
            false
        };
        if filter.states == [ReceivedState::Delivered] {
            // Only what is pending: the index names them, no other
            // record is read.
            for row in txn.open_table(PENDING)?.iter()?.rev() {
                let (k, _) = row?;
                if let Some(v) = t.get(k.value())?
                    && take(parse(v.value())?, &mut page)
                {
                    return Ok((page, true));
                }
            }
        } else {
            for row in t.iter()?.rev() {
                let (_, v) = row?;
                if take(parse(v.value())?, &mut page) {
                    return Ok((page, true));
                }
            }
        }
        Ok((page, false))
    }

    /// Every document delivered to us, oldest first.
    pub fn all_received(&self) -> Result<Vec<ReceivedRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(RECEIVED)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (_, v) = row?;
            out.push(parse(v.value())?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn received(doc_id: DocId) -> ReceivedRecord {
        ReceivedRecord {
            doc_id,
            sender: NodeId::parse("prov-gov").unwrap(),
            title: "通知".into(),
            doc_number: String::new(),
            doc_type: String::new(),
            urgency: Urgency::Normal,
            deadline: None,
            received_ms: 1,
            state: ReceivedState::Acknowledged,
            reason: None,
            digest: String::new(),
            urge_count: 0,
            answer: Some("张三".into()),
            answered_ms: Some(2),
            recall_reason: None,
            sender_name: None,
        }
    }

    #[test]
    fn an_answer_queued_again_while_in_flight_is_given_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("agent.redb"), true).unwrap();
        let doc = DocId::generate();
        store
            .record_answer(doc, |_| {
                Ok::<_, StoreError>((received(doc), b"receipt".to_vec()))
            })
            .unwrap();
        let first = store.to_submit().unwrap();
        assert_eq!(first.len(), 1);
        // While that offer is at the hub (which does not know the document
        // yet), the document is delivered again and the answer queued again.
        assert!(store.resubmit_answer(doc).unwrap());
        store.submitted(doc, first[0].turn).unwrap();
        let again = store.to_submit().unwrap();
        assert_eq!(again.len(), 1, "the answer queued again was dropped");
        assert_eq!(again[0].receipt, b"receipt");
        store.submitted(doc, again[0].turn).unwrap();
        assert!(store.to_submit().unwrap().is_empty());
    }
}
