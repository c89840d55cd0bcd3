//! Taking a document from its sender: the checks that decide whether the
//! hub takes it (plain functions over the header and what the store
//! says), then the content into the store and the signed `accepted`.

use gongwen_common::envelope::{DocMeta, FileKind, SealedHeader};
use gongwen_common::pki::{CertIdentity, serial_hex};
use gongwen_common::receipt::{Receipt, ReceiptKind};
use gongwen_common::stream::{READ_TIMEOUT, write_message};
use gongwen_common::transfer::{StreamEnd, receive_to};
use gongwen_common::wire::{ErrorCode, Message};
use gongwen_common::{DocId, NodeId};
use tracing::{info, warn};

use crate::link::refusal::Refusal;
use crate::state::core::{Core, Stats};
use crate::store::{Accept, DocLinks, DocRecord, FileRow};

/// Whether an upload's header may be taken from this connection: it names
/// this document, this sender, the announced length, and fits the limit.
/// The signature is checked separately (it needs the current CRL).
pub fn check_header(
    meta: &DocMeta,
    header_content_len: u64,
    doc_id: DocId,
    connection: &NodeId,
    announced_len: u64,
    limit: u64,
) -> Result<(), Refusal> {
    if meta.doc_id != doc_id {
        return Err(Refusal::new(
            ErrorCode::Malformed,
            "the header names another document",
        ));
    }
    if &meta.sender != connection {
        return Err(Refusal::new(
            ErrorCode::NotTheSender,
            format!(
                "the document claims sender {}, but this connection is {connection}",
                meta.sender
            ),
        ));
    }
    if announced_len != header_content_len {
        return Err(Refusal::new(
            ErrorCode::ContentMismatch,
            "content length differs from the header",
        ));
    }
    if announced_len > limit {
        return Err(Refusal::new(
            ErrorCode::TooLarge,
            format!("the document is {announced_len} bytes; this hub takes at most {limit}"),
        ));
    }
    Ok(())
}

/// What the store already says about an uploaded document id.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// Never accepted: take it.
    New,
    /// Accepted before with the same header: answer with that receipt (an
    /// agent retrying after a lost answer, or offering again to a hub that
    /// kept it).
    Again(Vec<u8>),
}

/// Judge an upload against the store's record of the same id.
pub fn judge_seen(
    existing: Option<&DocRecord>,
    accepted: Option<Vec<u8>>,
    digest: &str,
) -> Result<Seen, Refusal> {
    match (existing, accepted) {
        (None, _) => Ok(Seen::New),
        (Some(doc), Some(receipt)) if doc.digest == digest => Ok(Seen::Again(receipt)),
        (Some(_), _) => Err(Refusal::new(
            ErrorCode::Conflict,
            "this document id was already used for a different document",
        )),
    }
}

/// No unit may bury an offline one: past `max_queued_per_sender` documents
/// from this sender waiting for a recipient that is not connected (here or,
/// with a shared store, at another hub), the upload is refused with
/// "retry later" before a byte of content is read. A connected recipient
/// takes what it is sent as fast as it comes, and is not counted.
async fn check_quota(
    core: &Core,
    sender: &NodeId,
    recipients: &[NodeId],
    warnings: &crate::state::loglimit::Warnings,
) -> Result<Vec<crate::state::quota::Reservation>, Refusal> {
    let limit = core.config().max_queued_per_sender;
    let mut counted = Vec::new();
    // A set: a notice to a national group asks this for every recipient.
    let here: std::collections::HashSet<NodeId> = core.units().connected().into_iter().collect();
    let mut elsewhere: Option<std::collections::HashSet<NodeId>> = None;
    for r in recipients.iter().filter(|r| !here.contains(r)) {
        if core.store().backend() != "embedded" {
            if elsewhere.is_none() {
                elsewhere = Some(
                    core.store()
                        .presence()
                        .await?
                        .into_iter()
                        .map(|p| p.node)
                        .collect(),
                );
            }
            if elsewhere.as_ref().is_some_and(|e| e.contains(r)) {
                continue;
            }
        }
        let queued = core.store().queued_from(sender, r, limit).await?;
        let waiting = match core.reserve_queue_slot(sender, r, queued) {
            Ok(reservation) => {
                counted.push(reservation);
                continue;
            }
            Err(waiting) => waiting,
        };
        if let Some(refusal) = quota_refusal(r, waiting, limit) {
            core.metrics().quota_refused();
            if let Some(held_back) = warnings.allow(sender.as_str()) {
                warn!(
                    sender = %sender,
                    recipient = %r,
                    "upload refused: {waiting} documents from this sender already wait for the offline recipient{held_back}"
                );
            }
            return Err(refusal);
        }
    }
    Ok(counted)
}

/// The refusal when `waiting` documents already wait for `recipient` and at
/// most `limit` may. Pure.
pub fn quota_refusal(recipient: &NodeId, waiting: u64, limit: u64) -> Option<Refusal> {
    (waiting >= limit).then(|| {
        Refusal::new(
            ErrorCode::QueueFull,
            format!(
                "{recipient} is not connected and already has {waiting} documents from this unit waiting for it (at most {limit}); try again later, once it has taken them (收文单位不在线，本单位发给它的待收公文已达上限，请稍后再试)"
            ),
        )
    })
}

/// Every recipient must be known (have published a key); `unknown` lists
/// those the store does not know.
pub fn check_recipients(unknown: &[NodeId]) -> Result<(), Refusal> {
    if unknown.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = unknown.iter().map(ToString::to_string).collect();
    Err(Refusal::new(
        ErrorCode::UnknownRecipient,
        format!("unknown recipient: {}", names.join(", ")),
    ))
}

/// An answer (批复, 上报) must answer a document the hub holds, from one of
/// its recipients, citing the version accepted, of the kind it asked
/// for, addressed to the unit that asked. The agent checks the same; a
/// hostile or broken one is refused here.
pub fn check_answer(
    meta: &DocMeta,
    answers: &gongwen_common::links::Answers,
    asked: Option<&DocRecord>,
) -> Result<(), Refusal> {
    use gongwen_common::links::ReplyKind;
    let bad = |text: String| Err(Refusal::new(ErrorCode::BadRequest, text));
    let id = answers.doc_id;
    let Some(asked) = asked else {
        return Err(Refusal::new(
            ErrorCode::UnknownDocument,
            format!("it answers document {id}, which the hub never accepted"),
        ));
    };
    if !asked.recipients().contains(&meta.sender) {
        return bad(format!("only a recipient of document {id} may answer it"));
    }
    if asked.digest != gongwen_common::pki::serial_hex(&answers.digest) {
        return Err(Refusal::new(
            ErrorCode::ContentMismatch,
            format!("it answers another version of document {id} than the one accepted"),
        ));
    }
    match (asked.links.reply, answers.decision) {
        (None, _) => bad(format!("document {id} asked for no answer")),
        (Some(ReplyKind::Decision), None) => bad(format!(
            "document {id} asks for a decision, and the answer carries none"
        )),
        (Some(ReplyKind::Report), Some(_)) => {
            bad(format!("document {id} asks for a report, not a decision"))
        }
        _ if !meta.to.contains(&asked.sender) => bad(format!(
            "an answer goes to the unit that asked ({})",
            asked.sender
        )),
        _ => Ok(()),
    }
}

/// The hub's record of a document from its verified header.
pub fn doc_record(meta: &DocMeta, digest: String, content_len: u64, now_ms: i64) -> DocRecord {
    DocRecord {
        doc_id: meta.doc_id,
        sender: meta.sender.clone(),
        to: meta.to.clone(),
        cc: meta.cc.clone(),
        title: meta.title.clone(),
        doc_number: meta.doc_number.clone(),
        doc_type: meta.doc_type.clone(),
        urgency: meta.urgency,
        deadline: meta.deadline.map(|d| d.resolve(now_ms)),
        created_ms: meta.created_ms,
        accepted_ms: now_ms,
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
        links: DocLinks {
            reply: meta.links.asks.map(|a| a.kind),
            reply_by_ms: meta
                .links
                .asks
                .and_then(|a| a.by)
                .map(|d| d.resolve(now_ms).saturating_mul(1000)),
            // Set by the caller, who has the escalation ladder.
            reply_first_due_ms: None,
            answers: meta.links.answers.map(|a| a.doc_id),
            decision: meta.links.answers.and_then(|a| a.decision),
            forwards: meta
                .links
                .forwards
                .as_deref()
                .and_then(|o| SealedHeader::parse(o).ok())
                .map(|o| o.meta().doc_id),
        },
    }
}

/// What an upload announced: the document, its header (the signed
/// statement), its content length, and in the tree form its keys' leaves.
pub(crate) struct Upload {
    pub doc_id: DocId,
    pub header: Vec<u8>,
    pub content_len: u64,
    pub leaves: Option<Vec<Vec<u8>>>,
}

/// The header an upload brought, whole: a list-form statement as it came,
/// or a tree-form statement with its leaves, checked to make the signed
/// root (kept in the full form, from which each recipient's copy is cut).
/// A tree-form statement without its leaves is refused.
fn whole_header(
    header: Vec<u8>,
    leaves: Option<Vec<Vec<u8>>>,
) -> Result<(Vec<u8>, SealedHeader), Refusal> {
    let malformed = |e: gongwen_common::envelope::EnvelopeError| {
        Refusal::new(ErrorCode::Malformed, e.to_string())
    };
    match leaves {
        Some(leaves) => {
            let (recipients, sealed) =
                gongwen_common::envelope::tree::Recipients::new(&header, leaves)
                    .map_err(malformed)?;
            Ok((recipients.full_bytes(), sealed))
        }
        None => {
            let sealed = SealedHeader::parse(&header).map_err(malformed)?;
            if sealed.header.tree.is_some()
                || sealed.form != gongwen_common::envelope::tree::Form::Plain
            {
                return Err(Refusal::new(
                    ErrorCode::Malformed,
                    "a tree-form header comes after its keys (KeyLeaves), as a signed statement",
                ));
            }
            Ok((header, sealed))
        }
    }
}

/// Gives back a relayed upload's place in [`Core::relays_in_progress`].
struct InProgress<'a>(&'a Core, DocId);

impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        self.0.relays_in_progress().end(self.1);
    }
}

/// Who hands the hub a document: its sending unit, or the hub of a peer
/// domain relaying it.
#[derive(Clone, Copy)]
pub(crate) enum Origin<'a> {
    Unit(&'a CertIdentity),
    Peer(&'a gongwen_common::federation::Domain),
}

/// The checker (ours, or another domain's) that judges the original a
/// forward (转发) carries, if it carries one that any of them passes.
fn original_checker(
    sealed: &SealedHeader,
    core: &Core,
    now: time::OffsetDateTime,
) -> Option<std::sync::Arc<gongwen_common::pki::CertChecker>> {
    sealed
        .original()
        .and_then(|o| core.find_checker(|c| o.verify(Some(c), now).is_ok()))
}

/// A relayed document's sender, checked: signed by a unit of the peer's
/// domain or of a domain our configuration reaches through that peer,
/// valid by that domain's CA and CRL. Returns the sender's domain.
fn judge_relayed_sender(
    sealed: &SealedHeader,
    from: &gongwen_common::federation::Domain,
    core: &Core,
) -> Result<gongwen_common::federation::Domain, Refusal> {
    let Some(f) = core.federation() else {
        return Err(Refusal::new(ErrorCode::BadRequest, "no [federation] here"));
    };
    let mut last = None;
    let now = core.clock().now();
    let original = original_checker(sealed, core, now);
    for domain in f.carried_by(from) {
        let Some(checker) = f.checker_of(&domain) else {
            continue;
        };
        match sealed.verify_across(Some(&checker), original.as_deref().or(Some(&checker)), now) {
            Ok(_) => return Ok(domain),
            Err(e) => last = Some(e),
        }
    }
    let foreign = gongwen_common::pki::CertProblem::NotFromCa.to_string();
    Err(match last {
        Some(e) if e.to_string().contains(&foreign) => Refusal::new(
            ErrorCode::BadSignature,
            format!(
                "its sender's certificate was not issued by the CA of {} (the domains {from} may carry documents of)",
                f.carried_by(from)
                    .iter()
                    .map(|d| d.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Some(e) => Refusal::signature(e),
        None => Refusal::new(
            ErrorCode::NotNow,
            format!("no revocation list of the domains {from} carries is held yet"),
        ),
    })
}

/// A relayed document's addresses as this hub sees them (relative to
/// `sender_domain` in the header), and which recipients are this hub's
/// to handle: its own units, and units of domains it reaches through a
/// peer other than `from`. Pure.
pub fn localize(
    meta: &DocMeta,
    sender_domain: &gongwen_common::federation::Domain,
    here: &gongwen_common::federation::Domain,
    handled: impl Fn(&gongwen_common::federation::Domain) -> bool,
) -> DocMeta {
    let absolute = |a: &NodeId| match a.domain() {
        Some(_) => a.clone(),
        None => NodeId::remote(a, sender_domain),
    };
    let keep = |a: &NodeId| {
        let a = absolute(a);
        match a.domain() {
            Some(d) if &d == here => Some(a.seen_from(Some(here))),
            Some(d) if &d != sender_domain && handled(&d) => Some(a),
            _ => None,
        }
    };
    let mut out = meta.clone();
    out.sender = absolute(&meta.sender);
    out.to = meta.to.iter().filter_map(keep).collect();
    out.cc = meta.cc.iter().filter_map(keep).collect();
    out
}

/// Receive, check and durably store one uploaded document, then sign
/// `accepted`. Resumes from the last durable point of an earlier attempt.
pub(crate) async fn receive(
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    origin: Origin<'_>,
    core: &Core,
    warnings: &crate::state::loglimit::Warnings,
    upload: Upload,
) -> Result<Message, Refusal> {
    let started = std::time::Instant::now();
    let Upload {
        doc_id,
        header,
        content_len,
        leaves,
    } = upload;
    // The place a relayed upload takes, given back however it ends.
    let mut _in_progress = None;
    let (header_bytes, sealed) = whole_header(header, leaves)?;
    let signed_meta = sealed.meta().clone();
    let meta = match origin {
        Origin::Unit(ident) => {
            let checked = check_header(
                &signed_meta,
                sealed.header.content_len,
                doc_id,
                &ident.id,
                content_len,
                core.config().max_document_size,
            );
            if let Err(r) = &checked
                && r.code == ErrorCode::NotTheSender
            {
                warn!(claimed = %signed_meta.sender, "security: a document claims another sender");
            }
            checked?;
            let now = core.clock().now();
            let original = original_checker(&sealed, core, now);
            let ours = core.checker();
            sealed
                .verify_across(Some(&ours), original.as_deref().or(Some(&ours)), now)
                .map_err(Refusal::signature)?;
            check_remote_recipients(&signed_meta, core)?;
            signed_meta
        }
        Origin::Peer(from) => {
            // Two hubs of one domain (a PostgreSQL pair) may both hand on
            // the same document at once; one upload of a document at a
            // time, the other told to try again.
            if !core.relays_in_progress().begin(doc_id) {
                return Err(Refusal::new(
                    ErrorCode::NotNow,
                    "this document is being handed over on another link; try again shortly",
                ));
            }
            _in_progress = Some(InProgress(core, doc_id));
            check_header(
                &signed_meta,
                sealed.header.content_len,
                doc_id,
                &signed_meta.sender,
                content_len,
                core.config().max_document_size,
            )?;
            let sender_domain = judge_relayed_sender(&sealed, from, core).inspect_err(|r| {
                warn!(peer = %from, "security: a relayed document was refused: {}", r.message);
            })?;
            let Some(f) = core.federation() else {
                return Err(Refusal::new(ErrorCode::BadRequest, "no [federation] here"));
            };
            let meta = localize(&signed_meta, &sender_domain, f.domain(), |d| {
                f.next_hop(d).is_some_and(|hop| &hop != from)
            });
            if meta.to.is_empty() && meta.cc.is_empty() {
                return Err(Refusal::new(
                    ErrorCode::UnknownRecipient,
                    format!("none of its recipients is reached through {}", f.domain()),
                ));
            }
            meta
        }
    };
    let digest = serial_hex(&sealed.digest());
    let store = core.store();
    let seen = judge_seen(
        store.doc(doc_id).await?.as_ref(),
        store.accepted_receipt(doc_id).await?,
        &digest,
    );
    match seen {
        Ok(Seen::New) => {}
        Ok(Seen::Again(receipt)) => {
            info!("already accepted; answering with the original receipt");
            return Ok(Message::Accepted { receipt });
        }
        Err(r) => {
            warn!(sender = %meta.sender, "security: document id reused for different content; refused");
            return Err(r);
        }
    }
    if let Some(answers) = &meta.links.answers
        && matches!(origin, Origin::Unit(_))
    {
        let asked = store.doc(answers.doc_id).await?;
        check_answer(&meta, answers, asked.as_ref()).inspect_err(|r| {
            warn!(sender = %meta.sender, "security: an answer that does not fit its question was refused: {}", r.message);
        })?;
    }
    let recipients = meta.recipients();
    // A recipient is unknown only when the store says so; a store that
    // cannot be read is a retryable refusal (the `?`), never a permanent
    // "unknown recipient".
    // An enrolled unit can receive before its agent ever connected.
    let enrolled = core.enrolled().current();
    let mut unknown = Vec::new();
    for r in recipients.iter().filter(|r| r.is_local()) {
        if enrolled.entry(r).is_none() && store.binding(r).await?.is_none() {
            unknown.push(r.clone());
        }
    }
    check_recipients(&unknown)?;
    // Held until the accept is committed, when the store counts it. A
    // remote recipient's copies wait in its domain's queue, which the link
    // to the peer drains: not counted against the sender. A unit elsewhere
    // is bound like one of ours: a peer hub cannot bury an offline unit
    // here under one sender's documents (its hub is told to retry later
    // and passes that document over meanwhile).
    let local: Vec<NodeId> = recipients
        .iter()
        .filter(|r| r.is_local())
        .cloned()
        .collect();
    let sender = match origin {
        Origin::Unit(ident) => &ident.id,
        Origin::Peer(_) => &meta.sender,
    };
    let _counted = check_quota(core, sender, &local, warnings).await?;

    let mut sink = store
        .open_upload(doc_id, &digest, content_len, sealed.header.suite)
        .await?;
    let offset = sink.offset();
    if offset > 0 {
        info!("resuming upload at byte {offset} of {content_len}");
        Stats::add(&core.stats().uploads_resumed, 1);
        Stats::add(&core.stats().bytes_not_resent, offset);
    }
    if write_message(send, &Message::UploadFrom { offset })
        .await
        .is_err()
    {
        return Err(Refusal::new(ErrorCode::Internal, "connection lost"));
    }
    // The store's writer runs as its own task while this one reads QUIC;
    // it hands the sink back with its result.
    let (end, received, written) = receive_to(
        recv,
        offset,
        content_len,
        READ_TIMEOUT,
        move |batches| async move {
            let r = sink.write(batches).await;
            Ok::<_, std::io::Error>((sink, r))
        },
    )
    .await;
    Stats::add(&core.stats().bytes_received, received - offset);
    core.metrics().bytes_received(received - offset);
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
    let (sink, written) = written.map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))?;
    let (written, sha256) = written?;
    if written != content_len {
        return Err(Refusal::new(
            ErrorCode::ContentMismatch,
            format!("the upload ended at byte {written} of {content_len}"),
        ));
    }
    if sha256 != sealed.header.content_sha256 {
        sink.discard().await;
        return Err(Refusal::new(
            ErrorCode::ContentMismatch,
            "the content does not match the SHA-256 in the signed header",
        ));
    }
    sink.seal().await?;

    let now = core.now_ms();
    let accepted = Receipt {
        doc_id,
        kind: ReceiptKind::Accepted,
        recipient: core.id().clone(),
        issuer: core.id().clone(),
        doc_digest: sealed.digest(),
        time_ms: now,
        by: String::new(),
        reason: String::new(),
        seals: Vec::new(),
    };
    let receipt = core
        .sign(&accepted)
        .map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))?;
    let config = core.config();
    let deadline =
        crate::rules::escalation::deadline_ms(meta.deadline, meta.urgency, &config.deadlines, now);
    // The ladder runs at the sender's hub only: a hub that carries a
    // document for another domain keeps its copies' records but urges and
    // escalates nothing of its own (the sender's hub's urges come through).
    let ladder = match origin {
        Origin::Unit(_) => config.escalation.as_slice(),
        Origin::Peer(_) => &[],
    };
    let first_due = crate::rules::escalation::next_due_ms(deadline, 0, ladder);
    let mut record = doc_record(&meta, digest, content_len, now);
    record.links.reply_first_due_ms = record
        .links
        .reply_by_ms
        .and_then(|by| crate::rules::escalation::next_due_ms(by, 0, ladder));
    core.committer()
        .accept(Accept {
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
    Stats::add(&core.stats().documents_accepted, 1);
    core.metrics().document_accepted(started.elapsed());
    core.metrics().receipt_recorded(ReceiptKind::Accepted);
    core.wake_escalation();
    for r in &recipients {
        match (r.domain(), core.federation()) {
            (None, _) => core.units().wake_deliveries(r),
            (Some(d), Some(f)) => f.wake_relay(&d),
            (Some(_), None) => {}
        }
    }
    Ok(Message::Accepted { receipt })
}

/// A remote recipient must be of a domain this hub reaches, and listed in
/// that domain's directory.
fn check_remote_recipients(meta: &DocMeta, core: &Core) -> Result<(), Refusal> {
    let remote: Vec<&NodeId> = meta
        .to
        .iter()
        .chain(&meta.cc)
        .filter(|r| !r.is_local())
        .collect();
    if remote.is_empty() {
        return Ok(());
    }
    let Some(f) = core.federation() else {
        return Err(Refusal::new(
            ErrorCode::UnknownRecipient,
            format!(
                "unknown recipient: {} (this hub is not federated with other domains)",
                remote[0]
            ),
        ));
    };
    let unknown: Vec<NodeId> = remote
        .into_iter()
        .filter(|r| !f.knows(r))
        .cloned()
        .collect();
    check_recipients(&unknown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gongwen_common::envelope::Urgency;

    fn id(s: &str) -> NodeId {
        NodeId::parse(s).unwrap()
    }

    fn meta() -> DocMeta {
        DocMeta {
            doc_id: DocId::from_parts(1_700_000_000_000, [1; 10]),
            sender: id("prov-gov"),
            to: vec![id("harbin-gov")],
            cc: vec![],
            title: "通知".into(),
            doc_number: String::new(),
            doc_type: "通知".into(),
            urgency: Urgency::Normal,
            deadline: None,
            created_ms: 1,
            operator: Default::default(),
            note: String::new(),
            files: vec![],
            links: Default::default(),
            elements: Default::default(),
        }
    }

    /// A relayed document's recipients at national, from heilongjiang:
    /// national's own unit bare, jilin's kept (reached another way), and
    /// none sent back the way it came — a routing loop ends here.
    #[test]
    fn a_relayed_document_keeps_only_what_this_hub_handles_and_never_goes_back() {
        use gongwen_common::federation::Domain;
        let d = |s: &str| Domain::parse(s).unwrap();
        let a = |s: &str| NodeId::parse_address(s).unwrap();
        let mut m = meta();
        m.sender = id("harbin-gov");
        m.to = vec![
            a("gov-office@national"),
            a("changchun-gov@jilin"),
            a("daqing-gov"),
            a("dalian-gov@liaoning"),
        ];
        m.cc = vec![a("shenyang-gov@liaoning")];
        let (from, here) = (d("heilongjiang"), d("national"));
        let handled = |dom: &Domain| dom == &d("jilin");
        let out = localize(&m, &from, &here, handled);
        assert_eq!(out.sender, a("harbin-gov@heilongjiang"));
        assert_eq!(out.to, vec![a("gov-office"), a("changchun-gov@jilin")]);
        assert!(out.cc.is_empty());
        // jilin routed back through heilongjiang (a loop): nothing is kept.
        let out = localize(&m, &from, &here, |_| false);
        assert_eq!(out.to, vec![a("gov-office")]);
    }

    #[test]
    fn a_header_must_name_this_document_and_this_sender() {
        let m = meta();
        let me = id("prov-gov");
        assert!(check_header(&m, 10, m.doc_id, &me, 10, 100).is_ok());
        let other = DocId::from_parts(1_700_000_000_001, [1; 10]);
        assert_eq!(
            check_header(&m, 10, other, &me, 10, 100).unwrap_err().code,
            ErrorCode::Malformed
        );
        assert_eq!(
            check_header(&m, 10, m.doc_id, &id("harbin-gov"), 10, 100)
                .unwrap_err()
                .code,
            ErrorCode::NotTheSender
        );
    }

    #[test]
    fn the_length_must_be_the_headers_and_within_the_limit() {
        let m = meta();
        let me = id("prov-gov");
        assert_eq!(
            check_header(&m, 10, m.doc_id, &me, 11, 100)
                .unwrap_err()
                .code,
            ErrorCode::ContentMismatch
        );
        let too_big = check_header(&m, 101, m.doc_id, &me, 101, 100).unwrap_err();
        assert_eq!(too_big.code, ErrorCode::TooLarge);
        assert!(
            too_big.message.contains("at most 100"),
            "{}",
            too_big.message
        );
    }

    #[test]
    fn an_id_seen_before_is_answered_with_its_receipt_or_refused() {
        let record = doc_record(&meta(), "abc".into(), 10, 5);
        assert_eq!(judge_seen(None, None, "abc"), Ok(Seen::New));
        assert_eq!(
            judge_seen(Some(&record), Some(vec![9]), "abc"),
            Ok(Seen::Again(vec![9]))
        );
        assert_eq!(
            judge_seen(Some(&record), Some(vec![9]), "def")
                .unwrap_err()
                .code,
            ErrorCode::Conflict
        );
    }

    #[test]
    fn unknown_recipients_are_named() {
        assert!(check_recipients(&[]).is_ok());
        let r = check_recipients(&[id("a-gov"), id("b-gov")]).unwrap_err();
        assert_eq!(r.code, ErrorCode::UnknownRecipient);
        assert_eq!(r.message, "unknown recipient: a-gov, b-gov");
    }

    #[test]
    fn the_record_resolves_a_deadline_span_from_acceptance() {
        let mut m = meta();
        m.deadline = Some(gongwen_common::envelope::Deadline::Within(60));
        let r = doc_record(&m, "d".into(), 3, 1_000_000);
        assert_eq!(r.accepted_ms, 1_000_000);
        assert_eq!(r.deadline, Some(1_000 + 60));
        assert_eq!(r.recipients(), vec![id("harbin-gov")]);
    }
}

#[cfg(test)]
mod answer_tests {
    use super::*;
    use gongwen_common::links::{Answers, Decision, ReplyKind};

    fn id(s: &str) -> NodeId {
        NodeId::parse(s).unwrap()
    }

    /// prov-gov asked harbin-gov for a decision; harbin-gov answers.
    fn case() -> (DocMeta, Answers, DocRecord) {
        let asked_meta = DocMeta {
            doc_id: DocId::generate(),
            sender: id("prov-gov"),
            to: vec![id("harbin-gov")],
            cc: vec![],
            doc_number: String::new(),
            doc_type: "请示".into(),
            title: "请示".into(),
            urgency: gongwen_common::envelope::Urgency::Normal,
            deadline: None,
            created_ms: 0,
            operator: Default::default(),
            note: String::new(),
            files: vec![],
            links: gongwen_common::links::Links {
                asks: Some(gongwen_common::links::Asks {
                    kind: ReplyKind::Decision,
                    by: None,
                }),
                ..Default::default()
            },
            elements: Default::default(),
        };
        let asked = doc_record(&asked_meta, "ab".repeat(32), 0, 1_000);
        let answers = Answers {
            doc_id: asked.doc_id,
            digest: [0xab; 32],
            decision: Some(Decision::Approved),
            supersedes: None,
        };
        let meta = DocMeta {
            doc_id: DocId::generate(),
            sender: id("harbin-gov"),
            to: vec![id("prov-gov")],
            links: gongwen_common::links::Links {
                answers: Some(answers),
                ..Default::default()
            },
            ..asked_meta
        };
        (meta, answers, asked)
    }

    #[test]
    fn an_answer_that_does_not_fit_its_question_is_refused() {
        let (meta, answers, asked) = case();
        assert!(check_answer(&meta, &answers, Some(&asked)).is_ok());
        let refused = |meta: &DocMeta, answers: &Answers, asked: Option<&DocRecord>| {
            check_answer(meta, answers, asked).unwrap_err().message
        };
        assert!(refused(&meta, &answers, None).contains("never accepted"));
        let mut stranger = meta.clone();
        stranger.sender = id("daqing-gov");
        assert!(refused(&stranger, &answers, Some(&asked)).contains("only a recipient"));
        let mut other_version = answers;
        other_version.digest = [1; 32];
        assert!(refused(&meta, &other_version, Some(&asked)).contains("another version"));
        let mut no_decision = answers;
        no_decision.decision = None;
        assert!(refused(&meta, &no_decision, Some(&asked)).contains("carries none"));
        let mut report = asked.clone();
        report.links.reply = Some(ReplyKind::Report);
        assert!(refused(&meta, &answers, Some(&report)).contains("not a decision"));
        let mut plain = asked.clone();
        plain.links.reply = None;
        assert!(refused(&meta, &answers, Some(&plain)).contains("asked for no answer"));
        let mut elsewhere = meta.clone();
        elsewhere.to = vec![id("daqing-gov")];
        assert!(refused(&elsewhere, &answers, Some(&asked)).contains("unit that asked"));
    }
}
