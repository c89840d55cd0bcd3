//! What every part of a running hub works with, each piece with one owner
//! and methods that say what they do. The accept loop, the sessions, the
//! escalation scheduler, the revocation watcher and the control socket all
//! take a `&Core`; none of them reaches into another.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gongwen_common::NodeId;
use gongwen_common::clock::Clock;
use gongwen_common::config::HubConfig;
use gongwen_common::pki::CertChecker;
use gongwen_common::receipt::Receipt;
use gongwen_common::signed::Signer;

use crate::state::enrolled::{EnrolledUnits, Enrollment};
use crate::state::metrics::Metrics;
use crate::state::registry::Units;
use crate::state::trust::{Trust, TrustState};
use crate::store::SharedStore;
use crate::store::commit::Committer;

/// How many recipients receive a document's content at once. A fan-out to
/// 194 units streaming to all of them together shared the link 194 ways:
/// every transfer finished last, each receiving process woke per packet,
/// and the hub held 194 send windows. A few at a time keep the link full,
/// let the first recipients decrypt and answer while the next receive, and
/// bound the hub's memory (fan-out of 10 MiB to 194 units on two cores:
/// 4 slots 8.2 s, 8: 7.5 s, 16: 7.4 s, 64: 11.2 s).
/// Documents below [`SMALL_CONTENT`] skip the
/// queue so a big fan-out does not hold up small ones.
pub(crate) const DELIVERY_SLOTS: usize = 16;

/// Deliveries in flight at once, hub-wide, whatever their size: a notice
/// to 10,000 connected units started 10,000 deliveries together, each
/// holding the document's record (its 10,000 recipients), and the hub grew
/// past 10 GiB.
pub(crate) const DELIVERIES_IN_FLIGHT: usize = 64;

/// Content at or below this size streams without waiting for a slot.
pub(crate) const SMALL_CONTENT: u64 = 1 << 20;

/// A running hub's shared state.
pub(crate) struct Core {
    id: NodeId,
    /// How this hub names itself to the others sharing its store (host
    /// and port), and in `nodes`.
    label: String,
    config: HubConfig,
    /// Signs the hub's `accepted` receipts.
    signer: Signer,
    store: SharedStore,
    /// Accepts and delivery receipts, made durable in batches.
    committer: Committer,
    /// Time for deadlines, escalation and receipts (injected in tests).
    clock: Arc<dyn Clock>,
    trust: Trust,
    /// The CA's directory of enrolled units, and the groups.
    enrolled: EnrolledUnits,
    units: Units,
    stats: Stats,
    /// What /metrics shows.
    metrics: Metrics,
    /// Renewed certificates waiting to reach their units.
    renewals: crate::state::renewals::Renewals,
    /// The accept loop runs (for /healthz).
    serving: std::sync::atomic::AtomicBool,
    /// Wakes the escalation scheduler (new deadlines, tests).
    escalation: tokio::sync::Notify,
    /// Wakes the expiry watch (a unit connected).
    expiry: tokio::sync::Notify,
    /// Content streams to recipients that may run at once.
    delivery_slots: tokio::sync::Semaphore,
    /// Deliveries in flight hub-wide.
    deliveries: tokio::sync::Semaphore,
    /// Uploads under way counted against `[limits] queued_per_sender`.
    quota: Arc<crate::state::quota::Quota>,
    address_books: crate::state::address_book::AddressBooks,
    copies: crate::state::copies::Copies,
    /// `[federation]`: the peer domains and the links to their hubs.
    federation: Option<crate::state::federation::Federation>,
    /// Documents a peer is handing over now.
    relays_in_progress: InProgressSet,
}

/// Documents being received from a peer now: one upload of each at a time.
#[derive(Debug, Default)]
pub(crate) struct InProgressSet(std::sync::Mutex<std::collections::HashSet<gongwen_common::DocId>>);

impl InProgressSet {
    /// Take `doc`'s place; false if it is taken.
    pub(crate) fn begin(&self, doc: gongwen_common::DocId) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(doc)
    }

    /// Give it back (the guard's drop; a place not taken is no matter).
    pub(crate) fn end(&self, doc: gongwen_common::DocId) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&doc);
    }
}

/// What [`Core::new`] takes.
pub(crate) struct CoreParts {
    pub id: NodeId,
    pub label: String,
    pub config: HubConfig,
    pub signer: Signer,
    pub store: SharedStore,
    pub clock: Arc<dyn Clock>,
    pub trust: TrustState,
    pub enrolled: Enrollment,
    pub federation: Option<crate::state::federation::Federation>,
}

impl Core {
    /// Must be called inside the runtime (it starts the committer).
    pub(crate) fn new(p: CoreParts) -> Core {
        let metrics = Metrics::default();
        let committer = Committer::start(p.store.clone(), metrics.store_commit_seconds());
        Core {
            id: p.id,
            label: p.label,
            config: p.config,
            signer: p.signer,
            store: p.store,
            committer,
            clock: p.clock,
            trust: Trust::new(p.trust),
            enrolled: EnrolledUnits::new(p.enrolled),
            units: Units::default(),
            stats: Stats::default(),
            metrics,
            renewals: Default::default(),
            serving: std::sync::atomic::AtomicBool::new(false),
            escalation: tokio::sync::Notify::new(),
            expiry: tokio::sync::Notify::new(),
            delivery_slots: tokio::sync::Semaphore::new(DELIVERY_SLOTS),
            deliveries: tokio::sync::Semaphore::new(DELIVERIES_IN_FLIGHT),
            quota: Arc::default(),
            address_books: Default::default(),
            copies: Default::default(),
            federation: p.federation,
            relays_in_progress: Default::default(),
        }
    }

    /// Count one upload from `sender` against what it may have waiting for
    /// the offline `recipient` (`queued` in the store already), until the
    /// returned reservation is dropped; how many wait if it may not.
    pub(crate) fn reserve_queue_slot(
        &self,
        sender: &NodeId,
        recipient: &NodeId,
        queued: u64,
    ) -> Result<crate::state::quota::Reservation, u64> {
        self.quota
            .reserve(sender, recipient, queued, self.config.max_queued_per_sender)
    }

    /// The hub's node id (its certificate's).
    pub(crate) fn id(&self) -> &NodeId {
        &self.id
    }

    /// This hub's name among the hubs sharing its store.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    pub(crate) fn config(&self) -> &HubConfig {
        &self.config
    }

    pub(crate) fn store(&self) -> &SharedStore {
        &self.store
    }

    pub(crate) fn committer(&self) -> &Committer {
        &self.committer
    }

    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub(crate) fn trust(&self) -> &Trust {
        &self.trust
    }

    /// When this hub's own certificate expires.
    pub(crate) fn own_not_after(&self) -> time::OffsetDateTime {
        self.signer.identity().not_after
    }

    pub(crate) fn renewals(&self) -> &crate::state::renewals::Renewals {
        &self.renewals
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Say whether the accept loop runs.
    pub(crate) fn set_serving(&self, serving: bool) {
        self.serving.store(serving, Ordering::Relaxed);
    }

    pub(crate) fn is_serving(&self) -> bool {
        self.serving.load(Ordering::Relaxed)
    }

    /// The enrolled units and the groups (hub.toml's and the directory's).
    pub(crate) fn enrolled(&self) -> &EnrolledUnits {
        &self.enrolled
    }

    /// The directory agents ask for, made once per change.
    pub(crate) fn address_books(&self) -> &crate::state::address_book::AddressBooks {
        &self.address_books
    }

    /// Each recipient's copy of a tree-form header.
    pub(crate) fn copies(&self) -> &crate::state::copies::Copies {
        &self.copies
    }

    /// The checker of the current CRL.
    /// Something was queued for `node` to take (a receipt, a notice): wake
    /// its link, or for a unit of another domain the link to the peer that
    /// carries it.
    pub(crate) fn wake_pushes(&self, node: &NodeId) {
        match (node.domain(), self.federation()) {
            (None, _) => self.units.wake_pushes(node),
            (Some(d), Some(f)) => f.wake_relay(&d),
            (Some(_), None) => {}
        }
    }

    /// The first checker, ours then each other domain's, under which
    /// `passes` holds (the one that judges a forwarded original).
    pub(crate) fn find_checker(
        &self,
        passes: impl Fn(&CertChecker) -> bool,
    ) -> Option<std::sync::Arc<CertChecker>> {
        let ours = std::sync::Arc::new(self.checker());
        if passes(&ours) {
            return Some(ours);
        }
        let f = self.federation()?;
        f.known_domains()
            .iter()
            .filter_map(|d| f.checker_of(d))
            .find(|c| passes(c))
    }

    /// Documents a peer is handing over now.
    pub(crate) fn relays_in_progress(&self) -> &InProgressSet {
        &self.relays_in_progress
    }

    /// The peer domains and links, when `[federation]` is configured.
    pub(crate) fn federation(&self) -> Option<&crate::state::federation::Federation> {
        self.federation.as_ref()
    }

    pub(crate) fn checker(&self) -> CertChecker {
        self.trust.current().checker.clone()
    }

    pub(crate) fn units(&self) -> &Units {
        &self.units
    }

    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Sign a receipt as the hub (its `accepted`).
    pub(crate) fn sign(&self, receipt: &Receipt) -> Result<Vec<u8>, gongwen_common::pki::PkiError> {
        Ok(receipt.sign(&self.signer)?.encode())
    }

    /// New deadlines were set: the scheduler looks again.
    /// A unit connected: look at its certificate's expiry now.
    pub(crate) fn wake_expiry_watch(&self) {
        self.expiry.notify_one();
    }

    pub(crate) async fn expiry_woken(&self) {
        self.expiry.notified().await
    }

    pub(crate) fn wake_escalation(&self) {
        self.escalation.notify_one();
    }

    /// Until [`Core::wake_escalation`] (or the caller's timeout).
    pub(crate) async fn escalation_woken(&self) {
        self.escalation.notified().await
    }

    /// A place among the large content streams running at once.
    pub(crate) async fn delivery_slot(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.delivery_slots.acquire().await.ok()
    }

    /// A turn among the deliveries in flight hub-wide
    /// ([`DELIVERIES_IN_FLIGHT`]), held for the whole delivery.
    pub(crate) async fn delivery_turn(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.deliveries.acquire().await.ok()
    }

    /// Stop taking writes and let go of the store.
    pub(crate) async fn close(&self) {
        self.committer.stop().await;
        self.store.close().await;
    }
}

/// Counters since the hub started, for operators (`gongwen-hub stats`).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub documents_accepted: AtomicU64,
    pub bytes_received: AtomicU64,
    pub uploads_resumed: AtomicU64,
    pub bytes_not_resent: AtomicU64,
    pub deliveries: AtomicU64,
    pub deliveries_resumed: AtomicU64,
    pub bytes_not_redelivered: AtomicU64,
}

impl Stats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "documents_accepted": get(&self.documents_accepted),
            "bytes_received": get(&self.bytes_received),
            "uploads_resumed": get(&self.uploads_resumed),
            "bytes_not_resent": get(&self.bytes_not_resent),
            "deliveries": get(&self.deliveries),
            "deliveries_resumed": get(&self.deliveries_resumed),
            "bytes_not_redelivered": get(&self.bytes_not_redelivered),
        })
    }
}
