//! The clerk's acts, each written once: the control socket and the console
//! parse a request, call one of these, and render what it returns.
//!
//! Every act that queues something for the hub wakes the uploader; every
//! act on a received document first waits for a delivery of it still
//! being recorded (a clerk acts on what the inbox shows, which appears a
//! moment before its record is durable).

use std::path::PathBuf;
use std::sync::Arc;

use gongwen_common::receipt::ReceiptKind;
use gongwen_common::supervision::{DocStatus, Query};
use gongwen_common::wire::Message;
use gongwen_common::{DocId, NodeId};

use crate::actions::collect::{Collected, Summary};
use crate::actions::failed::{self, FailedItem, Fix};
use crate::actions::forward::ForwardRequest;
use crate::actions::reply::ReplyRequest;
use crate::outgoing::outbox::SendRequest;
use crate::unit::directory::Known;
use crate::unit::holds::Holds;
use crate::unit::hub_link::Link;
use crate::unit::identity::Identity;
use crate::unit::outgoing::Outgoing;
use crate::unit::store::{ReceivedRecord, Store};

#[derive(Debug, Clone)]
pub struct Clerk {
    me: Arc<Identity>,
    store: Store,
    holds: Arc<Holds>,
    outgoing: Arc<Outgoing>,
    link: Arc<Link>,
    known: Arc<Known>,
}

/// Run blocking file and store work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| e.to_string())?
}

impl Clerk {
    pub fn new(
        me: Arc<Identity>,
        store: Store,
        holds: Arc<Holds>,
        outgoing: Arc<Outgoing>,
        link: Arc<Link>,
        known: Arc<Known>,
    ) -> Clerk {
        Clerk {
            me,
            store,
            holds,
            outgoing,
            link,
            known,
        }
    }

    /// Whether the hub can be reached now (an answer queued while not is
    /// given once it can).
    pub fn connected(&self) -> bool {
        self.link.is_up()
    }

    /// 签收 a received document in the name of `by`.
    pub async fn sign_for(&self, doc: DocId, by: String) -> Result<ReceivedRecord, String> {
        self.answer(doc, ReceiptKind::Acknowledged, by).await
    }

    /// 退回 a received document, saying why.
    pub async fn send_back(&self, doc: DocId, reason: String) -> Result<ReceivedRecord, String> {
        self.answer(doc, ReceiptKind::Rejected, reason).await
    }

    /// Sign (`Acknowledged`, `detail` = the person) or return (`Rejected`,
    /// `detail` = the reason): of two answers at once, exactly one is
    /// recorded (see [`crate::incoming::clerk::answer`]).
    pub async fn answer(
        &self,
        doc: DocId,
        kind: ReceiptKind,
        detail: String,
    ) -> Result<ReceivedRecord, String> {
        self.holds.settled(doc).await;
        let (me, store) = (self.me.clone(), self.store.clone());
        let rec = blocking(move || {
            crate::incoming::clerk::answer(&me, &store, doc, kind, &detail)
                .map_err(|e| e.to_string())
        })
        .await?;
        self.outgoing.wake();
        Ok(rec)
    }

    /// Queue files to send; the new document's id. The files are copied
    /// (the command line's stay where they are), or with `take` moved in
    /// (what a console upload staged on the same file system).
    pub async fn send(&self, req: SendRequest, take: bool) -> Result<DocId, String> {
        let outgoing = self.outgoing.clone();
        let doc = blocking(move || {
            outgoing.claim(|f| crate::outgoing::outbox::claim_files(f, &req, take))
        })
        .await?;
        self.outgoing.wake();
        Ok(doc)
    }

    /// What is in `failed/`, newest first (at most `limit`), with whom
    /// each was for and why it was not sent.
    pub async fn failed(&self, limit: usize) -> Result<Vec<FailedItem>, String> {
        let records = self
            .store
            .run(|s| s.all_failed())
            .await
            .map_err(|e| e.to_string())?;
        let folders = self.me.folders().clone();
        blocking(move || Ok(failed::list(&folders, &records, limit))).await
    }

    /// 重新发送 a document from `failed/` with the clerk's fixes: its files
    /// go into a new claim (moved, not copied) and what was left beside
    /// them is removed; the new document's id.
    pub async fn resend_failed(&self, name: String, fix: Fix) -> Result<DocId, String> {
        let (folders, outgoing) = (self.me.folders().clone(), self.outgoing.clone());
        let doc = blocking(move || {
            // Looked at and taken under the claim lock: of two clerks
            // pressing 重新发送 (or one 删除) at once, the second finds it
            // gone and is told so, and nothing is sent twice.
            outgoing.claim(|f| {
                let req = failed::resend_request(&folders, &name, &fix)?;
                let doc = crate::outgoing::outbox::claim_files(f, &req, true)?;
                // The files are in the claim now; the reason, the sidecar
                // and an emptied folder are what remain. Sent again
                // whatever happens here: a reason left behind is untidy.
                if let Err(e) = failed::clear_beside(&folders, &name) {
                    tracing::warn!(
                        "sent {} again as {doc}, but {}",
                        gongwen_common::logsafe::Escaped(&name),
                        gongwen_common::logsafe::Escaped(&e)
                    );
                }
                Ok(doc)
            })
        })
        .await?;
        self.outgoing.wake();
        Ok(doc)
    }

    /// 删除 a document from `failed/` (it was never sent).
    pub async fn discard_failed(&self, name: String) -> Result<(), String> {
        let (folders, outgoing) = (self.me.folders().clone(), self.outgoing.clone());
        blocking(move || outgoing.claim(|_| failed::remove(&folders, &name))).await
    }

    /// Queue an answer (批复, 报送) to a received document; the answer's
    /// id, and whether the question is signed for with it.
    pub async fn reply(&self, req: ReplyRequest) -> Result<(DocId, bool), String> {
        self.holds.settled(req.doc).await;
        let (me, store, outgoing) = (self.me.clone(), self.store.clone(), self.outgoing.clone());
        let done =
            blocking(move || crate::actions::reply::queue(&me, &store, &outgoing, &req)).await?;
        self.outgoing.wake();
        Ok(done)
    }

    /// Queue a forward (转发) of a received document; the forward's id.
    pub async fn forward(&self, req: ForwardRequest) -> Result<DocId, String> {
        self.holds.settled(req.doc).await;
        let (me, store, outgoing) = (self.me.clone(), self.store.clone(), self.outgoing.clone());
        let doc =
            blocking(move || crate::actions::forward::queue(&me, &store, &outgoing, &req)).await?;
        self.outgoing.wake();
        Ok(doc)
    }

    /// 撤回 a document this unit sent, through the hub, and note at home
    /// whom it was withdrawn from. The hub's answer, or why not.
    pub async fn recall(&self, doc: DocId, reason: String) -> Result<serde_json::Value, String> {
        let v = self
            .link
            .request(&Message::Recall {
                doc_id: doc,
                reason,
            })
            .await?;
        let mut from: Vec<NodeId> = Vec::new();
        for key in ["withdrawn_at_hub", "recalled_from"] {
            from.extend(serde_json::from_value::<Vec<NodeId>>(v[key].clone()).unwrap_or_default());
        }
        let now = self.me.now_ms();
        self.store
            .run(move |s| s.mark_recalled(doc, &from, now))
            .await
            .map_err(|e| e.to_string())?;
        Ok(v)
    }

    /// 催办: ask the hub to urge `units` (all that have not answered, if
    /// none) about a document this unit sent.
    pub async fn urge(&self, doc: DocId, units: Vec<NodeId>) -> Result<serde_json::Value, String> {
        self.link
            .request(&Message::Urge { doc_id: doc, units })
            .await
    }

    /// 督办单 (a supervision office only): urge `units` (all that have not
    /// signed for it, if none) about `doc` in this office's name and
    /// `words`; the units urged.
    pub async fn press(
        &self,
        doc: DocId,
        units: Vec<NodeId>,
        words: String,
    ) -> Result<Vec<NodeId>, String> {
        #[derive(serde::Deserialize)]
        struct Pressed {
            urged: Vec<NodeId>,
        }
        let done: Pressed = self.link.query(&Query::Press { doc, units, words }).await?;
        tracing::info!(doc = %doc, units = done.urged.len(), "督办单 sent");
        Ok(done.urged)
    }

    /// The hub's status of a document this unit sent (its times and its
    /// judgment of lateness are the ones that count), if it can be asked.
    pub async fn hub_status(&self, doc: DocId) -> Option<DocStatus> {
        self.link.query(&Query::Status { doc }).await.ok()
    }

    /// 汇总: the answers to a document this unit sent that asked for them,
    /// or `None` for one that did not. `hub`: the hub's status of it, if
    /// the caller asked already.
    pub async fn summarize(
        &self,
        doc: DocId,
        hub: Option<DocStatus>,
    ) -> Result<Option<Summary>, String> {
        let (me, store, known) = (self.me.clone(), self.store.clone(), self.known.clone());
        blocking(move || crate::actions::collect::summarize(&me, &store, &known, doc, hub.as_ref()))
            .await
    }

    /// 汇总 into a folder: one folder per answer and the table.
    pub async fn collect(&self, doc: DocId, out: PathBuf) -> Result<Collected, String> {
        let hub = self.hub_status(doc).await;
        let (me, store, known) = (self.me.clone(), self.store.clone(), self.known.clone());
        blocking(move || {
            crate::actions::collect::collect(&me, &store, &known, doc, &out, hub.as_ref())
        })
        .await
    }

    /// The evidence bundle of a document, written into `out`.
    pub async fn evidence(&self, doc: DocId, out: PathBuf) -> Result<PathBuf, String> {
        let (me, store) = (self.me.clone(), self.store.clone());
        blocking(move || crate::actions::evidence::write_bundle(&me, &store, doc, &out)).await
    }
}
