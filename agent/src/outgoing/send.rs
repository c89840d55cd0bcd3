//! Sending a claimed document: address it, seal it in the spool, upload it
//! (resuming where an earlier attempt stopped), and file it under `sent/`
//! once the hub's `accepted` receipt is durable here.

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gongwen_common::envelope::{
    CHUNK_LEN, ContentKey, ContentSealer, DocMeta, FileEntry, ReachKey, SealedHeader, TAG_LEN,
    seal_header,
};
use gongwen_common::fsutil::{sync_dir, write_atomic};
use gongwen_common::links::{Answers, Links};
use gongwen_common::pki::serial_hex;
use gongwen_common::receipt::{Receipt, ReceiptKind};
use gongwen_common::stream::{DOCUMENT_WORK_TIMEOUT, READ_TIMEOUT, read_message, write_message};
use gongwen_common::suite::Hasher;
use gongwen_common::transfer::read_file_chunks;
use gongwen_common::wire::{ErrorCode, Message};
use gongwen_common::{DocId, NodeId};
use tracing::{Instrument, debug, info, warn};

use crate::outgoing::draft::{self, Draft};
use crate::outgoing::outbox::{self, read_claim};
use crate::outgoing::spool;
use crate::rules::breaks::{BREAKS_BEFORE_GIVING_UP, Breaks};
use crate::rules::metadata::MetadataJson;
use crate::unit::batch::Batches;
use crate::unit::directory::Known;
use crate::unit::holds::{Hold, Holds};
use crate::unit::identity::Identity;
use crate::unit::outgoing::Outgoing;
use crate::unit::store::SentRecord;
use crate::unit::store::Store;

/// Why sending stopped.
#[derive(Debug)]
pub enum SendError {
    /// The connection broke: try again when it is back.
    Connection(String),
    /// Cannot succeed as it stands: the document goes to `failed/`.
    Permanent(String),
    /// May succeed later (hub disk full, local I/O trouble).
    Later(String),
    /// A dropped file changed after it was taken, before the hub had it
    /// (still being written, after all): the drop goes back to the outbox,
    /// to be taken again once it is finished.
    Changed(String),
    /// This document must wait (a recipient is offline and the hub already
    /// holds as many of ours for it as it takes); the others go on.
    Deferred(String),
}

/// What sending uses: who we are, the store, which documents are being
/// worked on, the outgoing queue, the address book (for deadlines), and
/// the accepted documents waiting to be filed under sent/.
#[derive(Debug, Clone)]
pub struct Sending {
    me: Arc<Identity>,
    store: Store,
    holds: Arc<Holds>,
    outgoing: Arc<Outgoing>,
    known: Arc<Known>,
    filing: Arc<Batches<FileJob>>,
    /// Documents whose sending broke off on a live connection, and how
    /// often in a row.
    breaks: Arc<std::sync::Mutex<Breaks<DocId>>>,
}

impl Sending {
    pub fn new(
        me: Arc<Identity>,
        store: Store,
        holds: Arc<Holds>,
        outgoing: Arc<Outgoing>,
        known: Arc<Known>,
    ) -> Sending {
        Sending {
            me,
            store,
            holds,
            outgoing,
            known,
            filing: Arc::default(),
            breaks: Arc::default(),
        }
    }

    /// Count one more break in sending `doc` on a live connection; whether
    /// to give up on it now ([`Breaks`]).
    fn broke_off(&self, doc: DocId) -> bool {
        let mut breaks = self.breaks.lock().unwrap_or_else(|p| p.into_inner());
        let give_up = breaks.broke_off(doc);
        if give_up {
            breaks.forget(&doc);
        }
        give_up
    }

    /// `doc` went through, or was refused in words: forget its breaks.
    fn went_through(&self, doc: DocId) {
        self.breaks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .forget(&doc);
    }
}

/// `name` changed after it was taken: `what` changed.
fn changed(name: &str, what: &str) -> SendError {
    SendError::Changed(format!("{name}: {what}"))
}

fn later(e: impl std::fmt::Display) -> SendError {
    SendError::Later(e.to_string())
}

/// Documents sent at once. One at a time, each document waited for its
/// own round trips and fsyncs (about 15 ms), which capped a unit at ~70
/// documents a second; with several in flight those waits overlap and the
/// disk and the hub see work in batches.
const SENDS_IN_FLIGHT: usize = 32;

/// Send every claimed document in the spool, oldest first, several at a
/// time. Stops launching new ones at the first error that is not about one
/// document alone and returns it once the ones in flight are done.
pub async fn send_pending(conn: &quinn::Connection, tx: &Sending) -> Result<(), SendError> {
    let Sending { me, store, .. } = tx;
    let outgoing = tx.outgoing.clone();
    let ids = tokio::task::spawn_blocking(move || outgoing.claim(outbox::claimed))
        .await
        .map_err(later)?
        .map_err(later)?;
    let mut ids = ids.into_iter();
    let mut in_flight = tokio::task::JoinSet::new();
    let mut stop: Option<SendError> = None;
    let mut deferred: Vec<String> = Vec::new();
    loop {
        while stop.is_none() && in_flight.len() < SENDS_IN_FLIGHT {
            let Some(doc_id) = ids.next() else { break };
            let (conn, tx) = (conn.clone(), tx.clone());
            let span = tracing::info_span!("send", doc = %doc_id);
            in_flight.spawn(
                async move { (doc_id, send_one(&conn, &tx, doc_id).await) }.instrument(span),
            );
        }
        let Some(done) = in_flight.join_next().await else {
            break;
        };
        let (doc_id, result) = done.map_err(later)?;
        let result = match result {
            Err(SendError::Connection(e))
                if conn.close_reason().is_none() && tx.broke_off(doc_id) =>
            {
                Err(SendError::Permanent(format!(
                    "发送 {BREAKS_BEFORE_GIVING_UP} 次都在中途中断，已停止重试（{e}）。"
                )))
            }
            Err(SendError::Connection(e)) => Err(SendError::Connection(e)),
            other => {
                tx.went_through(doc_id);
                other
            }
        };
        match result {
            Ok(()) => {}
            Err(SendError::Permanent(why)) => {
                let (me, store) = (me.clone(), store.clone());
                let failed =
                    tokio::task::spawn_blocking(move || give_up(&me, &store, doc_id, &why))
                        .await
                        .map_err(later)
                        .and_then(|r| r.map_err(later));
                if let Err(e) = failed {
                    stop.get_or_insert(e);
                }
            }
            Err(SendError::Changed(why)) => {
                let (me, store) = (me.clone(), store.clone());
                let back = tokio::task::spawn_blocking(move || {
                    let record = recorder(&me, &store, doc_id, &why);
                    outbox::put_back(me.folders(), doc_id, &why, record)
                })
                .await
                .map_err(later)
                .and_then(|r| r.map_err(later));
                if let Err(e) = back {
                    stop.get_or_insert(e);
                }
            }
            Err(SendError::Deferred(why)) => deferred.push(why),
            Err(SendError::Later(why)) => {
                warn!(
                    doc = %doc_id,
                    "will retry: {}",
                    gongwen_common::logsafe::Escaped(&why)
                );
                stop.get_or_insert(SendError::Later(why));
            }
            Err(e @ SendError::Connection(_)) => {
                // A lost connection outranks a retryable refusal.
                if !matches!(stop, Some(SendError::Connection(_))) {
                    stop = Some(e);
                }
            }
        }
    }
    if let Some(first) = deferred.first() {
        // One line for all of them: a flood would otherwise write one each.
        warn!(
            "{} document(s) wait to be sent, the others went on: {}",
            deferred.len(),
            gongwen_common::logsafe::Escaped(first)
        );
    }
    match stop {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Give up sending a claimed document: its files go to `failed/` (its
/// recipients kept in the sidecar), and the store remembers why, for
/// `status` and the console. Blocking.
fn give_up(me: &Identity, store: &Store, doc_id: DocId, why: &str) -> std::io::Result<()> {
    let record = recorder(me, store, doc_id, why);
    outbox::fail_claimed(me.folders(), doc_id, why, record).map(drop)
}

/// What keeps a failure in the store, for `status` and the console: where
/// the files went in failed/, whom it was for, and why.
fn recorder<'a>(
    me: &'a Identity,
    store: &'a Store,
    doc_id: DocId,
    why: &'a str,
) -> impl FnOnce(&Path, &[String], &[String]) -> std::io::Result<()> + 'a {
    move |dest, to, cc| {
        let rec = crate::unit::store::FailedRecord {
            doc_id,
            name: dest
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            to: to.to_vec(),
            cc: cc.to_vec(),
            reason: why.to_owned(),
            failed_ms: me.now_ms(),
        };
        store
            .record_failed(&rec)
            .map_err(|e| std::io::Error::other(e.to_string()))
    }
}

async fn send_one(conn: &quinn::Connection, tx: &Sending, doc_id: DocId) -> Result<(), SendError> {
    let Sending {
        me,
        store,
        holds,
        outgoing,
        ..
    } = tx;
    // One attempt at a time: a seal the last session started may still
    // be running on a blocking thread (see Holds::hold).
    let Some(hold) = holds.hold(doc_id, DOCUMENT_WORK_TIMEOUT).await else {
        return Err(SendError::Later(
            "an earlier attempt is still sealing this document".into(),
        ));
    };
    let hold = Arc::new(hold);
    let dir = spool::entry(me.folders(), doc_id);
    if !dir.exists() {
        return Ok(()); // filed by that earlier attempt
    }
    // An answer signs for its question as it is sealed: give the hub that
    // sign-for first, so the question is signed for before it is answered
    // in the hub's record too.
    if !spool::header(&dir).exists()
        && address_and_seal(conn, tx, doc_id, &dir, hold.clone()).await?
        && crate::incoming::clerk::submit_answers(conn, store).await
            == crate::incoming::clerk::Submitted::ConnectionLost
    {
        return Err(SendError::Connection(
            "the connection broke while giving the hub our answers".into(),
        ));
    }
    gongwen_common::failpoint::hit("agent-sealed");
    let receipt = upload(conn, &dir, doc_id, outgoing).await;
    outgoing.end_progress(doc_id);
    let receipt = receipt?;
    gongwen_common::failpoint::hit("agent-sent-accepted");
    file_accepted(tx, doc_id, receipt).await
}

async fn address_and_seal(
    conn: &quinn::Connection,
    tx: &Sending,
    doc_id: DocId,
    dir: &Path,
    hold: Arc<Hold>,
) -> Result<bool, SendError> {
    let me = &tx.me;
    let draft = read_draft(me, dir).await?;
    let addressed = address(conn, me, &draft).await?;
    if !addressed.left_out.is_empty() {
        warn!(
            doc = %doc_id,
            "sent without some recipients:\n{}",
            crate::rules::addressing::describe(&addressed.left_out)
        );
        let left = serde_json::to_vec_pretty(&addressed.left_out).map_err(later)?;
        let path = spool::left_out(dir);
        tokio::task::spawn_blocking(move || write_atomic(&path, &left, 0o600))
            .await
            .map_err(later)?
            .map_err(later)?;
    }
    let crate::rules::addressing::Addressed { to, cc, keys, .. } = addressed;
    let answers = draft.answers.is_some();
    let tx = tx.clone();
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        let _hold = hold;
        seal(&tx, &dir, doc_id, draft, to, cc, &keys)
    })
    .await
    .map_err(later)??;
    Ok(answers)
}

/// The draft a claim in the spool makes: its files, its sidecar (if any)
/// and what the clerk's folder said.
async fn read_draft(me: &Identity, dir: &Path) -> Result<Draft, SendError> {
    let limit = me.config().max_document_size;
    let now = me.clock().now();
    let d = dir.to_owned();
    tokio::task::spawn_blocking(move || -> Result<Draft, SendError> {
        let claim = read_claim(&d).map_err(later)?;
        let sidecar = if claim.has_sidecar {
            let text = std::fs::read_to_string(spool::sidecar(&d))
                .map_err(|e| SendError::Permanent(format!("无法读取附注文件：{e}")))?;
            Some(
                draft::parse_sidecar(&format!("{}{}", claim.name, outbox::SIDECAR_SUFFIX), &text)
                    .map_err(|e| SendError::Permanent(e.to_string()))?,
            )
        } else {
            None
        };
        draft::build(
            &claim.to,
            &claim.name,
            claim.is_folder,
            &spool::files(&d),
            sidecar,
            limit,
            now,
        )
        .map_err(|e| SendError::Permanent(e.to_string()))
    })
    .await
    .map_err(later)?
}

/// Whom the draft goes to: its names resolved by the hub into units (this
/// unit left out), each with a key it may be sealed to, or left out with
/// the reason ([`crate::rules::addressing::settle`]).
async fn address(
    conn: &quinn::Connection,
    me: &Identity,
    draft: &Draft,
) -> Result<crate::rules::addressing::Addressed, SendError> {
    let mut names = draft.to.clone();
    names.extend(draft.cc.iter().cloned());
    let (resolved, bindings) = match request(conn, &Message::Lookup { names }).await? {
        Message::Directory {
            resolved,
            unknown,
            bindings,
        } if unknown.is_empty() => (resolved, bindings),
        Message::Directory { unknown, .. } => {
            return Err(SendError::Permanent(format!(
                "交换中心不认识收文单位：{}。没有这个编号的单位或组（单位由省级管理员登记、或其交换程序连上交换中心后，交换中心才知道它）。请检查收文单位。",
                unknown.join("、")
            )));
        }
        // The hub cannot answer now (its database, say): its words.
        Message::Error { message, .. } => {
            return Err(SendError::Later(format!(
                "the hub cannot look up the recipients now: {}",
                gongwen_common::logsafe::Clipped(&message)
            )));
        }
        other => {
            return Err(SendError::Later(format!(
                "unexpected answer to lookup: {}",
                other.describe()
            )));
        }
    };
    let node = me.node_id().clone();
    // Sets beside the lists: a group may have thousands of members.
    let members = |list: &[String]| -> Vec<NodeId> {
        let mut out: Vec<NodeId> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for name in list {
            if let Some(r) = resolved.iter().find(|r| &r.name == name) {
                for m in &r.members {
                    if *m != node && seen.insert(m) {
                        out.push(m.clone());
                    }
                }
            }
        }
        out
    };
    let to = members(&draft.to);
    let in_to: std::collections::HashSet<&NodeId> = to.iter().collect();
    let cc: Vec<NodeId> = members(&draft.cc)
        .into_iter()
        .filter(|c| !in_to.contains(c))
        .collect();
    if to.is_empty() {
        return Err(SendError::Permanent("除本单位外没有主送单位。".into()));
    }
    let suite = me.credentials().signer().suite();
    let verdicts = key_verdicts(&bindings, me.trust(), me.clock().now(), suite);
    match crate::rules::addressing::settle(&to, &cc, &verdicts) {
        Ok(a) => Ok(a),
        Err(crate::rules::addressing::NotAddressed::NoOneToReceive(why)) => {
            Err(SendError::Permanent(why))
        }
        Err(crate::rules::addressing::NotAddressed::Later(why)) => Err(SendError::Later(why)),
    }
}

/// The note beside a sent document's files naming the units left out.
pub const LEFT_OUT_NOTE: &str = "未发送单位.txt";

/// The units a sealed document in the spool was not sent to, and why
/// (its `left_out.json`, written when it was addressed), if any.
pub fn read_left_out(dir: &Path) -> Vec<crate::rules::addressing::LeftOut> {
    std::fs::read(spool::left_out(dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Each key the hub gave, judged: whose it is and whether it can be used
/// at `now` (certificate valid and not revoked, binding sound, of this
/// deployment's suite). A binding that names no unit at all is dropped
/// (its unit then counts as having no key).
fn key_verdicts(
    bindings: &[Vec<u8>],
    trust: &crate::unit::trust::Trust,
    now: time::OffsetDateTime,
    suite: gongwen_common::suite::Suite,
) -> Vec<(NodeId, crate::rules::addressing::KeyVerdict)> {
    use crate::rules::addressing::KeyVerdict;
    use gongwen_common::pki::{CertIdentity, CertProblem, PkiError};
    let mut out = Vec::new();
    for b in bindings {
        let Some(node) = ReachKey::statement_of(b)
            .and_then(|st| Some((CertIdentity::from_der(&st.cert).ok()?.id, st.cert)))
        else {
            continue;
        };
        let (id, cert) = node;
        // A unit of another domain is judged by its domain's CA, and
        // addressed as `unit@domain`.
        let judged = trust.check_any(
            |checker| checker.check(&cert, now),
            |e| {
                matches!(
                    e,
                    PkiError::Invalid {
                        problem: CertProblem::NotFromCa,
                        ..
                    }
                )
            },
        );
        let (address, judged) = match judged {
            Ok((who, Some(domain))) => (NodeId::remote(&id, &domain), Ok(who)),
            Ok((who, None)) => (id.clone(), Ok(who)),
            Err(e) => (id.clone(), Err(e)),
        };
        let verdict = match judged {
            Err(PkiError::Invalid { problem, .. }) if problem.is_transient() => {
                KeyVerdict::Unjudged(problem.to_string())
            }
            Err(PkiError::Invalid { problem, .. }) => KeyVerdict::Refused(problem),
            Err(e) => KeyVerdict::Refused(CertProblem::Other(e.to_string())),
            Ok(_) => match ReachKey::verify(b, None, now) {
                Ok(reach) if reach.suite != suite => {
                    KeyVerdict::Refused(CertProblem::Other(format!(
                        "it published a {} key and this deployment seals in the {suite} suite; it must publish its keys again (ask the administrator)",
                        reach.suite
                    )))
                }
                Ok(reach) if reach.node == id => KeyVerdict::Usable(reach.public),
                Ok(reach) => KeyVerdict::Refused(CertProblem::Other(format!(
                    "its key binding names {} instead",
                    reach.node
                ))),
                Err(e) => KeyVerdict::Refused(CertProblem::Other(e.to_string())),
            },
        };
        out.push((address, verdict));
    }
    out
}

/// The links a draft's header carries: what it asks for, and what it
/// answers — checked against the received document it answers.
fn links_of(
    me: &Identity,
    store: &Store,
    outgoing: &Outgoing,
    draft: &Draft,
    to: &[NodeId],
) -> Result<Links, SendError> {
    let mut links = Links {
        asks: draft.asks,
        ..Links::default()
    };
    if let Some(id) = draft.forward_of {
        let header = store
            .header(id)
            .map_err(later)?
            .ok_or_else(|| SendError::Permanent(format!("本单位收文中没有要转发的公文 {id}。")))?;
        let sealed = SealedHeader::parse(&header).map_err(later)?;
        // A forward of a forward carries the first issuer's original; an
        // original received as a tree-form copy is carried as its signed
        // statement (without this unit's key).
        links.forwards =
            Some(
                sealed
                    .meta()
                    .links
                    .forwards
                    .clone()
                    .unwrap_or_else(|| match sealed.form {
                        gongwen_common::envelope::tree::Form::Plain => header,
                        _ => sealed.statement_bytes(),
                    }),
            );
    }
    if let Some(a) = draft.answers {
        let received = store.received(a.doc_id).map_err(later)?;
        let header = store.header(a.doc_id).map_err(later)?;
        let (Some((rec, _)), Some(header)) = (received, header) else {
            return Err(SendError::Permanent(format!(
                "本单位收文中没有要答复的公文 {}。",
                a.doc_id
            )));
        };
        let asked = SealedHeader::parse(&header).map_err(later)?;
        let previous = store.replied(a.doc_id).map_err(later)?;
        crate::rules::answering::check_answer(
            &a.doc_id.to_string(),
            &rec.sender,
            asked.meta().links.asks,
            previous,
            crate::rules::answering::AnswerShape {
                decision: a.decision,
                to,
                supersedes: a.supersedes,
            },
        )
        .map_err(SendError::Permanent)?;
        // Answering signs for the question if it was not signed for yet
        // (by the answer's 经办人, or in the unit's name).
        if rec.state == crate::unit::store::ReceivedState::Delivered {
            sign_for_question(me, store, outgoing, draft, a.doc_id)?;
        }
        links.answers = Some(Answers {
            doc_id: a.doc_id,
            digest: asked.digest(),
            decision: a.decision,
            supersedes: a.supersedes,
        });
    }
    Ok(links)
}

/// Sign for the question an answer answers, as the answer is sealed. A
/// clerk who answered it meanwhile signed for it all the same, unless
/// what they did was return it.
fn sign_for_question(
    me: &Identity,
    store: &Store,
    outgoing: &Outgoing,
    draft: &Draft,
    question: DocId,
) -> Result<(), SendError> {
    let by = if draft.operator.name.trim().is_empty() {
        format!("{}（答复）", me.node_id())
    } else {
        draft.operator.name.clone()
    };
    let kind = gongwen_common::receipt::ReceiptKind::Acknowledged;
    match crate::incoming::clerk::answer(me, store, question, kind, &by) {
        Ok(_) => {
            outgoing.wake();
            Ok(())
        }
        Err(crate::incoming::clerk::ActError::Answered(..)) => {
            let now = store.received(question).map_err(later)?;
            if now.is_some_and(|(r, _)| r.state == crate::unit::store::ReceivedState::Rejected) {
                return Err(SendError::Permanent(format!(
                    "公文 {question} 已被退回，不能再答复。"
                )));
            }
            Ok(())
        }
        Err(e) => Err(SendError::Later(format!(
            "signing for the question first: {e}"
        ))),
    }
}

/// Seal the document without writing its ciphertext: encrypt the files
/// once to hash the ciphertext for the signed header, keep the content key
/// in the spool, and write the `header` last (a header on disk means the
/// document is sealed). The upload encrypts the files again as it sends —
/// the same ciphertext, since the nonces depend only on the chunk index —
/// instead of reading back a second copy of the whole document from disk.
fn seal(
    tx: &Sending,
    dir: &Path,
    doc_id: DocId,
    draft: Draft,
    to: Vec<NodeId>,
    cc: Vec<NodeId>,
    keys: &[(NodeId, Vec<u8>)],
) -> Result<(), SendError> {
    let Sending {
        me,
        store,
        outgoing,
        ..
    } = tx;
    let links = links_of(me, store, outgoing, &draft, &to)?;
    let addressed = (draft.to.clone(), draft.cc.clone());
    // One signer, so one suite, for the key, the digests and the signature.
    let signer = me.credentials().signer();
    let suite = signer.suite();
    let key = ContentKey::generate(suite).map_err(later)?;
    let mut sealing = Sealing {
        sealer: ContentSealer::new(&key, doc_id, draft.size()).map_err(later)?,
        content_hash: Hasher::new(suite),
        chunk: Vec::with_capacity(CHUNK_LEN + 16),
        suite,
    };
    let mut entries = Vec::new();
    let mut stamps: crate::outgoing::stamp::Stamps = Vec::new();
    for f in &draft.files {
        let (entry, stamp) = sealing.add(f)?;
        stamps.push((f.name.clone(), stamp));
        entries.push(entry);
    }
    let digest = sealing.finish()?;
    write_key(&spool::key(dir), &key.to_bytes()).map_err(later)?;
    let stamps = serde_json::to_vec(&stamps).map_err(later)?;
    write_atomic(&spool::stamps(dir), &stamps, 0o600).map_err(later)?;
    let meta = DocMeta {
        doc_id,
        sender: me.node_id().clone(),
        to,
        cc,
        doc_number: draft.doc_number,
        doc_type: draft.doc_type,
        title: draft.title,
        urgency: draft.urgency,
        deadline: draft.deadline,
        created_ms: me.now_ms(),
        operator: draft.operator,
        note: draft.note,
        files: entries,
        links,
        elements: draft.elements,
    };
    // Many recipients: each will get its own key and a proof, not all of
    // them (gongwen_common::envelope::tree).
    let header = if keys.len() > gongwen_common::envelope::tree::TREE_ABOVE {
        gongwen_common::envelope::tree::seal_tree_header(
            meta, &key, keys, digest, &signer, addressed,
        )
    } else {
        seal_header(meta, &key, keys, digest, &signer).map(|st| st.encode())
    }
    .map_err(|e| SendError::Permanent(e.to_string()))?;
    write_atomic(&spool::header(dir), &header, 0o600).map_err(later)?;
    info!(doc = %doc_id, "sealed for {} recipients", keys.len());
    Ok(())
}

/// The content, sealed chunk by chunk as the files are read, and the
/// digest of what it seals to. (Only the key and header are kept: the
/// upload encrypts the files again.)
struct Sealing {
    sealer: ContentSealer,
    content_hash: Hasher,
    chunk: Vec<u8>,
    suite: gongwen_common::suite::Suite,
}

impl Sealing {
    fn flush(&mut self) -> Result<(), SendError> {
        self.sealer.seal_chunk(&mut self.chunk).map_err(later)?;
        self.content_hash.update(&self.chunk);
        self.chunk.clear();
        Ok(())
    }

    /// Read one file into the content: its entry for the header, and its
    /// stamp as it was read. A file that changed while it was read is the
    /// drop still being written ([`SendError::Changed`]).
    fn add(
        &mut self,
        f: &draft::DraftFile,
    ) -> Result<(FileEntry, crate::outgoing::stamp::Stamp), SendError> {
        let unreadable =
            |e: std::io::Error| SendError::Permanent(format!("无法读取文件 {}：{e}", f.name));
        let mut file = std::fs::File::open(&f.path).map_err(unreadable)?;
        let stamp = |file: &std::fs::File| {
            file.metadata()
                .map(|m| crate::outgoing::stamp::Stamp::of(&m))
                .map_err(unreadable)
        };
        let before = stamp(&file)?;
        if before.size != f.size {
            return Err(changed(
                &f.name,
                "它的大小在取走之后又变了 (its size changed after it was taken)",
            ));
        }
        let mut hash = Hasher::new(self.suite);
        let mut size = 0u64;
        loop {
            let start = self.chunk.len();
            self.chunk.resize(CHUNK_LEN, 0);
            let n = file.read(&mut self.chunk[start..]).map_err(unreadable)?;
            self.chunk.truncate(start + n);
            if n == 0 {
                break;
            }
            hash.update(&self.chunk[start..start + n]);
            size += n as u64;
            if size > f.size {
                return Err(changed(
                    &f.name,
                    "封装时它还在变大 (it grew while it was sealed)",
                ));
            }
            if self.chunk.len() == CHUNK_LEN {
                self.flush()?;
            }
        }
        let after = stamp(&file)?;
        if size != f.size {
            return Err(changed(
                &f.name,
                "封装时它变小了 (it shrank while it was sealed)",
            ));
        }
        if let Some(what) = after.changed_from(&before) {
            return Err(changed(&f.name, &what));
        }
        let entry = FileEntry {
            name: f.name.clone(),
            kind: f.kind,
            size,
            sha256: hash.finish(),
        };
        Ok((entry, after))
    }

    /// The last chunk sealed; the content's digest.
    fn finish(mut self) -> Result<[u8; 32], SendError> {
        if !self.sealer.is_finished() {
            self.flush()?;
        }
        Ok(self.content_hash.finish())
    }
}

/// One request on a fresh stream, one answer.
pub async fn request(conn: &quinn::Connection, msg: &Message) -> Result<Message, SendError> {
    gongwen_common::stream::request(conn, msg, READ_TIMEOUT)
        .await
        .map_err(|e| SendError::Connection(e.to_string()))
}

fn refused(code: ErrorCode, message: String) -> SendError {
    if code == ErrorCode::QueueFull {
        SendError::Deferred(format!("the hub: {message}"))
    } else if code.is_retryable() {
        SendError::Later(format!("the hub: {message}"))
    } else {
        // The hub's own words go to the log; the clerk reads what the
        // refusal means.
        warn!(
            "the hub refused the document ({code:?}): {}",
            gongwen_common::logsafe::Escaped(&message)
        );
        SendError::Permanent(format!("交换中心拒收：{}。", code.chinese()))
    }
}

/// Where an upload's ciphertext comes from.
enum Content {
    /// Written in the spool by an earlier version.
    Stored(PathBuf),
    /// Encrypted again from the files as they are sent (the same bytes:
    /// the nonces depend only on the chunk index).
    Files { dir: PathBuf, key: [u8; 32] },
}

/// Upload a sealed document from the spool; returns the hub's `accepted`
/// receipt.
async fn upload(
    conn: &quinn::Connection,
    dir: &Path,
    doc_id: DocId,
    outgoing: &Outgoing,
) -> Result<Vec<u8>, SendError> {
    let header = tokio::fs::read(spool::header(dir)).await.map_err(later)?;
    // Sealed by an earlier version, the ciphertext itself is in the spool.
    let content_path = spool::content(dir);
    let content = if tokio::fs::try_exists(&content_path).await.unwrap_or(false) {
        Content::Stored(content_path)
    } else {
        let key = tokio::fs::read(spool::key(dir)).await.map_err(later)?;
        let key: [u8; 32] = key
            .try_into()
            .map_err(|_| SendError::Permanent("发送队列中这份公文的密钥已损坏。".into()))?;
        Content::Files {
            dir: spool::files(dir),
            key,
        }
    };
    let stamps = crate::outgoing::stamp::read(dir).map(|s| (spool::files(dir), s));
    upload_sealed(conn, doc_id, header, content, false, stamps, outgoing).await
}

/// Upload a sealed document (its signed header and its content).
async fn upload_sealed(
    conn: &quinn::Connection,
    doc_id: DocId,
    header: Vec<u8>,
    content: Content,
    again: bool,
    stamps: Option<(PathBuf, crate::outgoing::stamp::Stamps)>,
    outgoing: &Outgoing,
) -> Result<Vec<u8>, SendError> {
    // Offered again to a hub that lost its store, a document to a unit the
    // hub does not know yet waits until that unit connects there.
    let tree_form = gongwen_common::envelope::tree::is_full(&header);
    let refused = |code: ErrorCode, message: String| {
        if tree_form && code == ErrorCode::BadRequest && message.starts_with("invalid frame") {
            // A hub older than protocol 7 does not know the keys' leaves
            // that go first.
            SendError::Permanent(format!(
                "交换中心的版本过旧，不能接收发给 {} 个以上单位的公文；请管理员先升级交换中心。",
                gongwen_common::envelope::tree::TREE_ABOVE
            ))
        } else if again && code == ErrorCode::UnknownRecipient {
            SendError::Later(format!(
                "the hub: {message} (not connected since the hub lost its store)"
            ))
        } else {
            refused(code, message)
        }
    };
    let sealed = SealedHeader::parse(&header).map_err(|e| SendError::Permanent(e.to_string()))?;
    let content_len = sealed.header.content_len;
    let conn_err = |e: &dyn std::fmt::Display| SendError::Connection(e.to_string());
    let urgency = sealed.header.meta.urgency;
    let (mut send, mut recv) = begin_upload(conn, doc_id, header, content_len, urgency).await?;
    let offset = match begun(&mut recv, content_len, &refused).await? {
        Begun::Done(receipt) => return Ok(receipt),
        Begun::From(offset) => offset,
    };
    if offset > 0 {
        info!(doc = %doc_id, "resuming upload at byte {offset} of {content_len}");
    }
    // One blocking thread reads the sealed content; chunks go to QUIC
    // without another copy or a thread hand-off per read.
    let mut chunks = match content {
        Content::Stored(path) => read_file_chunks(path, offset),
        Content::Files { dir, key } => encrypt_files(
            dir,
            sealed.header.meta.files.clone(),
            ContentKey::from_bytes(key, sealed.header.suite),
            doc_id,
            offset,
        ),
    };
    let mut sent = offset;
    while let Some(chunk) = chunks.recv().await {
        let chunk = chunk.map_err(later)?;
        let n = chunk.len() as u64;
        if let Err(e) = send.write_chunk(chunk).await {
            // The hub stops reading when it refuses mid-upload (its disk
            // is full, the content is wrong): its answer says why.
            if let quinn::WriteError::Stopped(_) = e
                && let Ok(Message::Error { code, message }) =
                    read_message(&mut recv, READ_TIMEOUT).await
            {
                return Err(refused(code, message));
            }
            return Err(conn_err(&e));
        }
        sent += n;
        outgoing.set_progress(doc_id, sent, content_len);
    }
    if let Some(why) = changed_since_sealed(stamps).await? {
        let _ = send.reset(quinn::VarInt::from_u32(0));
        return Err(why);
    }
    send.finish().map_err(|e| conn_err(&e))?;
    match read_message(&mut recv, DOCUMENT_WORK_TIMEOUT)
        .await
        .map_err(|e| conn_err(&e))?
    {
        Message::Accepted { receipt } => Ok(receipt),
        Message::Error { code, message } => Err(refused(code, message)),
        other => Err(SendError::Later(format!(
            "unexpected answer: {}",
            other.describe()
        ))),
    }
}

/// The last chance to take an upload back: a dropped file that changed
/// since it was sealed is still being written, and what was read of it
/// must not go out. (The hub keeps nothing of an upload it never saw
/// finish but the partial file a resumed upload would use.)
async fn changed_since_sealed(
    stamps: Option<(PathBuf, crate::outgoing::stamp::Stamps)>,
) -> Result<Option<SendError>, SendError> {
    let Some((files_dir, stamps)) = stamps else {
        return Ok(None);
    };
    let changed = tokio::task::spawn_blocking(move || {
        crate::outgoing::stamp::changed_files(&files_dir, &stamps)
    })
    .await
    .map_err(later)?;
    Ok(changed
        .first()
        .map(|(name, what)| self::changed(name, what)))
}

/// A stream for one upload, its `UploadBegin` sent. A 特急 document's
/// upload goes before bulk on the same connection.
async fn begin_upload(
    conn: &quinn::Connection,
    doc_id: DocId,
    header: Vec<u8>,
    content_len: u64,
    urgency: gongwen_common::envelope::Urgency,
) -> Result<(quinn::SendStream, quinn::RecvStream), SendError> {
    let conn_err = |e: &dyn std::fmt::Display| SendError::Connection(e.to_string());
    let (mut send, recv) = conn.open_bi().await.map_err(|e| conn_err(&e))?;
    let _ = send.set_priority(urgency.stream_priority());
    // A tree-form header: its keys' leaves first, then the signed part.
    let header = match gongwen_common::envelope::tree::split_full(&header) {
        Some((statement, leaves)) => {
            for m in gongwen_common::wire::key_leaves_messages(doc_id, &leaves) {
                write_message(&mut send, &m)
                    .await
                    .map_err(|e| conn_err(&e))?;
            }
            statement
        }
        None => header,
    };
    let begin = Message::UploadBegin {
        doc_id,
        header,
        content_len,
    };
    write_message(&mut send, &begin)
        .await
        .map_err(|e| conn_err(&e))?;
    Ok((send, recv))
}

async fn begun(
    recv: &mut quinn::RecvStream,
    content_len: u64,
    refused: &impl Fn(ErrorCode, String) -> SendError,
) -> Result<Begun, SendError> {
    match read_message(recv, DOCUMENT_WORK_TIMEOUT)
        .await
        .map_err(|e| SendError::Connection(e.to_string()))?
    {
        Message::Accepted { receipt } => Ok(Begun::Done(receipt)),
        Message::UploadFrom { offset } => Ok(Begun::From(offset.min(content_len))),
        Message::Error { code, message } => Err(refused(code, message)),
        other => Err(SendError::Later(format!(
            "unexpected answer: {}",
            other.describe()
        ))),
    }
}

/// The hub's answer to an upload's beginning: where to go on from (it may
/// first hash what it kept of an earlier attempt), or its receipt when it
/// has the whole document already.
enum Begun {
    From(u64),
    Done(Vec<u8>),
}

/// The hub's store is not the one this agent last worked with (a restored
/// backup, a wiped disk, a hub rebuilt): offer it again every document we
/// sent that some recipient has not answered, byte for byte as first sent
/// (same id, same signed header, same ciphertext). The hub takes each as
/// new or, if it has it, answers with its receipt; recipients that already
/// hold a document answer its redelivery with their first receipts. True
/// when every one was offered (then the agent records the generation);
/// false when some must be offered again later (the connection broke, or
/// a recipient has not connected to the rebuilt hub yet). `done` holds the
/// documents taken or given up on in earlier rounds, which are not offered
/// again.
pub async fn offer_again(
    conn: &quinn::Connection,
    tx: &Sending,
    done: &mut std::collections::HashSet<DocId>,
) -> bool {
    let Sending {
        me,
        store,
        outgoing,
        ..
    } = tx;
    let unfinished = match store.run(|s| s.unfinished_sent()).await {
        Ok(u) => u,
        Err(e) => {
            warn!("cannot list the documents to offer again: {e}");
            return false;
        }
    };
    let (mut offered, mut impossible, mut waiting) = (0usize, 0usize, 0usize);
    for u in unfinished {
        let doc_id = u.record.doc_id;
        if done.contains(&doc_id) {
            continue;
        }
        let Some(key) = u.key else {
            done.insert(doc_id);
            impossible += 1;
            warn!(doc = %doc_id, "cannot offer this document again: it was sent before content keys were kept; send it anew if the hub no longer has it");
            continue;
        };
        let dir = me.folders().sent.join(doc_id.to_string());
        let content = Content::Files { dir, key };
        match upload_sealed(conn, doc_id, u.header, content, true, None, outgoing).await {
            // The first `accepted` receipt stays the one on record.
            Ok(_) => {
                done.insert(doc_id);
                offered += 1;
            }
            Err(SendError::Permanent(why) | SendError::Changed(why)) => {
                done.insert(doc_id);
                impossible += 1;
                warn!(doc = %doc_id, "the hub did not take this document again: {}", gongwen_common::logsafe::Escaped(&why));
            }
            Err(SendError::Later(why) | SendError::Deferred(why)) => {
                waiting += 1;
                info!(doc = %doc_id, "to offer again later: {}", gongwen_common::logsafe::Escaped(&why));
            }
            Err(SendError::Connection(why)) => {
                info!(doc = %doc_id, "offering again stopped, to go on later: {}", gongwen_common::logsafe::Escaped(&why));
                return false;
            }
        }
    }
    info!(
        "offered {offered} unanswered documents to the hub again ({waiting} later, {impossible} could not be)"
    );
    waiting == 0
}

/// Write the content key, synced but without its own folder sync: the
/// header's `write_atomic` right after syncs the folder and so makes both
/// entries durable, and without a header the key is never read (a seal
/// interrupted before its header runs again and overwrites it).
fn write_key(path: &Path, key: &[u8; 32]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(key)?;
    f.sync_all()
}

/// Encrypt the document's files (in `files_dir`, in header order) on a
/// blocking thread, from ciphertext byte `offset` on, in chunks for QUIC.
fn encrypt_files(
    files_dir: PathBuf,
    files: Vec<FileEntry>,
    key: ContentKey,
    doc_id: DocId,
    offset: u64,
) -> tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = encrypt_into(&files_dir, &files, &key, doc_id, offset, &tx) {
            let _ = tx.blocking_send(Err(e));
        }
    });
    rx
}

fn encrypt_into(
    files_dir: &Path,
    files: &[FileEntry],
    key: &ContentKey,
    doc_id: DocId,
    offset: u64,
    tx: &tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
) -> std::io::Result<()> {
    let invalid = |e: gongwen_common::envelope::EnvelopeError| std::io::Error::other(e.to_string());
    let plain_len: u64 = files.iter().map(|f| f.size).sum();
    let sealed_chunk = (CHUNK_LEN + TAG_LEN) as u64;
    let index = offset / sealed_chunk;
    let mut skip = (offset % sealed_chunk) as usize;
    let mut sealer = ContentSealer::starting_at(key, doc_id, plain_len, index).map_err(invalid)?;
    // Where chunk `index` starts among the concatenated files.
    let mut at = index * CHUNK_LEN as u64;
    let mut current = 0;
    while current < files.len() && at >= files[current].size {
        at -= files[current].size;
        current += 1;
    }
    // The open file and how much of it the header covers from here on:
    // never more, so a file that grew in the spool cannot slip bytes in.
    let mut file: Option<(std::fs::File, u64)> = None;
    let mut left = plain_len - index * CHUNK_LEN as u64;
    loop {
        let want = left.min(CHUNK_LEN as u64) as usize;
        let mut chunk = Vec::with_capacity(want + TAG_LEN);
        while chunk.len() < want {
            let (f, in_file) = match file.as_mut() {
                Some(open) if open.1 > 0 => open,
                Some(_) => {
                    file = None;
                    current += 1;
                    continue;
                }
                None => {
                    let entry = files.get(current).ok_or_else(|| {
                        std::io::Error::other("the spool holds less than the header says")
                    })?;
                    let mut f = std::fs::File::open(files_dir.join(&entry.name))?;
                    f.seek(std::io::SeekFrom::Start(at))?;
                    let in_file = entry.size - at;
                    at = 0;
                    file.insert((f, in_file))
                }
            };
            let start = chunk.len();
            let room = (want - start).min(usize::try_from(*in_file).unwrap_or(usize::MAX));
            chunk.resize(start + room, 0);
            let n = f.read(&mut chunk[start..])?;
            chunk.truncate(start + n);
            if n == 0 {
                return Err(std::io::Error::other(
                    "a file in the spool is shorter than when it was sealed",
                ));
            }
            *in_file -= n as u64;
        }
        left -= want as u64;
        sealer.seal_chunk(&mut chunk).map_err(invalid)?;
        let bytes = bytes::Bytes::from(chunk).slice(skip..);
        skip = 0;
        if tx.blocking_send(Ok(bytes)).is_err() || sealer.is_finished() {
            return Ok(());
        }
    }
}

/// An accepted document waiting to be filed under sent/.
#[derive(Debug)]
pub struct FileJob {
    doc_id: DocId,
    receipt: Vec<u8>,
    reply: tokio::sync::oneshot::Sender<Result<(), SendError>>,
}

/// Check the hub's receipt, record it, and file the document under sent/.
/// Documents accepted while others are being filed are filed together
/// with them (one store commit and one sync of sent/ and of the spool for
/// the batch; see [`crate::unit::batch`]); a lone document is filed at once.
async fn file_accepted(tx: &Sending, doc_id: DocId, receipt: Vec<u8>) -> Result<(), SendError> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let job = FileJob {
        doc_id,
        receipt,
        reply,
    };
    let (me, store, known) = (tx.me.clone(), tx.store.clone(), tx.known.clone());
    tx.filing
        .submit(job, move |jobs| file_batch(&me, &store, &known, jobs));
    answer
        .await
        .map_err(|_| SendError::Later("filing stopped".into()))?
}

/// A document whose `accepted` receipt checked out, ready to be filed.
struct Checked {
    dir: std::path::PathBuf,
    header: Vec<u8>,
    /// The content key, kept to offer the document again if the hub loses it.
    key: Option<[u8; 32]>,
    sealed: SealedHeader,
    receipt: Receipt,
    record: SentRecord,
}

fn check_accepted(me: &Identity, job: &FileJob) -> Result<Checked, SendError> {
    let doc_id = job.doc_id;
    let dir = spool::entry(me.folders(), doc_id);
    let header = std::fs::read(spool::header(&dir)).map_err(later)?;
    let sealed = SealedHeader::parse(&header).map_err(|e| SendError::Permanent(e.to_string()))?;
    let (r, _) = Receipt::verify(&job.receipt, Some(&me.trust().checker()), me.clock().now())
        .map_err(|e| SendError::Later(format!("the hub's receipt does not verify: {e}")))?;
    if r.kind != ReceiptKind::Accepted || r.doc_id != doc_id || r.doc_digest != sealed.digest() {
        return Err(SendError::Later(
            "the hub's receipt is for another document".into(),
        ));
    }
    let meta = sealed.meta();
    let record = SentRecord {
        doc_id,
        title: meta.title.clone(),
        doc_number: meta.doc_number.clone(),
        urgency: meta.urgency,
        recipients: meta.recipients(),
        sent_ms: r.time_ms,
        digest: serial_hex(&sealed.digest()),
        recalled: Vec::new(),
        recalled_ms: None,
        left_out: read_left_out(&dir),
    };
    let key = std::fs::read(spool::key(&dir))
        .ok()
        .and_then(|k| <[u8; 32]>::try_from(k).ok());
    Ok(Checked {
        dir,
        header,
        key,
        sealed,
        receipt: r,
        record,
    })
}

/// File one batch and answer each job. Blocking.
fn file_batch(me: &Identity, store: &Store, known: &Known, jobs: Vec<FileJob>) {
    let mut outcome: Vec<Result<Checked, SendError>> =
        jobs.iter().map(|j| check_accepted(me, j)).collect();
    // 1. Recorded, all in one commit.
    let accepted: Vec<crate::unit::store::Accepted<'_>> = jobs
        .iter()
        .zip(&outcome)
        .filter_map(|(j, o)| {
            let c = o.as_ref().ok()?;
            Some(crate::unit::store::Accepted {
                record: &c.record,
                receipt: &j.receipt,
                hub: &c.receipt.issuer,
                header: &c.header,
                key: c.key.as_ref(),
            })
        })
        .collect();
    let recorded = store.record_sent(&accepted);
    drop(accepted);
    if let Err(e) = recorded {
        fail_all(&mut outcome, &e);
    }
    // 2. Each one's metadata joins its files in the spool, then the whole
    // folder moves to sent/<doc_id>/ in one rename: sent/ never shows a
    // document half filed, nor a file other than the one that went out.
    for o in outcome.iter_mut() {
        let Ok(c) = o else { continue };
        if let Err(e) = file_one(me, known, c) {
            *o = Err(later(e));
        }
    }
    // 3. The filed folders durable, then the spool entries go.
    if let Err(e) = sync_dir(&me.folders().sent) {
        fail_all(&mut outcome, &e);
    }
    for o in outcome.iter_mut() {
        let Ok(c) = o else { continue };
        if let Err(e) = std::fs::remove_dir_all(&c.dir) {
            *o = Err(later(e));
        }
    }
    if let Err(e) = sync_dir(&me.folders().spool) {
        fail_all(&mut outcome, &e);
    }
    for (job, o) in jobs.into_iter().zip(outcome) {
        let answer = o.map(|c| {
            info!(doc = %job.doc_id, "accepted by the hub; filed under sent/");
            debug!("receipt from {}", c.receipt.issuer);
        });
        let _ = job.reply.send(answer);
    }
}

/// Move one accepted document from the spool to `sent/<doc_id>/`, its
/// `metadata.json` (and a note of units it did not go to) beside its files.
fn file_one(me: &Identity, known: &Known, c: &Checked) -> std::io::Result<()> {
    let dest = me.folders().sent.join(c.record.doc_id.to_string());
    if dest.exists() {
        return Ok(()); // filed before a crash that came before the spool went
    }
    set_aside_changed(me, c)?;
    let meta = c.sealed.meta();
    // A span deadline counts from the hub's acceptance, which the
    // `accepted` receipt dates by the hub's clock; with none, the hub sets
    // one from the urgency, as its directory says.
    let deadline = meta
        .deadline
        .map(|d| d.resolve(c.receipt.time_ms))
        .or_else(|| {
            known
                .get()?
                .default_deadline(meta.urgency, c.receipt.time_ms)
        });
    let mut metadata = MetadataJson::from_sealed(&c.sealed, deadline);
    metadata.left_out = c.record.left_out.clone();
    let text = serde_json::to_vec_pretty(&metadata).map_err(std::io::Error::other)?;
    let files = spool::files(&c.dir);
    write_atomic(&files.join("metadata.json"), &text, 0o644)?;
    if !c.record.left_out.is_empty() {
        // Said where a clerk who works in the folders looks.
        let note = format!(
            "这份公文发给了其余收文单位，以下单位没有收到：\nNot sent to these units (the others have it):\n\n{}\n",
            crate::rules::addressing::describe(&c.record.left_out)
        );
        write_atomic(&files.join(LEFT_OUT_NOTE), note.as_bytes(), 0o644)?;
    }
    std::fs::rename(&files, &dest)
}

/// Before a sent document is filed: a file that changed since it was
/// sealed (its stamp moved, and its digest is no longer the signed one)
/// is not what went out. It is moved to `failed/` with a note saying what
/// changed and what went out instead, and `sent/` keeps a note in its
/// place: `sent/` never holds a file the signed document does not. (The
/// upload checked the same just before the hub took it; this is the moment
/// between.) Blocking.
fn set_aside_changed(me: &Identity, c: &Checked) -> std::io::Result<()> {
    let Some(stamps) = crate::outgoing::stamp::read(&c.dir) else {
        return Ok(());
    };
    let files = spool::files(&c.dir);
    let suite = c.sealed.header.suite;
    for (name, what) in crate::outgoing::stamp::changed_files(&files, &stamps) {
        let Some(entry) = c.sealed.meta().files.iter().find(|f| f.name == name) else {
            continue;
        };
        let path = files.join(&name);
        let digest = std::fs::File::open(&path).and_then(|mut f| {
            let mut h = Hasher::new(suite);
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break Ok(h.finish());
                }
                h.update(&buf[..n]);
            }
        });
        if digest.as_ref().is_ok_and(|d| *d == entry.sha256) {
            continue; // touched, not changed
        }
        let doc_id = c.record.doc_id;
        let happened = format!(
            "{name} 在封装发出之后又被改动：{what}。发出的公文 {doc_id} 含的是改动前的内容（{} 字节，{} {}），收文单位收到的就是那一版；改动后的文件没有发出，放在这里。",
            entry.size,
            suite.digest_name(),
            serial_hex(&entry.sha256),
        );
        let todo = "如果收文单位应收到改动后的文件：在控制台“发文”中撤回这份公文，再在“问题”中重新发送这个文件。放入发件箱的文件请写完后再放入（或先以临时文件名写完，再改成正式文件名）。";
        if path.exists() {
            let dest = outbox::free_name(&me.folders().failed, std::ffi::OsStr::new(&name));
            std::fs::rename(&path, &dest)?;
            outbox::write_error(&dest, &happened, todo)?;
            sync_dir(&me.folders().failed)?;
        }
        write_atomic(
            &files.join(format!("{name}.已改动-未发出.txt")),
            format!(
                "{happened}

{todo}
"
            )
            .as_bytes(),
            0o644,
        )?;
        warn!(doc = %doc_id, "{}: changed after it was sent; the changed file is in failed/", gongwen_common::logsafe::Escaped(&name));
    }
    Ok(())
}

/// A step the whole batch shares failed: every job still going fails with
/// it (and is retried: the hub answers again with its first `accepted`).
fn fail_all(outcome: &mut [Result<Checked, SendError>], e: &dyn std::fmt::Display) {
    for o in outcome.iter_mut().filter(|o| o.is_ok()) {
        *o = Err(later(e));
    }
}
