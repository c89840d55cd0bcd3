//! Which documents are being sent or received right now, so two attempts
//! never work on one document at once, and a clerk's answer waits for a
//! document still being recorded.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gongwen_common::DocId;
use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Holds {
    held: Mutex<HashSet<DocId>>,
    /// Woken when a document is let go.
    ended: Notify,
}

/// Holds a document for one attempt at sending or receiving it; see
/// [`Holds::hold`].
#[derive(Debug)]
pub struct Hold {
    holds: Arc<Holds>,
    doc_id: DocId,
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.holds
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.doc_id);
        self.holds.ended.notify_waiters();
    }
}

impl Holds {
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
    pub async fn hold(self: &Arc<Self>, doc_id: DocId, within: Duration) -> Option<Hold> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            let claimed = self
                .held
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(doc_id);
            if claimed {
                return Some(Hold {
                    holds: self.clone(),
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
        const SETTLE: Duration = Duration::from_secs(10);
        drop(self.hold(doc_id, SETTLE).await);
    }
}
