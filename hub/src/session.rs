//! One admitted agent's session: its requests (key publication, lookup,
//! uploads, receipts) and the hub's pushes to it (documents, receipts for
//! its own documents, the CRL). Everything ends with the connection.
//!
//! ```text
//!            ┌── requests: one task per stream the agent opens
//! session ───┼── deliverer: pending documents → DeliverBegin …  ← Delivered(receipt)
//!            ├── forwarder: receipts for documents it sent → ReceiptNotice
//!            └── crl: current CRL on start and on every change
//! ```

use std::sync::Arc;
use std::time::Duration;

use gongwen_common::envelope::{FileKind, SealedHeader};
use gongwen_common::logsafe::Clipped;
use gongwen_common::pki::{CertIdentity, serial_hex};
use gongwen_common::receipt::{Receipt, ReceiptKind};
use gongwen_common::stream::{
    DOCUMENT_WORK_TIMEOUT, READ_TIMEOUT, StreamError, read_message, write_message,
};
use gongwen_common::transfer::{Batches, StreamEnd, read_file_chunks, receive_to_blocking};
use gongwen_common::wire::{ErrorCode, Message, Resolved};
use gongwen_common::{DocId, NodeId};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::loglimit::Warnings;
use crate::registry::Wake;
use crate::server::{Shared, Stats};
use crate::store::{DocRecord, FileRow, PartialUpload, StoreError};

/// Bytes read from the network or a file at a time.
const IO_CHUNK: usize = 256 * 1024;
/// Pause before pushing again after a push failed on a live connection.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// Pushers look at the store at least this often even without a wake-up.
const RESCAN: Duration = Duration::from_secs(30);

/// Open an upload's partial file for writing at `offset` (its last durable
/// point), cutting anything after it, with the hash of what it holds.
/// Falls back to 0 if the file is shorter than the record says. Blocking.
fn open_partial(
    path: &std::path::Path,
    offset: u64,
) -> std::io::Result<(std::fs::File, ring::digest::Context, u64)> {
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
    let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
    let offset = if gongwen_common::transfer::hash_kept(&mut file, offset, &mut hasher)? {
        offset
    } else {
        hasher = ring::digest::Context::new(&ring::digest::SHA256);
        file.set_len(0)?;
        0
    };
    file.seek(std::io::SeekFrom::Start(offset))?;
    Ok((file, hasher, offset))
}

#[derive(Debug)]
enum UploadWriteError {
    Io(std::io::Error),
    Store(StoreError),
}

impl From<std::io::Error> for UploadWriteError {
    fn from(e: std::io::Error) -> Self {
        UploadWriteError::Io(e)
    }
}

/// Write an upload's chunks as they come, hashing them, and make it durable
/// every checkpoint interval (`checkpoint` records the durable offset).
/// Returns the file, the hash and the bytes written. Blocking.
fn write_upload(
    file: std::fs::File,
    mut hasher: ring::digest::Context,
    offset: u64,
    content_len: u64,
    mut batches: Batches,
    checkpoint: impl Fn(u64) -> Result<(), StoreError>,
) -> Result<(std::fs::File, ring::digest::Context, u64), UploadWriteError> {
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(IO_CHUNK, file);
    let (mut written, mut durable) = (offset, offset);
    let every = gongwen_common::stream::checkpoint_interval(content_len);
    while let Some(batch) = batches.next_blocking() {
        for chunk in &batch {
            hasher.update(chunk);
            out.write_all(chunk).map_err(UploadWriteError::Io)?;
            written += chunk.len() as u64;
        }
        if written - durable >= every {
            out.flush().map_err(UploadWriteError::Io)?;
            out.get_ref().sync_data().map_err(UploadWriteError::Io)?;
            durable = written;
            checkpoint(durable).map_err(UploadWriteError::Store)?;
        }
    }
    let file = out
        .into_inner()
        .map_err(|e| UploadWriteError::Io(e.into_error()))?;
    Ok((file, hasher, written))
}

/// A refusal to send back to the agent.
#[derive(Debug)]
struct Refusal {
    code: ErrorCode,
    message: String,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }

    /// A document or key binding whose signature or signer did not pass:
    /// final, unless the signer merely cannot be judged now.
    fn signature(e: gongwen_common::envelope::EnvelopeError) -> Self {
        let code = if e.is_transient() {
            ErrorCode::NotNow
        } else {
            ErrorCode::BadSignature
        };
        Refusal::new(code, e.to_string())
    }

    /// A refusal the unit sent: its words, escaped and cut for the log.
    fn from_peer(code: ErrorCode, message: &str) -> Self {
        Refusal::new(code, Clipped(message).to_string())
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        tracing::error!("store: {e}");
        if e.is_storage() {
            Refusal::new(
                ErrorCode::Storage,
                "the hub cannot store this now (its disk may be full or failing); the agent keeps the document and retries",
            )
        } else {
            // Not the disk: say what failed rather than blame free space.
            // The agent still keeps the document and retries.
            Refusal::new(
                ErrorCode::Internal,
                format!("the hub's store failed ({e}); the hub's operator should look at its log"),
            )
        }
    }
}

fn io_refusal(e: std::io::Error) -> Refusal {
    tracing::error!("spool: {e}");
    Refusal::new(
        ErrorCode::Storage,
        format!("the hub cannot write its spool ({e}); the agent keeps the document and retries"),
    )
}

/// Run a session until the connection ends.
pub(crate) async fn run(
    conn: quinn::Connection,
    ident: CertIdentity,
    shared: Arc<Shared>,
    wake: Arc<Wake>,
    warnings: Arc<Warnings>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(
        deliverer(conn.clone(), ident.id.clone(), shared.clone(), wake.clone()).in_current_span(),
    );
    tasks.spawn(
        forwarder(conn.clone(), ident.id.clone(), shared.clone(), wake.clone()).in_current_span(),
    );
    tasks.spawn(crl_pusher(conn.clone(), shared.clone(), wake).in_current_span());
    let strikes = Arc::new(std::sync::atomic::AtomicU32::new(0));
    loop {
        tokio::select! {
            stream = conn.accept_bi() => match stream {
                Ok((send, recv)) => {
                    let shared = shared.clone();
                    let ident = ident.clone();
                    let (conn, strikes) = (conn.clone(), strikes.clone());
                    let warnings = warnings.clone();
                    tasks.spawn(
                        async move {
                            let peer = Peer { ident: &ident, conn: &conn, strikes: &strikes, warnings: &warnings };
                            handle_request(send, recv, &peer, &shared).await
                        }
                        .in_current_span(),
                    );
                }
                Err(_) => break,
            },
            Some(_) = tasks.join_next() => {}
        }
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
}

/// Invalid frames a connection may send before the hub closes it.
const MAX_INVALID_FRAMES: u32 = 16;

async fn answer(send: &mut quinn::SendStream, msg: &Message) {
    if let Err(e) = write_message(send, msg).await {
        debug!("could not answer: {e}");
    }
    let _ = send.finish();
}

/// The admitted unit a request came from, and what its misbehaviour has
/// earned so far.
struct Peer<'a> {
    ident: &'a CertIdentity,
    conn: &'a quinn::Connection,
    /// Invalid frames so far.
    strikes: &'a std::sync::atomic::AtomicU32,
    warnings: &'a Warnings,
}

async fn handle_request(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    peer: &Peer<'_>,
    shared: &Shared,
) {
    let (ident, conn, strikes) = (peer.ident, peer.conn, peer.strikes);
    let request = match read_message(&mut recv, READ_TIMEOUT).await {
        Ok(m) => m,
        Err(StreamError::Wire(e)) => {
            // Refused by its length or shape before anything is allocated
            // for it; the peer is told why. A peer that keeps sending
            // invalid frames is not a confused agent but a hostile one.
            answer(
                &mut send,
                &Message::Error {
                    code: ErrorCode::BadRequest,
                    message: format!("invalid frame: {e}"),
                },
            )
            .await;
            let n = strikes.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if n >= MAX_INVALID_FRAMES {
                warn!(node = %ident.id, "security: {n} invalid frames; closing the connection");
                crate::registry::close(
                    conn,
                    gongwen_common::wire::RefuseCode::ProtocolViolation,
                    "too many invalid frames",
                );
            } else {
                if let Some(held_back) = peer.warnings.allow(ident.id.as_str()) {
                    warn!(node = %ident.id, "invalid frame: {e}{held_back}");
                }
            }
            return;
        }
        Err(e) => {
            debug!("request stream: {e}");
            return;
        }
    };
    let reply = match request {
        Message::PublishKey { binding } => publish_key(&binding, ident, shared).await,
        Message::Lookup { names } => lookup(names, shared).await,
        Message::UploadBegin {
            doc_id,
            header,
            content_len,
        } => {
            let span = info_span!("upload", doc = %doc_id);
            receive_upload(
                &mut send,
                &mut recv,
                ident,
                shared,
                doc_id,
                header,
                content_len,
            )
            .instrument(span)
            .await
        }
        Message::SubmitReceipt { receipt } => submit_receipt(&receipt, ident, shared).await,
        Message::Recall { doc_id, reason } => recall(doc_id, reason, ident, shared).await,
        Message::Supervise { query } => supervise(&query, ident, shared).await,
        Message::Urge { doc_id, units } => urge(doc_id, units, ident, shared).await,
        other => Err(Refusal::new(
            ErrorCode::BadRequest,
            format!("the hub does not take a {} from an agent", other.kind()),
        )),
    };
    let msg = match reply {
        Ok(m) => m,
        Err(r) => {
            debug!("refused: {}", r.message);
            Message::Error {
                code: r.code,
                message: r.message,
            }
        }
    };
    answer(&mut send, &msg).await;
}

async fn publish_key(
    binding: &[u8],
    ident: &CertIdentity,
    shared: &Shared,
) -> Result<Message, Refusal> {
    let checker = shared.checker();
    let b =
        gongwen_common::envelope::KeyBinding::verify(binding, Some(&checker), shared.clock.now())
            .map_err(Refusal::signature)?;
    if b.node != ident.id {
        warn!(claimed = %b.node, "security: a node published a key binding for another node");
        return Err(Refusal::new(
            ErrorCode::NotTheSender,
            "a node may publish only its own key",
        ));
    }
    let (node, bytes) = (ident.id.clone(), binding.to_vec());
    shared
        .store
        .run(move |s| s.put_binding(&node, &bytes))
        .await?;
    debug!("encryption key published");
    Ok(Message::Ok)
}

async fn lookup(names: Vec<String>, shared: &Shared) -> Result<Message, Refusal> {
    let groups = shared.config.groups.clone();
    shared
        .store
        .run(move |store| {
            let mut resolved = Vec::new();
            let mut unknown = Vec::new();
            let mut bindings = Vec::new();
            let mut seen = std::collections::BTreeSet::new();
            for name in names {
                let members = if let Some(members) = groups.get(&name) {
                    members.clone()
                } else if let Ok(id) = NodeId::parse(&name) {
                    vec![id]
                } else {
                    unknown.push(name);
                    continue;
                };
                let mut all_known = true;
                for m in &members {
                    match store.binding(m)? {
                        Some(b) => {
                            if seen.insert(m.clone()) {
                                bindings.push(b);
                            }
                        }
                        None => all_known = false,
                    }
                }
                if all_known {
                    resolved.push(Resolved { name, members });
                } else if groups.contains_key(&name) {
                    // A group member that never connected: name it.
                    for m in members {
                        if store.binding(&m)?.is_none() {
                            unknown.push(format!("{m} (member of group {name})"));
                        }
                    }
                } else {
                    unknown.push(name);
                }
            }
            Ok(Message::Directory {
                resolved,
                unknown,
                bindings,
            })
        })
        .await
        .map_err(Refusal::from)
}

/// Receive, check and durably store one uploaded document, then sign
/// `accepted`. Resumes from the last durable offset of an earlier attempt.
async fn receive_upload(
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    ident: &CertIdentity,
    shared: &Shared,
    doc_id: DocId,
    header_bytes: Vec<u8>,
    content_len: u64,
) -> Result<Message, Refusal> {
    let sealed = SealedHeader::parse(&header_bytes)
        .map_err(|e| Refusal::new(ErrorCode::Malformed, e.to_string()))?;
    let meta = sealed.meta().clone();
    if meta.doc_id != doc_id {
        return Err(Refusal::new(
            ErrorCode::Malformed,
            "the header names another document",
        ));
    }
    if meta.sender != ident.id {
        warn!(claimed = %meta.sender, "security: a document claims another sender");
        return Err(Refusal::new(
            ErrorCode::NotTheSender,
            format!(
                "the document claims sender {}, but this connection is {}",
                meta.sender, ident.id
            ),
        ));
    }
    sealed
        .verify(Some(&shared.checker()), shared.clock.now())
        .map_err(Refusal::signature)?;
    if content_len != sealed.header.content_len {
        return Err(Refusal::new(
            ErrorCode::ContentMismatch,
            "content length differs from the header",
        ));
    }
    let limit = shared.config.max_document_size;
    if content_len > limit {
        return Err(Refusal::new(
            ErrorCode::TooLarge,
            format!("the document is {content_len} bytes; this hub takes at most {limit}"),
        ));
    }
    let digest = serial_hex(&sealed.digest());
    let recipients = meta.recipients();
    let (existing, accepted, partial, unknown) = {
        let recipients = recipients.clone();
        shared
            .store
            .run(move |s| {
                // A recipient is unknown only when the store says so; a
                // store that cannot be read is a retryable refusal (the
                // `?`), not a permanent "unknown recipient".
                let mut unknown: Vec<NodeId> = Vec::new();
                for r in &recipients {
                    if s.binding(r)?.is_none() {
                        unknown.push(r.clone());
                    }
                }
                Ok((
                    s.doc(doc_id)?,
                    s.accepted_receipt(doc_id)?,
                    s.partial(doc_id)?,
                    unknown,
                ))
            })
            .await?
    };
    if let Some(doc) = existing {
        if doc.digest == digest
            && let Some(receipt) = accepted
        {
            info!("already accepted; answering with the original receipt");
            return Ok(Message::Accepted { receipt });
        }
        warn!(sender = %ident.id, "security: document id reused for different content; refused");
        return Err(Refusal::new(
            ErrorCode::Conflict,
            "this document id was already used for a different document",
        ));
    }
    if !unknown.is_empty() {
        let names: Vec<String> = unknown.iter().map(ToString::to_string).collect();
        return Err(Refusal::new(
            ErrorCode::UnknownRecipient,
            format!("unknown recipient: {}", names.join(", ")),
        ));
    }

    let spool = &shared.spool;
    let part_path = spool.partial(doc_id);
    let offset = match &partial {
        Some(p) if p.digest == digest => p.durable,
        _ => 0,
    };
    // All file work for this upload happens on one blocking thread: the
    // async side only moves chunks from QUIC to it (one hand-off per chunk
    // instead of one per write, and hashing off the async threads).
    let prepared = {
        let part_path = part_path.clone();
        tokio::task::spawn_blocking(move || open_partial(&part_path, offset))
            .await
            .map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))?
            .map_err(io_refusal)?
    };
    let (file, hasher, offset) = prepared;
    if offset > 0 {
        info!("resuming upload at byte {offset} of {content_len}");
        Stats::add(&shared.stats.uploads_resumed, 1);
        Stats::add(&shared.stats.bytes_not_resent, offset);
    }
    if write_message(send, &Message::UploadFrom { offset })
        .await
        .is_err()
    {
        return Err(Refusal::new(ErrorCode::Internal, "connection lost"));
    }

    let store = shared.store.clone();
    let partial_digest = digest.clone();
    let (end, received, written) =
        receive_to_blocking(recv, offset, content_len, READ_TIMEOUT, move |batches| {
            write_upload(file, hasher, offset, content_len, batches, |durable| {
                store.set_partial(
                    doc_id,
                    &PartialUpload {
                        digest: partial_digest.clone(),
                        durable,
                    },
                )
            })
        })
        .await;
    Stats::add(&shared.stats.bytes_received, received - offset);
    match end {
        StreamEnd::Finished | StreamEnd::WriterGone => {}
        StreamEnd::Stalled => {
            return Err(Refusal::new(ErrorCode::BadRequest, "the upload stalled"));
        }
        StreamEnd::Broken(e) => {
            info!("upload interrupted at byte {received}: {e}");
            return Err(Refusal::new(ErrorCode::Internal, "upload interrupted"));
        }
        StreamEnd::TooLong => {
            return Err(Refusal::new(
                ErrorCode::ContentMismatch,
                "more content than the header promises",
            ));
        }
    }
    let (file, hasher, written) = written.map_err(|e| match e {
        UploadWriteError::Io(e) => io_refusal(e),
        UploadWriteError::Store(e) => Refusal::from(e),
    })?;
    if written != content_len {
        return Err(Refusal::new(
            ErrorCode::ContentMismatch,
            format!("the upload ended at byte {written} of {content_len}"),
        ));
    }
    if hasher.finish().as_ref() != sealed.header.content_sha256 {
        let _ = tokio::fs::remove_file(&part_path).await;
        return Err(Refusal::new(
            ErrorCode::ContentMismatch,
            "the content does not match the SHA-256 in the signed header",
        ));
    }
    gongwen_common::failpoint::hit("hub-upload-written");
    tokio::task::spawn_blocking(move || file.sync_all())
        .await
        .map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))?
        .map_err(io_refusal)?;
    let final_path = spool.content(doc_id);
    tokio::fs::rename(&part_path, &final_path)
        .await
        .map_err(io_refusal)?;
    // (The spool folder is synced with the batch this accept commits in.)
    gongwen_common::failpoint::hit("hub-upload-synced");

    let now = shared.clock.now_ms();
    let accepted = Receipt {
        doc_id,
        kind: ReceiptKind::Accepted,
        recipient: shared.hub_id.clone(),
        issuer: shared.hub_id.clone(),
        doc_digest: sealed.digest(),
        time_ms: now,
        by: String::new(),
        reason: String::new(),
    };
    let receipt = accepted
        .sign(&shared.signer)
        .map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))?
        .encode();
    let deadline =
        crate::escalation::deadline_ms(meta.deadline, meta.urgency, &shared.config.deadlines, now);
    let first_due = crate::escalation::next_due_ms(deadline, 0, &shared.config.escalation);
    let record = DocRecord {
        doc_id,
        sender: meta.sender.clone(),
        to: meta.to.clone(),
        cc: meta.cc.clone(),
        title: meta.title.clone(),
        doc_number: meta.doc_number.clone(),
        doc_type: meta.doc_type.clone(),
        urgency: meta.urgency,
        deadline: meta.deadline.map(|d| d.resolve(now)),
        created_ms: meta.created_ms,
        accepted_ms: now,
        digest,
        content_len,
        files: meta
            .files
            .iter()
            .map(|f| FileRow {
                name: f.name.clone(),
                kind: match f.kind {
                    FileKind::Main => "main".into(),
                    FileKind::Attachment => "attachment".into(),
                },
                size: f.size,
            })
            .collect(),
        content_removed: false,
    };
    shared
        .committer
        .accept(crate::commit::Accept {
            record,
            header: header_bytes,
            receipt_bytes: receipt.clone(),
            receipt: accepted,
            deadline_ms: deadline,
            first_due_ms: first_due,
            at_ms: now,
        })
        .await?;
    gongwen_common::failpoint::hit("hub-accepted-committed");
    info!(recipients = recipients.len(), "accepted");
    Stats::add(&shared.stats.documents_accepted, 1);
    shared.escalation.notify_one();
    let registry = shared.registry();
    for r in &recipients {
        if let Some(w) = registry.wake(r) {
            w.deliveries.notify_one();
        }
    }
    Ok(Message::Accepted { receipt })
}

/// A receipt the agent sends on its own (e.g. a delivery receipt it could
/// not hand over during the delivery).
async fn submit_receipt(
    bytes: &[u8],
    ident: &CertIdentity,
    shared: &Shared,
) -> Result<Message, Refusal> {
    record_receipt(bytes, &ident.id, None, shared).await?;
    Ok(Message::Ok)
}

/// Verify a recipient's receipt and record it; wake the sender.
async fn record_receipt(
    bytes: &[u8],
    from: &NodeId,
    expect_doc: Option<DocId>,
    shared: &Shared,
) -> Result<ReceiptKind, Refusal> {
    let (receipt, _) = Receipt::verify(bytes, Some(&shared.checker()), shared.clock.now())
        .map_err(|e| {
            let code = if e.is_transient() {
                ErrorCode::NotNow
            } else {
                ErrorCode::BadSignature
            };
            Refusal::new(code, e.to_string())
        })?;
    if &receipt.issuer != from {
        warn!(issuer = %receipt.issuer, "security: a node sent a receipt issued by another");
        return Err(Refusal::new(
            ErrorCode::NotTheSender,
            "a node may submit only its own receipts",
        ));
    }
    if expect_doc.is_some_and(|d| d != receipt.doc_id) {
        return Err(Refusal::new(
            ErrorCode::Malformed,
            "the receipt is for another document",
        ));
    }
    let doc_id = receipt.doc_id;
    let doc = shared.store.run(move |s| s.doc(doc_id)).await?;
    let Some(doc) = doc else {
        return Err(Refusal::new(
            ErrorCode::UnknownDocument,
            format!("the hub never accepted document {doc_id}"),
        ));
    };
    if serial_hex(&receipt.doc_digest) != doc.digest {
        return Err(Refusal::new(
            ErrorCode::ContentMismatch,
            "the receipt cites a different version of the document",
        ));
    }
    if !doc.recipients().contains(&receipt.recipient) {
        return Err(Refusal::new(
            ErrorCode::BadRequest,
            "the issuer is not a recipient of this document",
        ));
    }
    match receipt.kind {
        ReceiptKind::Delivered | ReceiptKind::Quarantined => {}
        ReceiptKind::Acknowledged | ReceiptKind::Rejected => {
            return record_answer(receipt, bytes, shared).await;
        }
        ReceiptKind::Accepted => {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                "an accepted receipt comes from the hub, not from a unit",
            ));
        }
    }
    let kind = receipt.kind;
    let bytes = bytes.to_vec();
    let recorded = shared
        .committer
        .delivery(crate::commit::Delivery {
            receipt_bytes: bytes,
            receipt: receipt.clone(),
            at_ms: shared.clock.now_ms(),
        })
        .await?;
    gongwen_common::failpoint::hit("hub-receipt-recorded");
    if recorded.new {
        if kind == ReceiptKind::Quarantined {
            warn!(doc = %doc_id, recipient = %from, "recipient quarantined the document");
        }
        if let Some(w) = shared.registry().wake(&recorded.sender) {
            w.receipts.notify_one();
        }
    }
    if recorded.content_done {
        // Every recipient has it: the ciphertext has done its job. (A crash
        // before this removal leaves a file the next start sweeps away.)
        // After the wake: unlinking a big file takes a while (0.2 s for a
        // GiB here), and the sender need not wait for it.
        let _ = tokio::fs::remove_file(shared.spool.content(doc_id)).await;
    }
    Ok(kind)
}

/// A clerk's signed answer: signed for (签收) or returned (退回).
async fn record_answer(
    receipt: Receipt,
    bytes: &[u8],
    shared: &Shared,
) -> Result<ReceiptKind, Refusal> {
    let kind = receipt.kind;
    let detail = if kind == ReceiptKind::Acknowledged {
        receipt.by.clone()
    } else {
        receipt.reason.clone()
    };
    if detail.trim().is_empty() {
        return Err(Refusal::new(
            ErrorCode::Malformed,
            if kind == ReceiptKind::Acknowledged {
                "a signed-for receipt must name the person who signed"
            } else {
                "a returned receipt must give the reason"
            },
        ));
    }
    let (doc_id, bytes) = (receipt.doc_id, bytes.to_vec());
    let now = shared.clock.now_ms();
    let (audit, r) = (shared.audit.clone(), receipt.clone());
    let outcome = shared
        .store
        .run(move |s| {
            let log = || audit.append(&bytes, &r, now);
            s.record_answer(&r, &bytes, now, &log)
        })
        .await?;
    match outcome {
        Ok((sender, new)) => {
            if new {
                info!(doc = %doc_id, recipient = %receipt.recipient, "{}", kind.as_str());
                if let Some(w) = shared.registry().wake(&sender) {
                    w.receipts.notify_one();
                }
            }
            Ok(kind)
        }
        Err(e) => Err(Refusal::new(ErrorCode::BadRequest, e.to_string())),
    }
}

/// The sender withdraws a document (撤回).
async fn recall(
    doc_id: DocId,
    reason: String,
    ident: &CertIdentity,
    shared: &Shared,
) -> Result<Message, Refusal> {
    let doc = shared.store.run(move |s| s.doc(doc_id)).await?;
    let Some(doc) = doc else {
        return Err(Refusal::new(
            ErrorCode::UnknownDocument,
            format!("the hub has no document {doc_id}"),
        ));
    };
    if doc.sender != ident.id {
        warn!(doc = %doc_id, "security: a unit tried to recall a document it did not send");
        return Err(Refusal::new(
            ErrorCode::NotTheSender,
            "only the sender may recall a document",
        ));
    }
    let now = shared.clock.now_ms();
    let at = crate::supervision::time_ms(now).unwrap_or_default();
    let notice = move |r: &NodeId| {
        gongwen_common::notice::Notice {
            kind: gongwen_common::notice::NoticeKind::Recall,
            doc_id,
            sender: doc.sender.clone(),
            title: doc.title.clone(),
            doc_number: doc.doc_number.clone(),
            recipient: r.clone(),
            deadline: None,
            late_seconds: 0,
            urge_count: 0,
            escalation_level: 0,
            at: at.clone(),
            reason: reason.clone(),
        }
        .to_bytes()
    };
    let (withdrawn, notified, answered) = shared
        .store
        .run(move |s| s.recall(doc_id, &notice, now))
        .await?;
    info!(doc = %doc_id, "recalled: {} withdrawn at the hub, {} notified, {} had already answered",
        withdrawn.len(), notified.len(), answered.len());
    {
        let registry = shared.registry();
        for r in &notified {
            if let Some(w) = registry.wake(r) {
                w.receipts.notify_one();
            }
        }
    }
    let body = serde_json::json!({
        "doc_id": doc_id,
        "withdrawn_at_hub": withdrawn,
        "recalled_from": notified,
        "already_answered": answered,
    });
    Ok(Message::Json {
        body: body.to_string().into_bytes(),
    })
}

/// A supervisor's query through its agent.
async fn supervise(
    query: &[u8],
    ident: &CertIdentity,
    shared: &Shared,
) -> Result<Message, Refusal> {
    let q: crate::supervision::Query = serde_json::from_slice(query).map_err(|e| {
        Refusal::new(
            ErrorCode::Malformed,
            format!("not a supervision query: {e}"),
        )
    })?;
    // Any unit may read the directory and follow its own documents
    // (签收情况); everything else is for supervisor units.
    let own_document = match &q {
        crate::supervision::Query::Directory => true,
        crate::supervision::Query::Status { doc } => {
            let doc = *doc;
            shared
                .store
                .run(move |s| s.doc(doc))
                .await?
                .is_some_and(|d| d.sender == ident.id)
        }
        _ => false,
    };
    if ident.role != gongwen_common::Role::Supervisor && !own_document {
        warn!("security: a {} unit asked for supervision data", ident.role);
        return Err(Refusal::new(
            ErrorCode::BadRequest,
            "only supervisor units may query supervision data",
        ));
    }
    let v = crate::control::supervise(shared, &q)
        .await
        .map_err(|e| Refusal::new(ErrorCode::BadRequest, e))?;
    Ok(Message::Json {
        body: v.to_string().into_bytes(),
    })
}

/// The sender urges the units that have not signed for its document yet.
async fn urge(
    doc_id: DocId,
    units: Vec<NodeId>,
    ident: &CertIdentity,
    shared: &Shared,
) -> Result<Message, Refusal> {
    let doc = shared.store.run(move |s| s.doc(doc_id)).await?;
    match doc {
        Some(d) if d.sender == ident.id => {}
        Some(_) => {
            warn!(doc = %doc_id, "security: a unit tried to urge another unit's document");
            return Err(Refusal::new(
                ErrorCode::NotTheSender,
                "only the sender of a document may urge its recipients",
            ));
        }
        None => {
            return Err(Refusal::new(
                ErrorCode::UnknownDocument,
                format!("the hub never accepted document {doc_id}"),
            ));
        }
    }
    let now = shared.clock.now_ms();
    let urged = shared
        .store
        .run(move |s| {
            s.urge_now(doc_id, &units, now, |doc, r, rec| {
                crate::scheduler::urge_notice(doc, r, rec, now).to_bytes()
            })
        })
        .await?;
    {
        let registry = shared.registry();
        for r in &urged {
            if let Some(w) = registry.wake(r) {
                w.receipts.notify_one();
            }
        }
    }
    info!(doc = %doc_id, units = urged.len(), "urged by the sender");
    Ok(Message::Json {
        body: serde_json::json!({ "doc_id": doc_id, "urged": urged })
            .to_string()
            .into_bytes(),
    })
}

/// Wait for a wake-up or the periodic rescan.
async fn wait(notify: &tokio::sync::Notify) {
    let _ = tokio::time::timeout(RESCAN, notify.notified()).await;
}

/// Deliveries to one unit in flight at once: one at a time, each small
/// document waited for the unit's fsyncs and a round trip before the next
/// could start.
const DELIVERIES_IN_FLIGHT: usize = 32;

async fn deliverer(conn: quinn::Connection, node: NodeId, shared: Arc<Shared>, wake: Arc<Wake>) {
    let mut refusals = Refusals::default();
    loop {
        let pending = {
            let node = node.clone();
            match shared.store.run(move |s| s.pending_for(&node, 256)).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!("store: {e}");
                    Vec::new()
                }
            }
        };
        if pending.is_empty() {
            wait(&wake.deliveries).await;
            continue;
        }
        // The whole batch finishes before the next query, so a document
        // still in flight is never offered twice.
        let mut pending = pending.into_iter();
        let mut in_flight = tokio::task::JoinSet::new();
        let (mut interrupted, mut refused, mut delivered) = (false, false, false);
        let mut refused_for_now = false;
        loop {
            while !interrupted && in_flight.len() < DELIVERIES_IN_FLIGHT {
                let Some(doc_id) = pending.next() else { break };
                let (conn, node, shared) = (conn.clone(), node.clone(), shared.clone());
                let span = info_span!("deliver", doc = %doc_id);
                in_flight.spawn(
                    async move { (doc_id, deliver_one(&conn, &node, doc_id, &shared).await) }
                        .instrument(span),
                );
            }
            let Some(done) = in_flight.join_next().await else {
                break;
            };
            let Ok((doc_id, result)) = done else {
                interrupted = true;
                continue;
            };
            match result {
                Ok(()) => delivered = true,
                Err(DeliverError::Connection(e)) => {
                    if conn.close_reason().is_some() {
                        debug!("delivery stopped: {e}");
                        return;
                    }
                    // A slow or confused answer is not a lost connection:
                    // try again shortly.
                    warn!(doc = %doc_id, "delivery interrupted ({e}); retrying");
                    interrupted = true;
                }
                Err(DeliverError::Refused(r)) => {
                    warn!(doc = %doc_id, "delivery refused: {}", r.message);
                    refused = true;
                    refused_for_now |= r.code.is_retryable();
                }
            }
        }
        if delivered {
            refusals.clear();
        }
        if interrupted {
            tokio::time::sleep(RETRY_PAUSE).await;
        } else if refused && !delivered {
            // Not in a loop: a unit that cannot take a document now (its
            // disk is full) is asked again after a pause that doubles up to
            // the rescan interval, so it gets it soon after it can; one
            // that refused it for good, on the next wake-up or rescan.
            let pause = if refused_for_now {
                refusals.next_pause()
            } else {
                RESCAN
            };
            let _ = tokio::time::timeout(pause, wake.deliveries.notified()).await;
        }
    }
}

/// The pauses between asking a unit again that refused for now: 1 s,
/// doubling, at most [`RESCAN`]; back to 1 s once something is delivered.
#[derive(Debug, Default)]
struct Refusals {
    in_a_row: u32,
}

impl Refusals {
    fn next_pause(&mut self) -> Duration {
        let pause = RETRY_PAUSE.saturating_mul(1 << self.in_a_row.min(5));
        self.in_a_row = self.in_a_row.saturating_add(1);
        pause.min(RESCAN)
    }

    fn clear(&mut self) {
        self.in_a_row = 0;
    }
}

#[derive(Debug)]
enum DeliverError {
    Connection(String),
    Refused(Refusal),
}

impl From<StreamError> for DeliverError {
    fn from(e: StreamError) -> Self {
        DeliverError::Connection(e.to_string())
    }
}

impl From<Refusal> for DeliverError {
    fn from(r: Refusal) -> Self {
        DeliverError::Refused(r)
    }
}

async fn deliver_one(
    conn: &quinn::Connection,
    node: &NodeId,
    doc_id: DocId,
    shared: &Shared,
) -> Result<(), DeliverError> {
    let (header, doc) = shared
        .store
        .run(move |s| Ok((s.header(doc_id)?, s.doc(doc_id)?)))
        .await
        .map_err(Refusal::from)?;
    let deadline_ms = {
        let node = node.clone();
        shared
            .store
            .run(move |s| {
                s.deliveries(doc_id)
                    .map(|d| d.into_iter().find(|(r, _)| *r == node))
            })
            .await
            .map_err(Refusal::from)?
            .map(|(_, d)| d.deadline_ms)
            .unwrap_or(0)
    };
    let (Some(header), Some(doc)) = (header, doc) else {
        return Err(Refusal::new(
            ErrorCode::Internal,
            "pending document missing from the store",
        )
        .into());
    };
    // Taken before the recipient is asked, so it never waits on a quiet
    // stream (its read timeout would cut the delivery).
    let mut slot = if doc.content_len > crate::server::SMALL_CONTENT {
        shared.delivery_slots.acquire().await.ok()
    } else {
        None
    };
    let (mut send, mut recv) = conn
        .open_bi()
        .await
        .map_err(|e| DeliverError::Connection(e.to_string()))?;
    write_message(
        &mut send,
        &Message::DeliverBegin {
            doc_id,
            header,
            content_len: doc.content_len,
            deadline_ms,
        },
    )
    .await?;
    // The unit may first hash what it kept of an earlier attempt.
    let receipt = match read_message(&mut recv, DOCUMENT_WORK_TIMEOUT).await? {
        Message::Delivered { receipt } => receipt,
        Message::DeliverFrom { offset } => {
            if offset > 0 {
                Stats::add(&shared.stats.deliveries_resumed, 1);
                Stats::add(&shared.stats.bytes_not_redelivered, offset);
            }
            if let Err(e) =
                stream_content(&mut send, shared, doc_id, offset.min(doc.content_len)).await
            {
                // A unit that stops reading mid-document (its disk is full)
                // says why; keep that reason for the log and the retry.
                if let Ok(Message::Error { message, .. }) =
                    read_message(&mut recv, Duration::from_secs(2)).await
                {
                    return Err(DeliverError::Connection(format!(
                        "the unit cannot take it now: {}",
                        Clipped(&message)
                    )));
                }
                return Err(e);
            }
            // The next recipient may start while this one decrypts.
            drop(slot.take());
            match read_message(&mut recv, DOCUMENT_WORK_TIMEOUT).await? {
                Message::Delivered { receipt } => receipt,
                Message::Error { code, message } => {
                    return Err(Refusal::from_peer(code, &message).into());
                }
                other => {
                    return Err(Refusal::new(
                        ErrorCode::BadRequest,
                        format!("unexpected {}", other.describe()),
                    )
                    .into());
                }
            }
        }
        Message::Error { code, message } => {
            return Err(Refusal::from_peer(code, &message).into());
        }
        other => {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                format!("unexpected {}", other.describe()),
            )
            .into());
        }
    };
    let kind = record_receipt(&receipt, node, Some(doc_id), shared).await?;
    Stats::add(&shared.stats.deliveries, 1);
    info!("{}", kind.as_str());
    Ok(())
}

async fn stream_content(
    send: &mut quinn::SendStream,
    shared: &Shared,
    doc_id: DocId,
    offset: u64,
) -> Result<(), DeliverError> {
    let mut chunks = read_file_chunks(shared.spool.content(doc_id), offset);
    let mut sent = 0usize;
    while let Some(chunk) = chunks.recv().await {
        sent += 1;
        if sent == 3 {
            gongwen_common::failpoint::hit("hub-deliver-mid-content");
        }
        send.write_chunk(chunk.map_err(io_refusal)?)
            .await
            .map_err(|e| DeliverError::Connection(e.to_string()))?;
    }
    send.finish()
        .map_err(|e| DeliverError::Connection(e.to_string()))?;
    Ok(())
}

async fn forwarder(conn: quinn::Connection, node: NodeId, shared: Arc<Shared>, wake: Arc<Wake>) {
    loop {
        let queue = {
            let node = node.clone();
            shared
                .store
                .run(move |s| s.forward_queue(&node, 256))
                .await
                .unwrap_or_default()
        };
        if queue.is_empty() {
            wait(&wake.receipts).await;
            continue;
        }
        // Several pushes in flight, and one commit for all that were taken:
        // a push repeated after a crash is harmless (the unit records each
        // receipt once), a receipt forgotten is not.
        // Notices (urge, supervise, recall) go one at a time, in order.
        let mut queue = queue.into_iter().peekable();
        let mut in_flight = tokio::task::JoinSet::new();
        let (mut taken, mut failed) = (Vec::new(), None);
        loop {
            while failed.is_none() && in_flight.len() < PUSHES_IN_FLIGHT {
                let notice = matches!(queue.peek(), Some((_, crate::store::Push::Notice(_))));
                if notice && !in_flight.is_empty() {
                    break;
                }
                let Some((seq, push)) = queue.next() else {
                    break;
                };
                let conn = conn.clone();
                in_flight.spawn(async move { (seq, push_one(&conn, push).await) });
                if notice {
                    break;
                }
            }
            let Some(done) = in_flight.join_next().await else {
                break;
            };
            match done {
                Ok((seq, Ok(()))) => taken.push(seq),
                Ok((_, Err(e))) => {
                    failed.get_or_insert(e);
                }
                Err(e) => {
                    failed.get_or_insert(e.to_string());
                }
            }
        }
        if !taken.is_empty() {
            let node = node.clone();
            if let Err(e) = shared.store.run(move |s| s.forwarded(&node, &taken)).await {
                tracing::error!("store: {e}");
            }
        }
        if let Some(e) = failed {
            if conn.close_reason().is_some() {
                debug!("receipt forwarding stopped: {e}");
                return;
            }
            // The agent was slow or answered with an error: the receipt
            // stays queued; try again shortly rather than never.
            warn!("receipt or notice not taken by {node} ({e}); retrying");
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }
}

/// Pushes to one unit in flight at once (see [`forwarder`]).
const PUSHES_IN_FLIGHT: usize = 32;

/// Push one receipt or notice and wait for the unit's `ok`.
async fn push_one(conn: &quinn::Connection, push: crate::store::Push) -> Result<(), String> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    let msg = match push {
        crate::store::Push::Receipt(receipt) => Message::ReceiptNotice { receipt },
        crate::store::Push::Notice(body) => Message::Notice { body },
    };
    write_message(&mut send, &msg)
        .await
        .map_err(|e| e.to_string())?;
    let _ = send.finish();
    match read_message(&mut recv, READ_TIMEOUT).await {
        Ok(Message::Ok) => Ok(()),
        Ok(other) => Err(format!("unexpected answer: {}", other.describe())),
        Err(e) => Err(e.to_string()),
    }
}

async fn crl_pusher(conn: quinn::Connection, shared: Arc<Shared>, wake: Arc<Wake>) {
    loop {
        let crl = shared.crl().der.to_vec();
        let pushed = async {
            let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
            write_message(&mut send, &Message::CrlUpdate { crl })
                .await
                .map_err(|e| e.to_string())?;
            let _ = send.finish();
            read_message(&mut recv, READ_TIMEOUT)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        .await;
        if let Err(e) = pushed {
            if conn.close_reason().is_some() {
                debug!("CRL push stopped: {e}");
                return;
            }
            warn!("CRL not taken ({e}); retrying");
            tokio::time::sleep(RETRY_PAUSE).await;
            continue;
        }
        wake.crl.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_that_refuses_for_now_is_asked_again_sooner_than_a_rescan_then_less_often() {
        let mut r = Refusals::default();
        let pauses: Vec<u64> = (0..8).map(|_| r.next_pause().as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 30, 30, 30]);
        r.clear();
        assert_eq!(r.next_pause(), RETRY_PAUSE);
    }
}
