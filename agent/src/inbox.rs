//! Receiving a document: download (resuming a broken transfer), verify,
//! decrypt, write atomically to `inbox/<sender>/<doc_id>/`, and answer with
//! a signed `delivered` receipt. Anything that fails a check goes to
//! `quarantine/<doc_id>/` with `reason.txt`, never to the inbox, and the
//! answer is a signed `quarantined` receipt naming the reason.
//!
//! A document already received is answered with the receipt given the
//! first time, so a redelivery never makes a second inbox copy.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gongwen_common::envelope::{
    ContentKey, ContentOpener, Deadline, EnvelopeError, FileEntry, SealedHeader, TAG_LEN,
};
use gongwen_common::fsutil::{sync_dir, write_atomic};
use gongwen_common::receipt::{Receipt, ReceiptKind};
use gongwen_common::signed::sha256;
use gongwen_common::stream::{READ_TIMEOUT, write_message};
use gongwen_common::transfer::{Batches, StreamEnd, receive_to_blocking};
use gongwen_common::wire::{ErrorCode, Message};
use gongwen_common::{DocId, NodeId};
use tracing::{info, warn};

use crate::context::AgentContext;
use crate::metadata::MetadataJson;
use crate::store::{ReceivedRecord, ReceivedState};

const IO_CHUNK: usize = 256 * 1024;

fn part_path(ctx: &AgentContext, doc_id: DocId) -> PathBuf {
    ctx.folders.incoming.join(format!("{doc_id}.part"))
}

fn offset_path(ctx: &AgentContext, doc_id: DocId) -> PathBuf {
    ctx.folders.incoming.join(format!("{doc_id}.offset"))
}

async fn error(send: &mut quinn::SendStream, code: ErrorCode, message: String) {
    let _ = write_message(send, &Message::Error { code, message }).await;
    let _ = send.finish();
}

/// Handle one `DeliverBegin` from the hub.
pub async fn receive(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    ctx: Arc<AgentContext>,
    doc_id: DocId,
    header: Vec<u8>,
    content_len: u64,
    deadline_ms: i64,
) {
    let already = ctx.store.run(move |s| s.received(doc_id)).await;
    match already {
        Ok(Some((_, receipt))) => {
            info!(doc = %doc_id, "already received; answering with the same receipt");
            let _ = write_message(&mut send, &Message::Delivered { receipt }).await;
            let _ = send.finish();
            return;
        }
        Ok(None) => {}
        Err(e) => {
            error(&mut send, ErrorCode::Storage, e.to_string()).await;
            return;
        }
    }
    if content_len
        > ctx
            .config
            .max_document_size
            .saturating_add(ctx.config.max_document_size / 64 + 1024)
    {
        // Never bigger than what a document of the allowed size encrypts to.
        error(
            &mut send,
            ErrorCode::TooLarge,
            format!("{content_len} bytes is more than this unit takes"),
        )
        .await;
        return;
    }
    // Resume: keep what was made durable, cut anything after it.
    let (part, offset_file) = (part_path(&ctx, doc_id), offset_path(&ctx, doc_id));
    let opened = {
        let offset_file = offset_file.clone();
        tokio::task::spawn_blocking(move || open_download(&part, &offset_file, content_len)).await
    };
    let (file, offset) = match opened {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => {
            error(
                &mut send,
                ErrorCode::Storage,
                format!("cannot write the download: {e}"),
            )
            .await;
            return;
        }
        Err(e) => {
            error(&mut send, ErrorCode::Internal, e.to_string()).await;
            return;
        }
    };
    if offset > 0 {
        info!(doc = %doc_id, "resuming download at byte {offset} of {content_len}");
    }
    if write_message(&mut send, &Message::DeliverFrom { offset })
        .await
        .is_err()
    {
        return;
    }
    let (end, received, written) = receive_to_blocking(
        &mut recv,
        offset,
        content_len,
        READ_TIMEOUT,
        move |batches| write_download(file, offset, content_len, batches, &offset_file),
    )
    .await;
    match end {
        StreamEnd::Finished => {}
        StreamEnd::TooLong => {
            error(
                &mut send,
                ErrorCode::ContentMismatch,
                "more content than announced".into(),
            )
            .await;
            return;
        }
        // Keep the partial file; the hub retries.
        StreamEnd::Stalled | StreamEnd::Broken(_) => return,
        StreamEnd::WriterGone => {}
    }
    if let Err(e) = written {
        warn!(doc = %doc_id, "cannot write the download: {e}");
        error(
            &mut send,
            ErrorCode::Storage,
            format!("this unit cannot store the document now: {e}"),
        )
        .await;
        return;
    }
    if received != content_len {
        return;
    }
    let ctx2 = ctx.clone();
    let deadline = (deadline_ms > 0).then(|| deadline_ms.div_euclid(1000));
    let outcome =
        tokio::task::spawn_blocking(move || accept(&ctx2, doc_id, &header, deadline)).await;
    match outcome {
        Ok(Ok(receipt)) => {
            let _ = write_message(&mut send, &Message::Delivered { receipt }).await;
            let _ = send.finish();
        }
        Ok(Err(e)) => {
            warn!(doc = %doc_id, "cannot store the document: {e}");
            error(
                &mut send,
                ErrorCode::Storage,
                format!("this unit cannot store the document now: {e}"),
            )
            .await;
        }
        Err(e) => error(&mut send, ErrorCode::Internal, e.to_string()).await,
    }
}

/// Open the download's partial file, keeping the bytes its offset file
/// says were made durable if they are all there (else starting over).
/// Returns the file positioned at the offset to resume from. Blocking.
fn open_download(
    part: &Path,
    offset_file: &Path,
    content_len: u64,
) -> std::io::Result<(std::fs::File, u64)> {
    let durable = std::fs::read_to_string(offset_file)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0)
        .min(content_len);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(part)?;
    let offset = if file.metadata()?.len() < durable {
        0
    } else {
        durable
    };
    file.set_len(offset)?;
    file.seek(std::io::SeekFrom::Start(offset))?;
    Ok((file, offset))
}

/// Write a download's batches as they come and make it durable every
/// checkpoint interval, recording the durable offset beside it. Blocking.
fn write_download(
    file: std::fs::File,
    offset: u64,
    content_len: u64,
    mut batches: Batches,
    offset_file: &Path,
) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::with_capacity(IO_CHUNK, file);
    let (mut written, mut durable) = (offset, offset);
    let every = gongwen_common::stream::checkpoint_interval(content_len);
    while let Some(batch) = batches.next_blocking() {
        for chunk in &batch {
            out.write_all(chunk)?;
            written += chunk.len() as u64;
        }
        if written - durable >= every && written < content_len {
            out.flush()?;
            out.get_ref().sync_data()?;
            durable = written;
            write_atomic(offset_file, durable.to_string().as_bytes(), 0o600)?;
        }
    }
    // No sync at the end: the download is read back at once and what must
    // survive a crash is the decrypted inbox copy, which is synced before
    // the receipt goes out. Lost unsynced bytes only mean a resume from the
    // last checkpoint.
    out.flush()?;
    Ok(())
}

/// Why a downloaded document cannot be filed (not a verification failure:
/// those quarantine it).
#[derive(Debug, thiserror::Error)]
enum LocalError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    #[error("signing the receipt failed: {0}")]
    Sign(#[from] gongwen_common::pki::PkiError),
}

/// Verify and file a complete download; returns our signed receipt.
/// `deadline`: the hub's acknowledgment deadline for this unit (Unix s).
fn accept(
    ctx: &AgentContext,
    doc_id: DocId,
    header: &[u8],
    deadline: Option<i64>,
) -> Result<Vec<u8>, LocalError> {
    match verify_and_write(ctx, doc_id, header, deadline) {
        Ok((sealed, dir)) => {
            gongwen_common::failpoint::hit("agent-inbox-written");
            let meta = sealed.meta();
            let receipt = sign_receipt(ctx, doc_id, sealed.digest(), ReceiptKind::Delivered, "")?;
            let rec = ReceivedRecord {
                doc_id,
                sender: meta.sender.clone(),
                title: meta.title.clone(),
                doc_number: meta.doc_number.clone(),
                doc_type: meta.doc_type.clone(),
                urgency: meta.urgency,
                deadline,
                received_ms: ctx.now_ms(),
                state: ReceivedState::Delivered,
                reason: None,
                digest: gongwen_common::pki::serial_hex(&sealed.digest()),
                urge_count: 0,
                answer: None,
                answered_ms: None,
                recall_reason: None,
            };
            ctx.store.record_received(&rec, &receipt, header)?;
            clean_incoming(ctx, doc_id);
            info!(doc = %doc_id, from = %meta.sender, "delivered to {}", dir.display());
            Ok(receipt)
        }
        Err(Verdict::Local(e)) => Err(e),
        Err(Verdict::Quarantine(why)) => quarantine(ctx, doc_id, header, &why),
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
        Verdict::Quarantine(e)
    }
}

fn verify_and_write(
    ctx: &AgentContext,
    doc_id: DocId,
    header: &[u8],
    deadline: Option<i64>,
) -> Result<(SealedHeader, PathBuf), Verdict> {
    let sealed = SealedHeader::parse(header)?;
    let h = &sealed.header;
    if h.meta.doc_id != doc_id {
        return Err(
            EnvelopeError::HeaderMalformed(gongwen_common::codec::CodecError::BadCode {
                what: "document id",
                code: 0,
            })
            .into(),
        );
    }
    sealed.verify(Some(&ctx.checker()), ctx.clock.now())?;
    let key = ContentKey::unwrap(h, ctx.node_id(), &ctx.enc_key)?;
    let mut opener = ContentOpener::new(&key, h)?;

    let sender_dir = ctx.folders.inbox.join(h.meta.sender.as_str());
    let dest = sender_dir.join(doc_id.to_string());
    // Assembled under state/ so the inbox only ever shows whole documents.
    let tmp = ctx.folders.incoming.join(format!("{doc_id}.tmp"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;

    let mut content = std::fs::File::open(part_path(ctx, doc_id))?;
    let len = content.metadata()?.len();
    if len != h.content_len {
        return Err(EnvelopeError::ContentLength {
            expected: h.content_len,
            got: len,
        }
        .into());
    }
    content.rewind()?;
    let mut content_hash = ring::digest::Context::new(&ring::digest::SHA256);
    let mut splitter = Splitter::new(&tmp, &h.meta.files)?;
    let mut chunk = vec![0u8; IO_CHUNK + TAG_LEN];
    while !opener.is_finished() {
        let n = opener.next_chunk_len();
        let buf = &mut chunk[..n];
        content.read_exact(buf)?;
        content_hash.update(buf);
        let plain_len = opener.open_chunk(buf)?;
        splitter.write(&buf[..plain_len])?;
    }
    splitter.finish()?;
    if content_hash.finish().as_ref() != h.content_sha256 {
        return Err(EnvelopeError::ContentDigest.into());
    }
    let meta_json = serde_json::to_vec_pretty(&MetadataJson::from_sealed(&sealed, deadline))
        .map_err(|e| Verdict::Local(LocalError::Io(std::io::Error::other(e))))?;
    // Also makes the folder's other entries durable (it syncs `tmp`).
    write_atomic(&tmp.join("metadata.json"), &meta_json, 0o644)?;
    let new_sender = !sender_dir.exists();
    std::fs::create_dir_all(&sender_dir)?;
    if dest.exists() {
        // Written before a crash that came before the store recorded it.
        std::fs::remove_dir_all(&tmp)?;
    } else {
        std::fs::rename(&tmp, &dest)?;
    }
    sync_dir(&sender_dir)?;
    if new_sender {
        sync_dir(&ctx.folders.inbox)?;
    }
    // incoming/ is not synced: a crash can at worst leave a stale, empty
    // assembly entry there, never a missing inbox copy.
    Ok((sealed, dest))
}

/// Writes decrypted content across the document's files, in order, and
/// checks each file's SHA-256 as it completes.
struct Splitter<'a> {
    dir: &'a Path,
    files: &'a [FileEntry],
    index: usize,
    left: u64,
    out: Option<std::io::BufWriter<std::fs::File>>,
    hash: ring::digest::Context,
}

impl<'a> Splitter<'a> {
    fn new(dir: &'a Path, files: &'a [FileEntry]) -> Result<Self, Verdict> {
        let mut s = Splitter {
            dir,
            files,
            index: 0,
            left: 0,
            out: None,
            hash: ring::digest::Context::new(&ring::digest::SHA256),
        };
        s.open_current()?;
        Ok(s)
    }

    /// Open the file at `index`, finishing empty files on the way.
    fn open_current(&mut self) -> Result<(), Verdict> {
        while let Some(f) = self.files.get(self.index) {
            let file = std::fs::File::create(self.dir.join(&f.name))?;
            self.out = Some(std::io::BufWriter::with_capacity(IO_CHUNK, file));
            self.hash = ring::digest::Context::new(&ring::digest::SHA256);
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
        let hash = std::mem::replace(
            &mut self.hash,
            ring::digest::Context::new(&ring::digest::SHA256),
        );
        if hash.finish().as_ref() != entry.sha256 {
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

    fn finish(self) -> Result<(), Verdict> {
        if self.index != self.files.len() {
            let name = self
                .files
                .get(self.index)
                .map(|f| f.name.clone())
                .unwrap_or_default();
            return Err(EnvelopeError::FileDigest(name).into());
        }
        Ok(())
    }
}

fn sign_receipt(
    ctx: &AgentContext,
    doc_id: DocId,
    digest: [u8; 32],
    kind: ReceiptKind,
    reason: &str,
) -> Result<Vec<u8>, LocalError> {
    let me: NodeId = ctx.node_id().clone();
    Ok(Receipt {
        doc_id,
        kind,
        recipient: me.clone(),
        issuer: me,
        doc_digest: digest,
        time_ms: ctx.now_ms(),
        by: String::new(),
        reason: reason.to_owned(),
    }
    .sign(&ctx.signer)?
    .encode())
}

/// File a document that failed verification under quarantine/, and sign a
/// `quarantined` receipt saying why.
fn quarantine(
    ctx: &AgentContext,
    doc_id: DocId,
    header: &[u8],
    why: &EnvelopeError,
) -> Result<Vec<u8>, LocalError> {
    warn!(doc = %doc_id, "quarantined: {why}");
    let dir = ctx.folders.quarantine.join(doc_id.to_string());
    std::fs::create_dir_all(&dir)?;
    let _ = std::fs::remove_dir_all(ctx.folders.incoming.join(format!("{doc_id}.tmp")));
    let parsed = SealedHeader::parse(header).ok();
    let sender = parsed
        .as_ref()
        .map(|p| p.meta().sender.to_string())
        .unwrap_or_else(|| "(unreadable)".into());
    let title = parsed
        .as_ref()
        .map(|p| p.meta().title.clone())
        .unwrap_or_default();
    let reason = format!(
        "This document was NOT delivered to the inbox: it failed verification.\n\n\
         Document: {doc_id}\nSender (as claimed): {sender}\nTitle (as claimed): {title}\n\n\
         Why: {why}\n\n\
         What to do: tell the sender and your administrator. Do not open the content;\n\
         header.bin and content.bin are kept here as evidence.\n"
    );
    write_atomic(&dir.join("reason.txt"), reason.as_bytes(), 0o644)?;
    write_atomic(&dir.join("header.bin"), header, 0o644)?;
    let part = part_path(ctx, doc_id);
    if part.exists() {
        std::fs::rename(&part, dir.join("content.bin"))?;
    }
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
        ctx,
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
            .unwrap_or_else(|| ctx.node_id().clone()),
        title,
        doc_number: meta.map(|m| m.doc_number.clone()).unwrap_or_default(),
        doc_type: meta.map(|m| m.doc_type.clone()).unwrap_or_default(),
        urgency: meta.map(|m| m.urgency).unwrap_or_default(),
        deadline: meta.and_then(|m| m.deadline).and_then(Deadline::at),
        received_ms: ctx.now_ms(),
        state: ReceivedState::Quarantined,
        reason: Some(why.to_string()),
        digest: gongwen_common::pki::serial_hex(&digest),
        urge_count: 0,
        answer: None,
        answered_ms: None,
        recall_reason: None,
    };
    ctx.store.record_received(&rec, &receipt, header)?;
    clean_incoming(ctx, doc_id);
    Ok(receipt)
}

fn clean_incoming(ctx: &AgentContext, doc_id: DocId) {
    let _ = std::fs::remove_file(part_path(ctx, doc_id));
    let _ = std::fs::remove_file(offset_path(ctx, doc_id));
}
