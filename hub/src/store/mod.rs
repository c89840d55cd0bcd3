//! The hub's durable state behind one trait, [`Store`], with two backends:
//!
//! - [`embedded`] (the default): redb for records and queues, the spool
//!   folder for ciphertext and `audit.log` for the receipt chain, all in
//!   the hub's data directory. One hub.
//! - [`postgres`] (`[store] postgres = "…"`): everything — records,
//!   queues, the escalation ladder, the audit chain and the ciphertext — in
//!   one PostgreSQL database, so two or more hubs serve one province and
//!   the database's own replication carries durability.
//!
//! Both apply the per-recipient rules of [`crate::rules::lifecycle`]; they differ
//! only in how they load, save and lock. One test suite runs against both
//! (`tests/tests/store.rs`).

pub mod audit;
pub mod commit;
pub mod spool;

pub mod embedded;
pub mod import;
pub mod postgres;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use gongwen_common::config::EscalationStep;
use gongwen_common::receipt::{Receipt, ReceiptKind};
use gongwen_common::suite::Suite;
use gongwen_common::transfer::Batches;
use gongwen_common::{DocId, NodeId};
use tokio::sync::mpsc;

pub use crate::rules::lifecycle::{AnswerError, DeliveryRecord, DeliveryState, StepRun};
pub use gongwen_common::kvstore::StoreError;

/// A file as the hub may show it (name and size; never content).
pub use crate::rules::records::{DocLinks, DocRecord};
pub use gongwen_common::supervision::FileRow;

/// Something queued for a node: a receipt for a document it sent, or a
/// notice (urge, supervision, recall).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Push {
    Receipt(Vec<u8>),
    Notice(Vec<u8>),
}

impl Push {
    /// One tag byte, then the body.
    pub fn encode(&self) -> Vec<u8> {
        let (tag, body) = match self {
            Push::Receipt(b) => (0u8, b),
            Push::Notice(b) => (1u8, b),
        };
        let mut v = Vec::with_capacity(body.len() + 1);
        v.push(tag);
        v.extend_from_slice(body);
        v
    }

    pub fn decode(b: &[u8]) -> Option<Push> {
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

/// The outcome of recording a recipient's delivery receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// False when the same receipt kind was already recorded.
    pub new: bool,
    pub sender: NodeId,
    /// True when this receipt was the last one the content was kept for:
    /// the document is marked as having no content in the same commit, and
    /// the caller then calls [`Store::drop_content`].
    pub content_done: bool,
}

/// What a recall did, recipient by recipient.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recalled {
    /// Still queued at the hub: withdrawn there.
    pub withdrawn: Vec<NodeId>,
    /// Holding it: sent a recall notice.
    pub notified: Vec<NodeId>,
    /// Had already signed for or returned it.
    pub answered: Vec<NodeId>,
}

/// An accepted document, ready to be recorded.
#[derive(Debug, Clone)]
pub struct Accept {
    pub record: DocRecord,
    pub header: Vec<u8>,
    /// The hub's signed `accepted` receipt and what it says.
    pub receipt_bytes: Vec<u8>,
    pub receipt: Receipt,
    pub deadline_ms: i64,
    pub first_due_ms: Option<i64>,
    /// When it was accepted (hub clock).
    pub at_ms: i64,
}

/// A recipient's verified `delivered` or `quarantined` receipt.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub receipt_bytes: Vec<u8>,
    pub receipt: Receipt,
    /// When it arrived (hub clock).
    pub at_ms: i64,
}

/// One of the two hot writes the group committer batches.
#[derive(Debug, Clone)]
pub enum Write {
    Accept(Box<Accept>),
    Delivery(Box<Delivery>),
}

/// What one write in a batch came to: `None` for an accept, and for a
/// delivery receipt of a document the store does not hold (nothing was
/// written for it).
pub type Outcome = Option<Recorded>;

/// Makes the recall notice for one recipient (or another notice about
/// one recipient's copy).
pub type RecallNotice = Arc<dyn Fn(&NodeId) -> Vec<u8> + Send + Sync>;
/// Makes the urging notice for one recipient (document, recipient, its
/// record after the urge).
pub type UrgeNotice = Arc<dyn Fn(&DocRecord, &NodeId, &DeliveryRecord) -> Vec<u8> + Send + Sync>;
/// Makes an escalation step's notices: (node to notify, body).
pub type StepNotices =
    Arc<dyn Fn(&DocRecord, &NodeId, &DeliveryRecord, u32) -> Vec<(NodeId, Vec<u8>)> + Send + Sync>;

/// What `audit verify` found.
pub use crate::store::audit::Verdict;

/// Where an upload's bytes go until the document is accepted. An upload
/// that breaks keeps what was made durable; the next attempt resumes there.
#[async_trait]
pub trait UploadSink: Send {
    /// Bytes kept from an earlier attempt: the agent sends from here.
    fn offset(&self) -> u64;
    /// Write what arrives until `batches` ends, durable at checkpoints.
    /// Returns how many bytes the upload holds (the offset included) and
    /// the SHA-256 of all of them.
    async fn write(&mut self, batches: Batches) -> Result<(u64, [u8; 32]), StoreError>;
    /// The content is complete and matches its signed header: make it
    /// durable as the document's content (before the accept commits).
    async fn seal(self: Box<Self>) -> Result<(), StoreError>;
    /// The content does not match its header: forget it.
    async fn discard(self: Box<Self>);
}

/// The hub's durable state. Every method is one transaction: a change is
/// whole or absent.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// `"embedded"` or `"postgres"`.
    fn backend(&self) -> &'static str;

    /// This store's generation: a fresh random id whenever a store starts
    /// empty. Sent in the welcome, so agents notice a hub that lost its
    /// state and offer again what it may lack.
    fn generation(&self) -> &str;

    // — hubs sharing the store (defaults: one hub, nothing shared) —

    /// The events other hubs raise, taken once by the hub that runs the
    /// wake-ups; `None` when no other hub can raise any.
    fn take_events(&self) -> Option<mpsc::UnboundedReceiver<StoreEvent>> {
        None
    }
    /// Say that this hub is alive and serving as `label`, for `lease`
    /// (renewed by the backend until closed).
    async fn announce(&self, _label: &str, _lease: std::time::Duration) -> Result<(), StoreError> {
        Ok(())
    }
    /// Give back every claim this hub holds for `node` (its link dropped).
    async fn release_unit(&self, _node: &NodeId) -> Result<(), StoreError> {
        Ok(())
    }
    /// Give back every claim this hub holds for a unit not in
    /// `connected` (not connected here): a give-back that failed while the
    /// database was away, or a claim whose answer it never heard. A live
    /// hub's claims never lapse, so without this they would keep another
    /// hub from delivering to that unit for as long as this one runs.
    /// Returns how many claims went back.
    async fn release_claims_of_absent(&self, _connected: &[NodeId]) -> Result<u64, StoreError> {
        Ok(0)
    }
    /// Record that `node` is connected to this hub.
    async fn unit_connected(
        &self,
        _node: &NodeId,
        _since: &str,
        _addr: &str,
    ) -> Result<(), StoreError> {
        Ok(())
    }
    /// Record that `node` left this hub.
    async fn unit_disconnected(&self, _node: &NodeId) -> Result<(), StoreError> {
        Ok(())
    }
    /// Every unit connected to any live hub sharing the store.
    async fn presence(&self) -> Result<Vec<Presence>, StoreError> {
        Ok(Vec::new())
    }

    /// Make a consistent copy of the store, the audit log and the content
    /// in `into` (a new folder inside the data folder), writes held off
    /// while it is taken. Returns how many documents it holds.
    async fn snapshot(&self, _into: &std::path::Path) -> Result<usize, StoreError> {
        Err(StoreError::Task(
            "this hub keeps its state in PostgreSQL: back it up with the database's own tools (pg_dump, or continuous archiving with pg_basebackup); the data folder holds nothing to save".into(),
        ))
    }

    /// A small real read, for /healthz: does the store answer now?
    async fn ping(&self) -> Result<(), StoreError> {
        let probe = NodeId::parse("healthz-probe").map_err(|e| StoreError::Task(e.to_string()))?;
        self.binding(&probe).await.map(|_| ())
    }

    // — units' encryption keys —

    async fn put_binding(&self, node: &NodeId, binding: &[u8]) -> Result<(), StoreError>;
    async fn binding(&self, node: &NodeId) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every node that published a key, with its binding.
    async fn bindings(&self) -> Result<Vec<(NodeId, Vec<u8>)>, StoreError>;

    // — documents and their copies —

    async fn doc(&self, doc_id: DocId) -> Result<Option<DocRecord>, StoreError>;
    async fn header(&self, doc_id: DocId) -> Result<Option<Vec<u8>>, StoreError>;
    async fn accepted_receipt(&self, doc_id: DocId) -> Result<Option<Vec<u8>>, StoreError>;
    async fn delivery(
        &self,
        doc_id: DocId,
        node: &NodeId,
    ) -> Result<Option<DeliveryRecord>, StoreError>;
    /// Every recipient's record of a document.
    async fn deliveries(&self, doc_id: DocId) -> Result<Vec<(NodeId, DeliveryRecord)>, StoreError>;
    /// Receipt kinds held for each recipient of a document.
    async fn receipt_kinds(&self, doc_id: DocId) -> Result<Vec<(NodeId, ReceiptKind)>, StoreError>;
    /// Every document with every recipient's record (for supervision).
    #[allow(clippy::type_complexity)]
    async fn all_deliveries(
        &self,
    ) -> Result<Vec<(DocRecord, Vec<(NodeId, DeliveryRecord)>)>, StoreError>;

    // — content (ciphertext) —

    /// Start or resume the upload of `doc_id` whose signed header has
    /// `digest`; an earlier attempt's bytes count only for the same digest.
    async fn open_upload(
        &self,
        doc_id: DocId,
        digest: &str,
        content_len: u64,
        suite: Suite,
    ) -> Result<Box<dyn UploadSink>, StoreError>;
    /// A document's content from `offset`, in chunks, read ahead a little
    /// (bounded memory).
    async fn read_content(
        &self,
        doc_id: DocId,
        offset: u64,
    ) -> Result<mpsc::Receiver<std::io::Result<Bytes>>, StoreError>;
    /// Remove content every recipient has (after [`Recorded::content_done`]).
    async fn drop_content(&self, doc_id: DocId) -> Result<(), StoreError>;

    // — the changes —

    /// Accepts and delivery receipts, with their audit entries, in one
    /// commit (the group committer's batch). A repeated delivery receipt
    /// changes nothing and is not audited again. On error nothing of the
    /// batch is committed.
    async fn commit(&self, batch: Vec<Write>) -> Result<Vec<Outcome>, StoreError>;
    /// A clerk's answer (acknowledged or rejected), audited, and queued for
    /// the sender. Returns the sender and whether it was new.
    async fn record_answer(
        &self,
        receipt: Receipt,
        bytes: Vec<u8>,
        now_ms: i64,
    ) -> Result<Result<(NodeId, bool), AnswerError>, StoreError>;
    /// Withdraw a document from every recipient that has not answered.
    async fn recall(
        &self,
        doc_id: DocId,
        notice: RecallNotice,
        now_ms: i64,
    ) -> Result<Recalled, StoreError>;
    /// The next hub on the way refused `doc_id` for good, for its copies
    /// for `recipients` (units of one other domain, whose relay queue is
    /// `queue`): each copy still queued is marked quarantined with
    /// `reason`, so nothing tries it again and `status` says why; the
    /// document leaves `queue`; and, when its sender is elsewhere, the
    /// notice `onward` makes for each copy marked is queued back towards
    /// the sender. Returns the copies marked.
    async fn undeliverable(
        &self,
        queue: &NodeId,
        doc_id: DocId,
        recipients: Vec<NodeId>,
        reason: String,
        onward: RecallNotice,
        now_ms: i64,
    ) -> Result<Vec<NodeId>, StoreError>;
    /// The sender urges (催办) now: every open copy of `doc_id` among
    /// `units` (all when empty) gets an urging notice and one more on its
    /// urge count. Returns who was urged.
    async fn urge_now(
        &self,
        doc_id: DocId,
        units: Vec<NodeId>,
        now_ms: i64,
        notice: UrgeNotice,
    ) -> Result<Vec<NodeId>, StoreError>;
    /// Run every escalation step due at `now_ms`, each exactly once (across
    /// hubs sharing the store): the step's record, its notices and the next
    /// step's place in the ladder are one commit.
    async fn run_due(
        &self,
        now_ms: i64,
        steps: Vec<EscalationStep>,
        notices: StepNotices,
    ) -> Result<Vec<Ran>, StoreError>;
    /// When the next escalation step is due (Unix ms), if any.
    async fn next_due(&self) -> Result<Option<i64>, StoreError>;

    // — queues —

    /// Documents to deliver to `node` now, most urgent first, then oldest;
    /// none in `in_flight` (this hub's own deliveries under way), none
    /// another hub is delivering. Claimed for this hub until delivered,
    /// released, or the claim lapses (the hub died).
    async fn claim_deliveries(
        &self,
        node: &NodeId,
        limit: usize,
        in_flight: &[DocId],
    ) -> Result<Vec<DocId>, StoreError>;
    /// How many documents from `sender` wait, not yet delivered, for
    /// `recipient`: counted up to `at_most` (the quota), no further.
    async fn queued_from(
        &self,
        sender: &NodeId,
        recipient: &NodeId,
        at_most: u64,
    ) -> Result<u64, StoreError>;
    /// Give back a claimed delivery that did not finish.
    async fn release_delivery(&self, node: &NodeId, doc_id: DocId) -> Result<(), StoreError>;
    /// How many documents wait in `queue` (a relay queue, for `peers`),
    /// counted up to `at_most`.
    async fn queue_length(&self, queue: &NodeId, at_most: u64) -> Result<u64, StoreError>;
    /// A peer hub took `doc_id` from the relay queue `queue`
    /// ([`NodeId::relay_queue`]): it leaves the queue. Its recipients'
    /// copies stay open until their own receipts come back.
    async fn relayed(&self, queue: &NodeId, doc_id: DocId) -> Result<(), StoreError>;
    /// Receipts and notices to pass on to `node`, in order, claimed like
    /// deliveries so that one hub forwards each.
    async fn claim_pushes(
        &self,
        node: &NodeId,
        limit: usize,
    ) -> Result<Vec<(u64, Push)>, StoreError>;
    /// Pushes the unit has taken; the rest of the claim is given back.
    async fn forwarded(
        &self,
        node: &NodeId,
        taken: Vec<u64>,
        not_taken: Vec<u64>,
    ) -> Result<(), StoreError>;

    // — the receipt chain —

    /// Recompute the whole audit chain.
    async fn audit_verify(&self) -> Result<Verdict, StoreError>;

    /// Let go of the store (the embedded one's files) before a restart in
    /// the same process; waits for work under way.
    async fn close(&self) {}
}

/// Work another hub sharing the store made for this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreEvent {
    /// A document was queued for this unit.
    Deliveries(NodeId),
    /// A receipt or notice was queued for this unit.
    Pushes(NodeId),
    /// The escalation schedule changed.
    Escalation,
    /// Events may have been lost (the listening connection dropped):
    /// look at everything again.
    Everything,
}

/// A unit connected to one of the hubs sharing the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    pub node: NodeId,
    /// The hub's label (its host and port).
    pub hub: String,
    pub since: String,
    pub addr: String,
}

/// The hub's store, whichever backend.
pub type SharedStore = Arc<dyn Store>;

/// Open the store `hub.toml` names: PostgreSQL when `[store] postgres` is
/// set, otherwise the embedded store in the data directory.
pub async fn open(config: &gongwen_common::config::HubConfig) -> Result<SharedStore, StoreError> {
    match &config.store.postgres {
        None => {
            let dir = config.data_dir.clone();
            let store = tokio::task::spawn_blocking(move || embedded::Embedded::open(&dir))
                .await
                .map_err(|e| StoreError::Task(e.to_string()))??;
            Ok(Arc::new(store))
        }
        Some(conn) => Ok(Arc::new(
            postgres::Postgres::open(conn, &config.store).await?,
        )),
    }
}
