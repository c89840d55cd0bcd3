//! Group commit for the hub's two hot writes: accepting a document and
//! recording a `delivered` (or `quarantined`) receipt.
//!
//! Each must be durable before it is answered. One at a time that is a
//! commit (for the embedded store three fsyncs: spool folder, audit log,
//! database) per document, and with many small documents in flight the
//! hub spends its time waiting for the disk. Here writes that arrive while
//! a batch is being made durable wait for it to finish and then go
//! together, one [`Store::commit`](crate::store::Store::commit) for the
//! whole batch. A lone write on an idle hub goes at once (no timer), so
//! latency does not grow. A failed batch answers every write in it with
//! the error (each is retried by its agent; nothing of the batch is
//! committed).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use prometheus_client::metrics::histogram::Histogram;

use crate::store::{Accept, Delivery, Outcome, Recorded, SharedStore, StoreError, Write};

/// The most writes in one batch (bounds the time a batch holds the store).
const MAX_BATCH: usize = 256;

type Reply = oneshot::Sender<Result<Outcome, StoreError>>;

/// The handle sessions send their writes to; cheap to clone.
#[derive(Debug, Clone)]
pub struct Committer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Taken by [`Committer::stop`]: later writes are refused.
    jobs: Mutex<Option<mpsc::UnboundedSender<(Write, Reply)>>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    counts: Arc<Counts>,
}

/// How many writes went in how many commits (writes per commit is the
/// batching achieved; `gongwen-hub stats` shows both).
#[derive(Debug, Default)]
pub struct Counts {
    pub commits: AtomicU64,
    pub writes: AtomicU64,
}

impl Committer {
    /// Start the committing task; [`Committer::stop`] ends it.
    /// Commits are timed into `took` (the hub's store commit histogram).
    pub fn start(store: SharedStore, took: Histogram) -> Committer {
        let (jobs, rx) = mpsc::unbounded_channel();
        let counts = Arc::new(Counts::default());
        let task = tokio::spawn(run(rx, store, counts.clone(), took));
        Committer {
            inner: Arc::new(Inner {
                jobs: Mutex::new(Some(jobs)),
                task: Mutex::new(Some(task)),
                counts,
            }),
        }
    }

    /// Record an accepted document whose content was renamed into the
    /// spool. Queued when called; the future resolves once the folder, the
    /// audit log and the store are durable.
    pub fn accept(&self, a: Accept) -> impl Future<Output = Result<(), StoreError>> + use<> {
        let (tx, rx) = oneshot::channel();
        let sent = self.send(Write::Accept(Box::new(a)), tx);
        async move { answer(sent, rx).await.map(|_| ()) }
    }

    /// Record a delivery receipt (once; a repeat changes nothing). Queued
    /// when called, like [`Committer::accept`].
    pub fn delivery(
        &self,
        d: Delivery,
    ) -> impl Future<Output = Result<Recorded, StoreError>> + use<> {
        let (tx, rx) = oneshot::channel();
        let sent = self.send(Write::Delivery(Box::new(d)), tx);
        async move {
            answer(sent, rx)
                .await?
                .ok_or_else(|| StoreError::Record("no such document".into()))
        }
    }

    fn send(&self, write: Write, reply: Reply) -> bool {
        let jobs = self.inner.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.as_ref()
            .is_some_and(|tx| tx.send((write, reply)).is_ok())
    }

    pub fn counts(&self) -> &Counts {
        &self.inner.counts
    }

    /// Commit what is queued, refuse later writes, and wait until the task
    /// has let go of the store (a hub restarted in the same process opens
    /// it again at once).
    pub async fn stop(&self) {
        drop(
            self.inner
                .jobs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

async fn answer<T>(
    sent: bool,
    rx: oneshot::Receiver<Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let gone = || StoreError::Task("the hub's committer stopped".into());
    if !sent {
        return Err(gone());
    }
    rx.await.map_err(|_| gone())?
}

async fn run(
    mut rx: mpsc::UnboundedReceiver<(Write, Reply)>,
    store: SharedStore,
    counts: Arc<Counts>,
    took: Histogram,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        counts.commits.fetch_add(1, Ordering::Relaxed);
        counts
            .writes
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        let (writes, replies): (Vec<Write>, Vec<Reply>) = batch.into_iter().unzip();
        let started = std::time::Instant::now();
        let result = store.commit(writes).await;
        took.observe(started.elapsed().as_secs_f64());
        match result {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                // Every write of the batch gets the error (each is retried
                // by its agent; nothing of the batch was committed).
                let why = e.to_string();
                let storage = e.is_storage();
                for reply in replies {
                    let _ = reply.send(Err(if storage {
                        StoreError::Io(std::io::Error::other(why.clone()))
                    } else if matches!(e, StoreError::Database(_)) {
                        StoreError::Database(why.clone())
                    } else {
                        StoreError::Task(why.clone())
                    }));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DocRecord, Store, embedded::Embedded};
    use gongwen_common::envelope::Urgency;
    use gongwen_common::pki;
    use gongwen_common::receipt::Receipt;
    use gongwen_common::receipt::ReceiptKind;
    use gongwen_common::signed::Signer;
    use gongwen_common::{DocId, NodeId};

    fn id(s: &str) -> NodeId {
        NodeId::parse(s).unwrap()
    }

    /// A signer with a certificate from a throwaway CA (the audit log
    /// checks that what it holds are real signed receipts).
    fn signer(dir: &std::path::Path, id_: &str, role: gongwen_common::Role) -> Signer {
        use gongwen_certs::{Ca, IssueRequest, Validity};
        let now = time::OffsetDateTime::now_utc();
        let ca_dir = dir.join("ca");
        let mut ca = if ca_dir.exists() {
            Ca::open(&ca_dir).unwrap()
        } else {
            Ca::init(&ca_dir, "test CA", now, 365, 30).unwrap()
        };
        let req = IssueRequest {
            id: id(id_),
            role,
            name: None,
            dns: Vec::new(),
            ips: Vec::new(),
            validity: Validity::days_from(now, 30),
            renew: true,
        };
        let issued = ca.issue(&req, now).unwrap();
        let out = dir.join(id_);
        ca.write_issued(&out, &id(id_), &issued).unwrap();
        let chain = pki::load_certs(&out.join(format!("{id_}.crt"))).unwrap();
        let key = pki::load_private_key(&out.join(format!("{id_}.key"))).unwrap();
        Signer::new(&key, chain[0].clone()).unwrap()
    }

    fn receipt(doc_id: DocId, kind: ReceiptKind, issuer: &str) -> Receipt {
        Receipt {
            doc_id,
            kind,
            recipient: id(if kind == ReceiptKind::Accepted {
                "hub"
            } else {
                issuer
            }),
            issuer: id(issuer),
            doc_digest: [7; 32],
            time_ms: 1,
            by: String::new(),
            reason: String::new(),
            seals: Vec::new(),
        }
    }

    fn accept(n: u64, hub: &Signer) -> Accept {
        let doc_id = DocId::from_parts(1_700_000_000_000 + n, [2; 10]);
        let receipt = receipt(doc_id, ReceiptKind::Accepted, "hub");
        Accept {
            record: DocRecord {
                doc_id,
                sender: id("prov-gov"),
                to: vec![id("harbin-gov")],
                cc: vec![],
                title: format!("通知{n}"),
                doc_number: String::new(),
                doc_type: "通知".into(),
                urgency: Urgency::Normal,
                deadline: None,
                created_ms: 0,
                accepted_ms: 0,
                digest: String::new(),
                content_len: 1,
                files: vec![],
                content_removed: false,
                links: Default::default(),
            },
            header: vec![1],
            receipt_bytes: receipt.sign(hub).unwrap().encode(),
            receipt,
            deadline_ms: 0,
            first_due_ms: None,
            at_ms: 5,
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn writes_queued_together_are_made_durable_in_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Embedded::open(dir.path()).unwrap());
        let log = dir.path().join("audit.log");
        let c = Committer::start(store.clone(), Histogram::new([1.0]));
        let hub = signer(dir.path(), "hub", gongwen_common::Role::Hub);
        let harbin = signer(dir.path(), "harbin-gov", gongwen_common::Role::Node);
        // Queued without yielding in between: the committer finds all 64
        // waiting when it first runs.
        let waits: Vec<_> = (0..64).map(|n| c.accept(accept(n, &hub))).collect();
        for w in waits {
            w.await.unwrap();
        }
        assert_eq!(c.counts().commits.load(Ordering::Relaxed), 1);
        assert_eq!(c.counts().writes.load(Ordering::Relaxed), 64);
        for n in 0..64 {
            let doc_id = accept(n, &hub).record.doc_id;
            assert!(store.doc(doc_id).await.unwrap().is_some(), "document {n}");
        }
        let v = crate::store::audit::verify(&log).unwrap();
        assert_eq!((v.entries, v.first_broken), (64, None));

        // A delivery receipt, the same again, and one for a document the
        // hub never accepted, in one batch: the unknown one is refused
        // alone, the repeat changes nothing and is not logged twice.
        let doc_id = accept(3, &hub).record.doc_id;
        let delivery = |doc_id| {
            let receipt = receipt(doc_id, ReceiptKind::Delivered, "harbin-gov");
            Delivery {
                receipt_bytes: receipt.sign(&harbin).unwrap().encode(),
                receipt,
                at_ms: 9,
            }
        };
        let first = c.delivery(delivery(doc_id));
        let again = c.delivery(delivery(doc_id));
        let unknown = c.delivery(delivery(DocId::generate()));
        let first = first.await.unwrap();
        assert!(first.new && first.content_done);
        assert!(!again.await.unwrap().new);
        assert!(unknown.await.is_err());
        assert_eq!(c.counts().commits.load(Ordering::Relaxed), 2);
        let v = crate::store::audit::verify(&log).unwrap();
        assert_eq!((v.entries, v.first_broken), (65, None));
        assert!(store.doc(doc_id).await.unwrap().unwrap().content_removed);
    }
}
