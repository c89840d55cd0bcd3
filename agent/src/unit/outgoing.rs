//! What is waiting to go to the hub, and the one lock that keeps a claim
//! whole: drops become spool entries under [`Outgoing::claim`], and the
//! uploader lists the spool under the same lock, so nothing is sent from a
//! claim before all its moves are durable.

use std::collections::HashMap;
use std::sync::Mutex;

use gongwen_common::DocId;
use tokio::sync::Notify;

use crate::unit::folders::Folders;

#[derive(Debug)]
pub struct Outgoing {
    folders: Folders,
    /// Held while claims are made or the spool is listed.
    claiming: Mutex<()>,
    /// Wakes the uploader: something was claimed, an answer was queued, or
    /// a send should be retried.
    wake: Notify,
    /// Upload progress of documents being sent: (bytes sent, total).
    progress: Mutex<HashMap<DocId, (u64, u64)>>,
}

impl Outgoing {
    pub fn new(folders: Folders) -> Outgoing {
        Outgoing {
            folders,
            claiming: Mutex::new(()),
            wake: Notify::new(),
            progress: Mutex::default(),
        }
    }

    /// Run `claim` (moving drops or new copies into the spool, or listing
    /// it) while no other claim is being made. Blocking: call it from a
    /// blocking thread.
    pub fn claim<T>(&self, claim: impl FnOnce(&Folders) -> T) -> T {
        let _claiming = self.claiming.lock().unwrap_or_else(|p| p.into_inner());
        claim(&self.folders)
    }

    /// Tell the uploader there is something to do now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Completes at the next [`Outgoing::wake`] (or at once for one that
    /// came while nobody waited).
    pub async fn woken(&self) {
        self.wake.notified().await
    }

    pub fn set_progress(&self, doc: DocId, sent: u64, total: u64) {
        self.progress_map().insert(doc, (sent, total));
    }

    pub fn end_progress(&self, doc: DocId) {
        self.progress_map().remove(&doc);
    }

    /// Bytes sent and total of a document being uploaded now.
    pub fn progress(&self, doc: DocId) -> Option<(u64, u64)> {
        self.progress_map().get(&doc).copied()
    }

    fn progress_map(&self) -> std::sync::MutexGuard<'_, HashMap<DocId, (u64, u64)>> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }
}
