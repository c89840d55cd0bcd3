//! Receiving a document: download (resuming a broken transfer), verify and
//! decrypt as the content arrives, move the whole document into
//! `inbox/<sender>/<doc_id>/`, and answer with a signed `delivered`
//! receipt. Anything that fails a check goes to `quarantine/<doc_id>/`
//! with `reason.txt`, never to the inbox, and the answer is a signed
//! `quarantined` receipt naming the reason.
//!
//! A document already received is answered with the receipt given the
//! first time, so a redelivery never makes a second inbox copy.
//!
//! The download is decrypted straight into an assembly folder under
//! `state/incoming/`; the ciphertext is not stored (it would be a second
//! copy of every byte to write). A broken download resumes from its last
//! checkpoint: the decrypted files up to a chunk boundary are synced and
//! the offset recorded, and a resume hashes those files again before
//! going on. Should a check fail, the content from the failing chunk on is
//! kept as evidence instead.

use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gongwen_common::envelope::{
    ContentOpener, Deadline, EnvelopeError, FileEntry, SEALED_CHUNK_LEN, SealedHeader,
};
use gongwen_common::federation::localize;
use gongwen_common::fsutil::{sync_dir, write_atomic};
use gongwen_common::pki::CertProblem;
use gongwen_common::receipt::{Receipt, ReceiptKind};
use gongwen_common::signed::sha256;
use gongwen_common::stream::{READ_TIMEOUT, write_message};
use gongwen_common::suite::{Hasher, Suite};
use gongwen_common::transfer::{Batches, hash_kept, receive_to_blocking};
use gongwen_common::wire::{ErrorCode, Message};
use gongwen_common::{DocId, NodeId};
use tracing::{info, warn};

use crate::incoming::plan::{self, AfterStream, FailedCheck};
use crate::rules::metadata::MetadataJson;
use crate::unit::counters::Counters;
use crate::unit::holds::{Hold, Holds};
use crate::unit::identity::Identity;
use crate::unit::outgoing::Outgoing;
use crate::unit::store::Store;
use crate::unit::store::{ReceivedRecord, ReceivedState};

const IO_CHUNK: usize = 256 * 1024;

/// Where the content of a document that failed a check is kept.
fn evidence_path(me: &Identity, doc_id: DocId) -> PathBuf {
    me.folders().incoming.join(format!("{doc_id}.evidence"))
}

/// How much of the download is decrypted and durable: `<ciphertext bytes>
/// <SHA-256 of the part of the file being written before that point>`.
fn offset_path(me: &Identity, doc_id: DocId) -> PathBuf {
    me.folders().incoming.join(format!("{doc_id}.offset"))
}

/// Where the document is assembled, so the inbox only shows whole ones.
fn assembly_path(me: &Identity, doc_id: DocId) -> PathBuf {
    me.folders().incoming.join(format!("{doc_id}.tmp"))
}

async fn error(send: &mut quinn::SendStream, code: ErrorCode, message: String) {
    let _ = write_message(send, &Message::Error { code, message }).await;
    let _ = send.finish();
}

/// What receiving uses: who we are, the store, which documents are being
/// worked on, the uploader (to give an answer again), and the received
/// documents waiting to be recorded.
#[derive(Debug, Clone)]
pub struct Receiving {
    me: Arc<Identity>,
    store: Store,
    holds: Arc<Holds>,
    outgoing: Arc<Outgoing>,
    counters: Arc<Counters>,
    recording: Arc<crate::unit::batch::Batches<RecordJob>>,
}

impl Receiving {
    pub fn new(
        me: Arc<Identity>,
        store: Store,
        holds: Arc<Holds>,
        outgoing: Arc<Outgoing>,
        counters: Arc<Counters>,
    ) -> Receiving {
        Receiving {
            me,
            store,
            holds,
            outgoing,
            counters,
            recording: Arc::default(),
        }
    }
}

/// Handle one `DeliverBegin` from the hub: answer a document received
/// before with its first receipt; otherwise take its content (resuming a
/// broken download), check it, file it, and answer with a signed receipt.
pub async fn receive(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    rx: Receiving,
    doc_id: DocId,
    header: Vec<u8>,
    content_len: u64,
    deadline_ms: i64,
) {
    // Held by every step below, including their blocking file work.
    let Some(alone) = rx.holds.hold(doc_id, READ_TIMEOUT).await else {
        let why = "this document is still being received on an earlier connection";
        error(&mut send, ErrorCode::Storage, why.into()).await;
        return;
    };
    let alone = Arc::new(alone);
    if answered_before(&rx, &mut send, doc_id).await {
        return;
    }
    if content_len > plan::max_content_len(rx.me.config().max_document_size) {
        let why = format!("{content_len} bytes is more than this unit takes");
        error(&mut send, ErrorCode::TooLarge, why).await;
        return;
    }
    let Some((offset, sink)) = open_download(&rx, &mut send, doc_id, &header, &alone).await else {
        return;
    };
    if offset > 0 {
        info!(doc = %doc_id, "resuming download at byte {offset} of {content_len}");
    }
    let from = Message::DeliverFrom { offset };
    if write_message(&mut send, &from).await.is_err() {
        return;
    }
    let (offset_file, evidence) = (offset_path(&rx.me, doc_id), evidence_path(&rx.me, doc_id));
    let writing = alone.clone();
    let (end, received, written) = receive_to_blocking(
        &mut recv,
        offset,
        content_len,
        READ_TIMEOUT,
        move |batches| {
            let _alone = writing;
            write_download(sink, offset, content_len, batches, &offset_file, &evidence)
        },
    )
    .await;
    let sink = match (
        plan::after_stream(&end, received, content_len, written.is_ok()),
        written,
    ) {
        (AfterStream::File, Ok(sink)) => sink,
        (AfterStream::Refuse(code, why), _) => return error(&mut send, code, why.into()).await,
        (AfterStream::CannotStore, Err(e)) => {
            return cannot_store(&rx.counters, &mut send, doc_id, &e).await;
        }
        // Keep what was made durable; the hub retries.
        _ => return,
    };
    let deadline = (deadline_ms > 0).then(|| deadline_ms.div_euclid(1000));
    file_and_answer(&rx, send, doc_id, header, sink, deadline, alone).await;
}

/// A document received before is answered with the receipt given the
/// first time; true when that was the answer.
async fn answered_before(rx: &Receiving, send: &mut quinn::SendStream, doc_id: DocId) -> bool {
    match rx.store.run(move |s| s.received(doc_id)).await {
        Ok(Some((_, receipt))) => {
            info!(doc = %doc_id, "already received; answering with the same receipt");
            let _ = write_message(send, &Message::Delivered { receipt }).await;
            let _ = send.finish();
            // A hub that delivers it again may have lost our answer too
            // (a hub rebuilt from its senders): give it again.
            match rx.store.run(move |s| s.resubmit_answer(doc_id)).await {
                Ok(true) => rx.outgoing.wake(),
                Ok(false) => {}
                Err(e) => warn!(doc = %doc_id, "store: {e}"),
            }
            true
        }
        Ok(None) => false,
        Err(e) => {
            error(send, ErrorCode::Storage, e.to_string()).await;
            true
        }
    }
}

/// Get ready to take the content (see [`prepare_download`]); where the hub
/// is to start and where the content goes, or `None` once the hub was told
/// why not.
async fn open_download(
    rx: &Receiving,
    send: &mut quinn::SendStream,
    doc_id: DocId,
    header: &[u8],
    alone: &Arc<Hold>,
) -> Option<(u64, Sink)> {
    let prepared = {
        let (me, header, alone) = (rx.me.clone(), header.to_vec(), alone.clone());
        tokio::task::spawn_blocking(move || {
            let _alone = alone;
            prepare_download(&me, doc_id, &header)
        })
        .await
    };
    match prepared {
        Ok(Ok(p)) => Some(p),
        Ok(Err(LocalError::NotNow(why))) => {
            warn!(doc = %doc_id, "not received now: {why}");
            error(send, ErrorCode::NotNow, why.to_string()).await;
            None
        }
        Ok(Err(e)) => {
            let why = format!("cannot write the download: {e}");
            cannot_store(&rx.counters, send, doc_id, &why).await;
            None
        }
        Err(e) => {
            error(send, ErrorCode::Internal, e.to_string()).await;
            None
        }
    }
}

/// Check the whole content and file it (in the inbox, or in quarantine),
/// then answer the hub with the signed receipt once it is durable.
async fn file_and_answer(
    rx: &Receiving,
    mut send: quinn::SendStream,
    doc_id: DocId,
    header: Vec<u8>,
    sink: Sink,
    deadline: Option<i64>,
    alone: Arc<Hold>,
) {
    let (me, store) = (rx.me.clone(), rx.store.clone());
    let filing = alone.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let _alone = filing;
        accept(&me, &store, doc_id, &header, sink, deadline)
    })
    .await;
    let recorded = match outcome {
        Ok(Ok(Accepted::Answered(receipt))) => Ok(receipt),
        Ok(Ok(Accepted::InInbox(filed))) => record(rx, *filed, alone).await,
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => return error(&mut send, ErrorCode::Internal, e.to_string()).await,
    };
    match recorded {
        Ok(receipt) => {
            let _ = write_message(&mut send, &Message::Delivered { receipt }).await;
            let _ = send.finish();
        }
        Err(e) => cannot_store(&rx.counters, &mut send, doc_id, &e).await,
    }
}

/// Tell the hub this unit cannot store the document now (it retries).
async fn cannot_store(
    counters: &Counters,
    send: &mut quinn::SendStream,
    doc_id: DocId,
    e: &(dyn std::fmt::Display + Sync),
) {
    warn!(doc = %doc_id, "cannot store the document: {e}");
    counters.delivery_refused();
    error(
        send,
        ErrorCode::Storage,
        format!("this unit cannot store the document now: {e}"),
    )
    .await;
}

/// A document moved into the inbox whose record and receipt are still to
/// be made durable.
#[derive(Debug)]
struct InInbox {
    rec: ReceivedRecord,
    receipt: Vec<u8>,
    header: Vec<u8>,
    /// Its folder, and its sender's folder in the inbox (to sync), which
    /// may be new (then the inbox folder is synced too).
    dir: PathBuf,
    sender_dir: PathBuf,
    new_sender: bool,
    /// Its pages' text, for the inbox search.
    text: String,
}

/// A document waiting for the next batch of records.
#[derive(Debug)]
pub struct RecordJob {
    filed: InInbox,
    /// The document stays held until its record is durable.
    _alone: Arc<Hold>,
    reply: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// Make a received document's record durable; documents that arrive while
/// others are being recorded are recorded with them (one sync of each
/// sender's inbox folder and one store commit for the batch; see
/// [`crate::unit::batch`]). Returns the receipt to answer with.
async fn record(rx: &Receiving, filed: InInbox, alone: Arc<Hold>) -> Result<Vec<u8>, String> {
    let receipt = filed.receipt.clone();
    let (reply, answer) = tokio::sync::oneshot::channel();
    let job = RecordJob {
        filed,
        _alone: alone,
        reply,
    };
    let (me, store) = (rx.me.clone(), rx.store.clone());
    rx.recording
        .submit(job, move |jobs| record_batch(&me, &store, jobs));
    match answer.await {
        Ok(Ok(())) => Ok(receipt),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("recording stopped".into()),
    }
}

/// Record one batch and answer each job. Blocking.
fn record_batch(me: &Identity, store: &Store, jobs: Vec<RecordJob>) {
    let recorded = (|| -> Result<(), LocalError> {
        // 1. The moves into the inbox durable.
        let mut dirs: Vec<&Path> = jobs.iter().map(|j| j.filed.sender_dir.as_path()).collect();
        dirs.sort();
        dirs.dedup();
        for dir in dirs {
            sync_dir(dir)?;
        }
        if jobs.iter().any(|j| j.filed.new_sender) {
            sync_dir(&me.folders().inbox)?;
        }
        // 2. Recorded, all in one commit.
        let items: Vec<_> = jobs
            .iter()
            .map(|j| {
                (
                    &j.filed.rec,
                    j.filed.receipt.as_slice(),
                    j.filed.header.as_slice(),
                    j.filed.text.as_str(),
                )
            })
            .collect();
        store.record_filed(&items)?;
        Ok(())
    })();
    for job in jobs {
        let f = &job.filed;
        let answer = match &recorded {
            Ok(()) => {
                clean_incoming(me, f.rec.doc_id);
                info!(doc = %f.rec.doc_id, from = %f.rec.sender, "delivered to {}", f.dir.display());
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        };
        let _ = job.reply.send(answer);
    }
}

/// Where the content of a download goes.
enum Sink {
    /// Decrypted into the assembly folder.
    Opening(Box<Opening>),
    /// A check failed: the rest is kept as evidence.
    Evidence {
        why: EnvelopeError,
        file: std::io::BufWriter<std::fs::File>,
    },
}

impl Sink {
    /// Keep, as evidence, `failed` (the raw bytes of the chunk that failed
    /// the check, if any) and whatever follows.
    fn evidence(path: &Path, why: EnvelopeError, failed: &[u8]) -> std::io::Result<Sink> {
        let mut file = std::io::BufWriter::with_capacity(IO_CHUNK, std::fs::File::create(path)?);
        file.write_all(failed)?;
        Ok(Sink::Evidence { why, file })
    }
}

/// Get ready to take the content: verify the header and open the content
/// key, then resume after the last checkpoint if its files are intact (else
/// start over). Returns where the hub is to start. A header that fails a
/// check is not an error here: the content is then taken as evidence and
/// the document quarantined once it is all there. Blocking.
fn prepare_download(
    me: &Identity,
    doc_id: DocId,
    header: &[u8],
) -> Result<(u64, Sink), LocalError> {
    let offset_file = offset_path(me, doc_id);
    let checkpoint = std::fs::read_to_string(&offset_file)
        .ok()
        .and_then(|text| plan::parse_checkpoint(&text));
    match Opening::start(me, doc_id, header, checkpoint.as_ref()) {
        Ok((opening, offset)) => {
            if checkpoint.is_some_and(|(at, _)| at != offset) {
                let _ = std::fs::remove_file(&offset_file);
            }
            Ok((offset, Sink::Opening(Box::new(opening))))
        }
        Err(Verdict::Quarantine(why)) => {
            let _ = std::fs::remove_file(&offset_file);
            let _ = std::fs::remove_dir_all(assembly_path(me, doc_id));
            Ok((0, Sink::evidence(&evidence_path(me, doc_id), why, &[])?))
        }
        Err(Verdict::Local(e)) => Err(e),
    }
}

/// Take a download's batches as they come, and every checkpoint interval
/// make what was decrypted durable and record how far that is. Returns
/// where the content went. Blocking.
fn write_download(
    mut sink: Sink,
    offset: u64,
    content_len: u64,
    mut batches: Batches,
    offset_file: &Path,
    evidence: &Path,
) -> std::io::Result<Sink> {
    let mut durable = offset;
    let every = gongwen_common::stream::checkpoint_interval(content_len);
    while let Some(batch) = batches.next_blocking() {
        for bytes in &batch {
            let mut data: &[u8] = bytes;
            match &mut sink {
                Sink::Opening(o) => match o.feed(&mut data) {
                    Ok(()) => {}
                    Err(Verdict::Quarantine(why)) => {
                        // The chunk that failed, then the rest.
                        let mut kept = Sink::evidence(evidence, why, &o.chunk)?;
                        if let Sink::Evidence { file, .. } = &mut kept {
                            file.write_all(data)?;
                        }
                        sink = kept;
                    }
                    Err(Verdict::Local(e)) => return Err(e.into_io()),
                },
                Sink::Evidence { file, .. } => file.write_all(data)?,
            }
        }
        if let Sink::Opening(o) = &mut sink {
            let whole = o.whole_chunks();
            if whole - durable >= every && whole < content_len {
                let digest = o.make_durable()?;
                durable = whole;
                write_atomic(offset_file, format!("{durable} {digest}").as_bytes(), 0o600)?;
            }
        }
    }
    // Nothing may be left buffered: the caller drops its hold on the
    // document when this returns, and nothing of this attempt should touch
    // the assembly folder after that.
    match &mut sink {
        Sink::Evidence { file, .. } => file.flush()?,
        Sink::Opening(o) => o.splitter.flush()?,
    }
    Ok(sink)
}

/// Why a downloaded document cannot be filed (not a verification failure:
/// those quarantine it).
#[derive(Debug, thiserror::Error)]
enum LocalError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Store(#[from] crate::unit::store::StoreError),
    #[error("signing the receipt failed: {0}")]
    Sign(#[from] gongwen_common::pki::PkiError),
    /// The document cannot be judged now (its signer's revocation status is
    /// unknown); not its fault, so not quarantined: the hub retries.
    #[error("{0}")]
    NotNow(EnvelopeError),
}

impl LocalError {
    fn into_io(self) -> std::io::Error {
        match self {
            LocalError::Io(e) => e,
            other => std::io::Error::other(other.to_string()),
        }
    }
}

/// What became of a complete download.
enum Accepted {
    /// Quarantined and recorded: answer with this receipt.
    Answered(Vec<u8>),
    /// In the inbox, with our signed receipt; to be recorded.
    InInbox(Box<InInbox>),
}

/// File a complete download in the inbox (or quarantine) and sign our
/// receipt. `deadline`: the hub's acknowledgment deadline for this unit
/// (Unix s).
fn accept(
    me: &Identity,
    store: &Store,
    doc_id: DocId,
    header: &[u8],
    sink: Sink,
    deadline: Option<i64>,
) -> Result<Accepted, LocalError> {
    let filed = match sink {
        Sink::Opening(opening) => opening
            .finish()
            .and_then(|(sealed, tmp)| file_in_inbox(me, doc_id, sealed, &tmp, deadline)),
        Sink::Evidence { why, .. } => Err(Verdict::Quarantine(why)),
    };
    match filed {
        Ok((sealed, moved)) => {
            gongwen_common::failpoint::hit("agent-inbox-written");
            let meta = sealed.meta();
            let receipt = sign_receipt(me, doc_id, sealed.digest(), ReceiptKind::Delivered, "")?;
            let (title, doc_number) = crate::rules::metadata::shown_title(meta);
            let rec = ReceivedRecord {
                doc_id,
                sender: meta.sender.clone(),
                title,
                doc_number,
                doc_type: meta.doc_type.clone(),
                urgency: meta.urgency,
                deadline,
                received_ms: me.now_ms(),
                state: ReceivedState::Delivered,
                reason: None,
                digest: gongwen_common::pki::serial_hex(&sealed.digest()),
                urge_count: 0,
                answer: None,
                answered_ms: None,
                recall_reason: None,
                sender_name: gongwen_common::pki::CertIdentity::from_der(&sealed.statement.cert)
                    .ok()
                    .and_then(|signer| signer.name),
            };
            Ok(Accepted::InInbox(Box::new(InInbox {
                rec,
                receipt,
                header: header.to_vec(),
                dir: moved.dir,
                sender_dir: moved.sender_dir,
                new_sender: moved.new_sender,
                text: moved.text,
            })))
        }
        Err(Verdict::Local(e)) => Err(e),
        Err(Verdict::Quarantine(why)) => {
            quarantine(me, store, doc_id, header, &why).map(Accepted::Answered)
        }
    }
}

enum Verdict {
    Quarantine(EnvelopeError),
    Local(LocalError),
}

impl From<std::io::Error> for Verdict {
    fn from(e: std::io::Error) -> Self {
        Verdict::Local(e.into())
    }
}

impl From<EnvelopeError> for Verdict {
    fn from(e: EnvelopeError) -> Self {
        match plan::failed_check(e.is_transient()) {
            FailedCheck::NotNow => Verdict::Local(LocalError::NotNow(e)),
            FailedCheck::Quarantine => Verdict::Quarantine(e),
        }
    }
}

/// A document being decrypted into its assembly folder as its content
/// arrives.
///
/// What makes the content trustworthy is checked here chunk by chunk:
/// each chunk's AES-GCM tag (the nonce carries its index and whether it is
/// the last, so chunks cannot be reordered, dropped or cut short), then
/// each file's SHA-256 against the sender's signed header. The ciphertext's
/// own SHA-256, also in the header, is for the hub, which cannot decrypt:
/// content that decrypts to the signed files is the sender's, so checking
/// it again here would only cost a second hash of every byte.
struct Opening {
    sealed: SealedHeader,
    opener: ContentOpener,
    splitter: Splitter,
    /// The ciphertext chunk being gathered, as it came (the evidence, if
    /// it fails: the check destroys the buffer it decrypts in).
    chunk: Vec<u8>,
    /// Where the chunk is decrypted.
    plain: Vec<u8>,
    /// Ciphertext bytes taken, from the start of the content.
    received: u64,
}

impl Opening {
    /// Verify the header and get ready to decrypt: after `checkpoint`
    /// (ciphertext bytes, and the digest [`Opening::make_durable`] gave
    /// there) if what was decrypted up to it is intact, else from the
    /// start. Returns where the content is to continue.
    fn start(
        me: &Identity,
        doc_id: DocId,
        header: &[u8],
        checkpoint: Option<&(u64, String)>,
    ) -> Result<(Opening, u64), Verdict> {
        let sealed = SealedHeader::parse(header)?;
        let h = &sealed.header;
        if h.meta.doc_id != doc_id {
            return Err(EnvelopeError::HeaderMalformed(
                gongwen_common::codec::CodecError::BadCode {
                    what: "document id",
                    code: 0,
                },
            )
            .into());
        }
        let now = me.clock().now();
        // A forward carries its first issuer's header, perhaps of another
        // domain: judged by that domain's checker.
        let original = sealed
            .original()
            .and_then(|o| me.trust().find_checker(|c| o.verify(Some(c), now).is_ok()));
        let (_, sender_domain) = me.trust().check_any(
            |checker| {
                sealed.verify_across(Some(checker), original.as_deref().or(Some(checker)), now)
            },
            |e| e.to_string().contains(&CertProblem::NotFromCa.to_string()),
        )?;
        // A sender elsewhere names this unit `unit@our-domain`, and sealed
        // its key for that name.
        let here = me.trust().domain();
        let named = match (&sender_domain, &here) {
            (Some(_), Some(d)) => NodeId::remote(me.node_id(), d),
            _ => me.node_id().clone(),
        };
        let key = me.enc_key().unwrap(h, &named)?;
        let tmp = assembly_path(me, doc_id);
        let files = h.meta.files.clone();
        // A checkpoint always falls between chunks, inside the content.
        let resumable = checkpoint
            .and_then(|(at, digest)| plan::resume_point(*at, h.content_len).map(|r| (r, digest)));
        let resumed = if let Some((at, digest)) = resumable {
            match Splitter::resume(tmp.clone(), files.clone(), at.plain, digest, h.suite) {
                Ok(Some(splitter)) => Some((splitter, at.chunk)),
                Ok(None) => {
                    warn!(doc = %doc_id, "the kept part of the download is not intact; starting over");
                    None
                }
                Err(e) => {
                    warn!(doc = %doc_id, "cannot read the kept part of the download ({e}); starting over");
                    None
                }
            }
        } else {
            None
        };
        let (splitter, index) = match resumed {
            Some(r) => r,
            None => {
                let _ = std::fs::remove_dir_all(&tmp);
                std::fs::create_dir_all(&tmp)?;
                (Splitter::new(tmp, files, h.suite)?, 0)
            }
        };
        let opener = ContentOpener::at_chunk(&key, h, index)?;
        let received = index * SEALED_CHUNK_LEN;
        // A chunk at most, and no more than a small document needs.
        let chunk_cap = SEALED_CHUNK_LEN.min(h.content_len) as usize;
        let mut sealed = sealed;
        if let Some(from) = &sender_domain {
            // From here on (inbox folder, records, metadata.json) every
            // address is as this unit names it; the signed bytes stay as
            // they came.
            let m = &mut sealed.header.meta;
            m.sender = localize(&m.sender, from, here.as_ref());
            for a in m.to.iter_mut().chain(m.cc.iter_mut()) {
                *a = localize(a, from, here.as_ref());
            }
        }
        let opening = Opening {
            sealed,
            opener,
            splitter,
            chunk: Vec::with_capacity(chunk_cap),
            plain: Vec::with_capacity(chunk_cap),
            received,
        };
        Ok((opening, received))
    }

    /// Take the next bytes of ciphertext, in order. On a failed check,
    /// `data` is left at the first byte not taken and [`Opening::chunk`]
    /// holds the chunk that failed.
    fn feed(&mut self, data: &mut &[u8]) -> Result<(), Verdict> {
        while !data.is_empty() {
            let want = self.opener.next_chunk_len();
            if want == 0 {
                return Err(EnvelopeError::ContentLength {
                    expected: self.sealed.header.content_len,
                    got: self.received + data.len() as u64,
                }
                .into());
            }
            let take = (want - self.chunk.len()).min(data.len());
            self.chunk.extend_from_slice(&data[..take]);
            self.received += take as u64;
            *data = &data[take..];
            if self.chunk.len() == want {
                self.plain.clear();
                self.plain.extend_from_slice(&self.chunk);
                let n = self.opener.open_chunk(&mut self.plain)?;
                self.splitter.write(&self.plain[..n])?;
                self.chunk.clear();
            }
        }
        Ok(())
    }

    /// Ciphertext bytes taken in whole chunks (where a checkpoint can be).
    fn whole_chunks(&self) -> u64 {
        self.received - self.chunk.len() as u64
    }

    /// Make everything decrypted so far durable. Returns the SHA-256 (hex)
    /// of what the file being written holds so far, for a resume to check.
    fn make_durable(&mut self) -> std::io::Result<String> {
        self.splitter.make_durable()?;
        Ok(gongwen_common::pki::serial_hex(
            &self.splitter.hash.clone().finish(),
        ))
    }

    /// Check that the content was whole; returns the header and the
    /// assembly folder, every file in it written and synced.
    fn finish(self) -> Result<(SealedHeader, PathBuf), Verdict> {
        if !self.opener.is_finished() {
            return Err(EnvelopeError::ContentLength {
                expected: self.sealed.header.content_len,
                got: self.received,
            }
            .into());
        }
        let tmp = self.splitter.finish()?;
        Ok((self.sealed, tmp))
    }
}

/// Where [`file_in_inbox`] moved a document.
struct Moved {
    dir: PathBuf,
    sender_dir: PathBuf,
    new_sender: bool,
    text: String,
}

/// Give a decrypted document its metadata and move its folder into the
/// inbox. The move is made durable with the batch that records it.
fn file_in_inbox(
    me: &Identity,
    doc_id: DocId,
    sealed: SealedHeader,
    tmp: &Path,
    deadline: Option<i64>,
) -> Result<(SealedHeader, Moved), Verdict> {
    let sender_dir = me.folders().inbox.join(sealed.meta().sender.as_str());
    let dest = sender_dir.join(doc_id.to_string());
    let mut metadata = MetadataJson::from_sealed(&sealed, deadline);
    metadata.number_copy_for(&sealed, me.node_id());
    // A forward's first issuer of another domain, as this unit names it.
    if let (Some(from), Some(original)) = (metadata.forwarded_from.as_mut(), sealed.original()) {
        let now = me.clock().now();
        if let Ok((_, Some(domain))) = me.trust().check_any(
            |checker| original.verify(Some(checker), now),
            |e| e.to_string().contains(&CertProblem::NotFromCa.to_string()),
        ) {
            from.sender = localize(&from.sender, &domain, me.trust().domain().as_ref());
        }
    }
    // 验章 and the OFD check, once, on arrival: what the clerk is shown
    // and what the 签收 receipt will carry.
    let names: Vec<String> = sealed.meta().files.iter().map(|f| f.name.clone()).collect();
    let found = crate::rules::metadata::OfdFindings::examine(
        tmp,
        &names,
        &me.config().seals,
        me.clock().now(),
    );
    metadata.seals = found.seals;
    metadata.ofd_problems = found.ofd_problems;
    let mut text = found.text;
    // A PDF's text too, read by poppler in a child under limits.
    for f in &sealed.meta().files {
        if f.name.to_ascii_lowercase().ends_with(".pdf")
            && let Some(t) = crate::actions::render::pdf_text(&tmp.join(&f.name))
        {
            text.push_str(&t);
        }
    }
    const MAX_TEXT: usize = 512 * 1024;
    if text.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    let meta_json = serde_json::to_vec_pretty(&metadata)
        .map_err(|e| Verdict::Local(LocalError::Io(std::io::Error::other(e))))?;
    // Also makes the folder's other entries durable (it syncs `tmp`).
    write_atomic(&tmp.join("metadata.json"), &meta_json, 0o644)?;
    let new_sender = !sender_dir.exists();
    std::fs::create_dir_all(&sender_dir)?;
    if dest.exists() {
        // Written before a crash that came before the store recorded it.
        std::fs::remove_dir_all(tmp)?;
    } else {
        std::fs::rename(tmp, &dest)?;
    }
    // incoming/ is not synced: a crash can at worst leave a stale, empty
    // assembly entry there, never a missing inbox copy.
    Ok((
        sealed,
        Moved {
            dir: dest,
            sender_dir,
            new_sender,
            text,
        },
    ))
}

/// Writes decrypted content across the document's files, in order, and
/// checks each file's digest (SHA-256, or SM3 in the GM suite) as it
/// completes.
struct Splitter {
    dir: PathBuf,
    files: Vec<FileEntry>,
    index: usize,
    left: u64,
    out: Option<std::io::BufWriter<std::fs::File>>,
    suite: Suite,
    hash: Hasher,
}

impl Splitter {
    fn new(dir: PathBuf, files: Vec<FileEntry>, suite: Suite) -> Result<Self, Verdict> {
        let mut s = Splitter {
            dir,
            files,
            index: 0,
            left: 0,
            out: None,
            suite,
            hash: Hasher::new(suite),
        };
        s.open_current()?;
        Ok(s)
    }

    /// The state a splitter was in after `plain` bytes, rebuilt from the
    /// files a checkpoint made durable: files finished before it must be
    /// whole and match their signed SHA-256; the file it falls in must
    /// match `prefix_digest` (hex) up to it, and is cut there. `None` if
    /// they are not intact.
    fn resume(
        dir: PathBuf,
        files: Vec<FileEntry>,
        plain: u64,
        prefix_digest: &str,
        suite: Suite,
    ) -> std::io::Result<Option<Self>> {
        let mut start = 0u64;
        for index in 0..files.len() {
            let (size, end) = (files[index].size, start + files[index].size);
            let path = dir.join(&files[index].name);
            if end <= plain {
                let mut file = std::fs::File::open(&path)?;
                let mut hash = Hasher::new(suite);
                if file.metadata()?.len() != size
                    || !hash_kept(&mut file, size, &mut hash)?
                    || hash.finish() != files[index].sha256
                {
                    return Ok(None);
                }
                start = end;
                continue;
            }
            let have = plain.saturating_sub(start);
            let mut hash = Hasher::new(suite);
            let file = if have == 0 {
                std::fs::File::create(&path)?
            } else {
                let mut file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)?;
                if file.metadata()?.len() < have || !hash_kept(&mut file, have, &mut hash)? {
                    return Ok(None);
                }
                file.set_len(have)?;
                file.seek(std::io::SeekFrom::Start(have))?;
                file
            };
            if gongwen_common::pki::serial_hex(&hash.clone().finish()) != prefix_digest {
                return Ok(None);
            }
            return Ok(Some(Splitter {
                dir,
                files,
                index,
                left: size - have,
                out: Some(std::io::BufWriter::with_capacity(IO_CHUNK, file)),
                suite,
                hash,
            }));
        }
        // Past every file: no download stops there.
        Ok(None)
    }

    /// Open the file at `index`, finishing empty files on the way.
    fn open_current(&mut self) -> Result<(), Verdict> {
        while let Some(f) = self.files.get(self.index) {
            let file = std::fs::File::create(self.dir.join(&f.name))?;
            self.out = Some(std::io::BufWriter::with_capacity(IO_CHUNK, file));
            self.hash = Hasher::new(self.suite);
            self.left = f.size;
            if f.size > 0 {
                return Ok(());
            }
            self.finish_current()?;
        }
        Ok(())
    }

    fn finish_current(&mut self) -> Result<(), Verdict> {
        let Some(w) = self.out.take() else {
            return Ok(());
        };
        let file = w
            .into_inner()
            .map_err(|e| Verdict::Local(LocalError::Io(e.into_error())))?;
        file.sync_all()?;
        let entry = &self.files[self.index];
        let hash = std::mem::replace(&mut self.hash, Hasher::new(self.suite));
        if hash.finish() != entry.sha256 {
            return Err(EnvelopeError::FileDigest(entry.name.clone()).into());
        }
        self.index += 1;
        Ok(())
    }

    fn write(&mut self, mut data: &[u8]) -> Result<(), Verdict> {
        while !data.is_empty() {
            let Some(out) = self.out.as_mut() else {
                return Err(EnvelopeError::ChunkAuth(0).into());
            };
            let take = (self.left.min(data.len() as u64)) as usize;
            out.write_all(&data[..take])?;
            self.hash.update(&data[..take]);
            self.left -= take as u64;
            data = &data[take..];
            if self.left == 0 {
                self.finish_current()?;
                self.open_current()?;
            }
        }
        Ok(())
    }

    /// Write out what is buffered.
    fn flush(&mut self) -> std::io::Result<()> {
        match self.out.as_mut() {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }

    /// Make what was written durable: the file being written (those before
    /// it were synced as they finished) and the folder's entries.
    fn make_durable(&mut self) -> std::io::Result<()> {
        self.flush()?;
        if let Some(out) = self.out.as_ref() {
            out.get_ref().sync_data()?;
        }
        sync_dir(&self.dir)
    }

    /// Every file written; returns the folder they are in.
    fn finish(self) -> Result<PathBuf, Verdict> {
        if self.index != self.files.len() {
            let name = self
                .files
                .get(self.index)
                .map(|f| f.name.clone())
                .unwrap_or_default();
            return Err(EnvelopeError::FileDigest(name).into());
        }
        Ok(self.dir)
    }
}

fn sign_receipt(
    me: &Identity,
    doc_id: DocId,
    digest: [u8; 32],
    kind: ReceiptKind,
    reason: &str,
) -> Result<Vec<u8>, LocalError> {
    let node: NodeId = me.node_id().clone();
    Ok(Receipt {
        doc_id,
        kind,
        recipient: node.clone(),
        issuer: node,
        doc_digest: digest,
        time_ms: me.now_ms(),
        by: String::new(),
        reason: reason.to_owned(),
        seals: Vec::new(),
    }
    .sign(&me.credentials().signer())?
    .encode())
}

/// File a document that failed verification under quarantine/, and sign a
/// `quarantined` receipt saying why.
fn quarantine(
    me: &Identity,
    store: &Store,
    doc_id: DocId,
    header: &[u8],
    why: &EnvelopeError,
) -> Result<Vec<u8>, LocalError> {
    warn!(doc = %doc_id, "quarantined: {why}");
    let dir = me.folders().quarantine.join(doc_id.to_string());
    std::fs::create_dir_all(&dir)?;
    let _ = std::fs::remove_dir_all(assembly_path(me, doc_id));
    let parsed = SealedHeader::parse(header).ok();
    let sender = parsed
        .as_ref()
        .map(|p| p.meta().sender.to_string())
        .unwrap_or_else(|| "（无法读出）".into());
    let title = parsed
        .as_ref()
        .map(|p| p.meta().title.clone())
        .unwrap_or_default();
    // The clerk's words first; the check that failed, for the
    // administrator, as the log says it.
    let reason = format!(
        "这份来文没有通过验证，没有放进收文。\n\n\
         文档编号：{doc_id}\n来文单位（自称）：{sender}\n标题（自称）：{title}\n\n\
         怎么办：请告知来文单位和本单位管理员，不要打开其内容。本文件夹中的 header.bin\n\
         （及 content.bin，如有：收到的内容，从第一处未通过检查的部分起）留作证据。\n\n\
         技术原因（供管理员参考）：{why}\n"
    );
    // The evidence first, the reason last: a quarantine folder that shows
    // its reason.txt holds everything it will hold.
    write_atomic(&dir.join("header.bin"), header, 0o644)?;
    let part = evidence_path(me, doc_id);
    if part.exists() {
        std::fs::rename(&part, dir.join("content.bin"))?;
    }
    write_atomic(&dir.join("reason.txt"), reason.as_bytes(), 0o644)?;
    sync_dir(&dir)?;
    // The digest the hub knows this document by: the signed header's, if
    // the statement can be read at all.
    let digest = gongwen_common::signed::Statement::decode(
        header,
        gongwen_common::signed::StatementKind::Document,
    )
    .map(|st| st.digest())
    .unwrap_or_else(|_| sha256(header));
    let receipt = sign_receipt(
        me,
        doc_id,
        digest,
        ReceiptKind::Quarantined,
        &why.to_string(),
    )?;
    let meta = parsed.as_ref().map(|p| p.meta());
    let rec = ReceivedRecord {
        doc_id,
        sender: meta
            .map(|m| m.sender.clone())
            .unwrap_or_else(|| me.node_id().clone()),
        title,
        doc_number: meta.map(|m| m.doc_number.clone()).unwrap_or_default(),
        doc_type: meta.map(|m| m.doc_type.clone()).unwrap_or_default(),
        urgency: meta.map(|m| m.urgency).unwrap_or_default(),
        deadline: meta.and_then(|m| m.deadline).and_then(Deadline::at),
        received_ms: me.now_ms(),
        state: ReceivedState::Quarantined,
        reason: Some(why.to_string()),
        digest: gongwen_common::pki::serial_hex(&digest),
        urge_count: 0,
        answer: None,
        answered_ms: None,
        recall_reason: None,
        sender_name: None,
    };
    store.record_received(&rec, &receipt, header)?;
    clean_incoming(me, doc_id);
    Ok(receipt)
}

fn clean_incoming(me: &Identity, doc_id: DocId) {
    let _ = std::fs::remove_file(evidence_path(me, doc_id));
    let _ = std::fs::remove_file(offset_path(me, doc_id));
}
