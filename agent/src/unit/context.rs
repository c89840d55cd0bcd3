//! What every part of a running agent shares: configuration, folders,
//! store, keys, and the current certificate checker.

use std::sync::{Arc, Mutex};

use gongwen_common::clock::Clock;
use gongwen_common::config::AgentConfig;
use gongwen_common::envelope::DocumentKey;
use gongwen_common::pki::{Crl, PkiError};
use gongwen_common::{DocId, NodeId};
use tokio::sync::Notify;

use crate::unit::folders::Folders;
use crate::unit::store::Store;
use crate::unit::trust::Trust;

pub struct AgentContext {
    pub config: AgentConfig,
    pub folders: Folders,
    pub store: Store,
    /// The certificate in use (signs documents and receipts; shown to the
    /// hub), and its renewal.
    pub credentials: crate::unit::credentials::Credentials,
    /// Opens documents sealed to this unit (X25519, or SM2 in a GM
    /// deployment).
    pub enc_key: DocumentKey,
    /// The CA and the CRL in force.
    pub trust: Trust,
    /// The units and groups to send to, as the hub last said.
    pub directory: crate::unit::directory::Known,
    /// Woken when a drop was claimed (or a send should be retried).
    pub outbox_wake: Notify,
    /// Upload progress of documents being sent: (bytes sent, total).
    pub progress: Mutex<std::collections::HashMap<gongwen_common::DocId, (u64, u64)>>,
    /// The admitted connection to the hub, while there is one.
    pub conn: Mutex<Option<quinn::Connection>>,
    /// Accepted documents waiting to be filed under sent/.
    pub filing: crate::unit::batch::Batches<crate::outgoing::send::FileJob>,
    /// Receipts from recipients waiting to be recorded.
    pub receipts: crate::unit::batch::Batches<crate::link::session::ReceiptJob>,
    /// Received documents waiting to be recorded.
    pub recording: crate::unit::batch::Batches<crate::incoming::receive::RecordJob>,
    /// Held while claims are being made; listing what to send waits for
    /// it, so nothing is sent from a claim before its moves are durable.
    pub claiming: Mutex<()>,
    /// Outbox scans since start (an idle agent must stay idle).
    pub outbox_scans: std::sync::atomic::AtomicU64,
    /// This machine's clock: times the agent records and certificate
    /// validity. (Deadlines follow the hub's clock, not this one.)
    pub clock: Arc<dyn Clock>,
    /// Documents being sent or received now, and a wake-up when one is
    /// let go.
    held: Mutex<std::collections::HashSet<DocId>>,
    held_ended: Notify,
}

/// Holds a document for one attempt at sending or receiving it; see
/// [`AgentContext::hold`].
#[derive(Debug)]
pub struct Hold {
    ctx: Arc<AgentContext>,
    doc_id: DocId,
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.ctx
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.doc_id);
        self.ctx.held_ended.notify_waiters();
    }
}

impl std::fmt::Debug for AgentContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentContext")
            .field("node", &self.config.node_id)
            .finish()
    }
}

impl AgentContext {
    pub fn new(
        config: AgentConfig,
        folders: Folders,
        store: Store,
        own: crate::unit::credentials::OwnKeys,
        enc_key: DocumentKey,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, PkiError> {
        // The last CRL the hub sent, if any; the hub sends a fresh one on
        // every connection.
        let crl = std::fs::read(folders.crl())
            .ok()
            .and_then(|der| Crl::parse(&der, &own.ca).ok());
        let trust = Trust::new(own.ca.clone(), crl.as_ref())?;
        let credentials = crate::unit::credentials::Credentials::new(
            own,
            &trust.checker(),
            clock.clone(),
            &folders.state,
        )?;
        Ok(AgentContext {
            config,
            folders,
            store,
            credentials,
            enc_key,
            trust,
            directory: Default::default(),
            outbox_wake: Notify::new(),
            progress: Mutex::new(Default::default()),
            conn: Mutex::new(None),
            filing: Default::default(),
            receipts: Default::default(),
            recording: Default::default(),
            claiming: Mutex::new(()),
            outbox_scans: Default::default(),
            clock,
            held: Mutex::new(Default::default()),
            held_ended: Notify::new(),
        })
    }

    /// Wait until no other attempt is working on `doc_id` (sending or
    /// receiving it), and hold it while the returned guard lives; `None` if
    /// that took longer than `within`.
    ///
    /// When the connection to the hub breaks, the tasks of its session are
    /// aborted, but file work they started on blocking threads runs on, and
    /// the next session can start on the same document meanwhile:
    /// - receiving, in the same assembly folder: a new attempt clearing it
    ///   just before the old one moves it into the inbox would file an
    ///   incomplete copy under a signed `delivered` receipt;
    /// - sending, in the same spool entry: two seals each write a fresh
    ///   content key and then a header, and the key of one with the header
    ///   of the other makes content the hub refuses for good.
    ///
    /// (Late writes of the same bytes to the same places would be
    /// harmless.) So the guard is kept by that file work itself, not only
    /// by the task that started it.
    pub async fn hold(
        self: &Arc<Self>,
        doc_id: DocId,
        within: std::time::Duration,
    ) -> Option<Hold> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let ended = self.held_ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            let claimed = self
                .held
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(doc_id);
            if claimed {
                return Some(Hold {
                    ctx: self.clone(),
                    doc_id,
                });
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                return None;
            }
        }
    }

    /// Wait (up to 10 s) until no work holds `doc_id`. A document being
    /// received shows in the inbox just before its record is durable, and
    /// a clerk acts on what they see: an answer waits for the record.
    pub async fn settled(self: &Arc<Self>, doc_id: DocId) {
        const SETTLE: std::time::Duration = std::time::Duration::from_secs(10);
        drop(self.hold(doc_id, SETTLE).await);
    }

    /// Milliseconds since the Unix epoch by this agent's clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn node_id(&self) -> &NodeId {
        &self.config.node_id
    }

    /// The connection to the hub, if admitted now.
    pub fn connection(&self) -> Option<quinn::Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_connection(&self, conn: Option<quinn::Connection>) {
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = conn;
    }
}
