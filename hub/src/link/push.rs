//! What the hub pushes to a connected unit, each on streams the hub opens:
//! documents addressed to it, receipts and notices for it, and the CRL.
//!
//! Deliveries are claimed from the store most urgent first and run several
//! at a time; a document queued while others are under way is claimed at
//! once, so a 特急 notice does not wait behind a large 平件 transfer, and
//! its stream goes before bulk (QUIC stream priority).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gongwen_common::logsafe::Clipped;
use gongwen_common::stream::{
    DOCUMENT_WORK_TIMEOUT, READ_TIMEOUT, StreamError, read_message, write_message,
};
use gongwen_common::wire::{ErrorCode, Message};
use gongwen_common::{DocId, NodeId};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::link::refusal::Refusal;
use crate::state::core::{Core, SMALL_CONTENT, Stats};
use crate::state::registry::Wake;
use crate::store::Push;

/// Pause before pushing again after a push failed on a live connection.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// Pushers look at the store at least this often even without a wake-up
/// (a lost notification from another hub, a lapsed claim).
const RESCAN: Duration = Duration::from_secs(30);

/// Deliveries to one unit in flight at once: one at a time, each small
/// document waited for the unit's fsyncs and a round trip before the next
/// could start.
const DELIVERIES_IN_FLIGHT: usize = 32;

/// Pushes to one unit in flight at once (see [`forwarder`]).
const PUSHES_IN_FLIGHT: usize = 32;

/// Wait for a wake-up or the periodic rescan (shorter with a shared
/// store, whose other hubs may queue work without a wake-up reaching here).
async fn wait(notify: &tokio::sync::Notify, core: &Core) {
    let _ = tokio::time::timeout(rescan(core), notify.notified()).await;
}

fn rescan(core: &Core) -> Duration {
    if core.store().backend() == "embedded" {
        RESCAN
    } else {
        core.config().store.poll.min(RESCAN)
    }
}

/// Documents this deliverer does not offer again yet: each after a failed
/// attempt, until its pause is over.
#[derive(Debug, Default)]
pub struct HeldBack {
    until: HashMap<DocId, Instant>,
}

impl HeldBack {
    pub fn hold(&mut self, doc: DocId, until: Instant) {
        self.until.insert(doc, until);
    }

    /// Forget pauses that are over; the documents still held.
    pub fn held(&mut self, now: Instant) -> Vec<DocId> {
        self.until.retain(|_, t| *t > now);
        self.until.keys().copied().collect()
    }

    /// When the first pause ends.
    pub fn next_end(&self) -> Option<Instant> {
        self.until.values().min().copied()
    }
}

/// The pauses between asking a unit again that refused for now: 1 s,
/// doubling, at most `RESCAN`; back to 1 s once something is delivered.
#[derive(Debug, Default)]
pub struct Refusals {
    in_a_row: u32,
}

impl Refusals {
    pub fn next_pause(&mut self) -> Duration {
        let pause = RETRY_PAUSE.saturating_mul(1 << self.in_a_row.min(5));
        self.in_a_row = self.in_a_row.saturating_add(1);
        pause.min(RESCAN)
    }

    pub fn clear(&mut self) {
        self.in_a_row = 0;
    }
}

pub(crate) async fn deliverer(
    conn: quinn::Connection,
    node: NodeId,
    core: Arc<Core>,
    wake: Arc<Wake>,
    trust: crate::link::session::TrustHanded,
) {
    let mut refusals = Refusals::default();
    let mut held_back = HeldBack::default();
    let mut in_flight: HashMap<DocId, ()> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let room = DELIVERIES_IN_FLIGHT - in_flight.len();
        if room > 0 {
            let mut skip: Vec<DocId> = in_flight.keys().copied().collect();
            skip.extend(held_back.held(Instant::now()));
            match core.store().claim_deliveries(&node, room, &skip).await {
                Ok(claimed) => {
                    for doc_id in claimed {
                        in_flight.insert(doc_id, ());
                        let (conn, node, core) = (conn.clone(), node.clone(), core.clone());
                        let trust = trust.clone();
                        let span = info_span!("deliver", doc = %doc_id);
                        tasks.spawn(
                            async move {
                                trust.caught_up(&core).await;
                                (doc_id, deliver_one(&conn, &node, doc_id, &core).await)
                            }
                            .instrument(span),
                        );
                    }
                }
                Err(e) => tracing::error!("store: {e}"),
            }
        }
        let pause = held_back
            .next_end()
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or(RESCAN)
            .min(rescan(&core));
        let done = tokio::select! {
            done = tasks.join_next(), if !tasks.is_empty() => done,
            _ = tokio::time::timeout(pause, wake.deliveries.notified()) => None,
            _ = conn.closed() => {
                // Give the claims back at once: the unit may already be
                // connected to another hub.
                tasks.abort_all();
                release_all(&core, &node, in_flight.keys().copied()).await;
                return;
            }
        };
        let Some(done) = done else { continue };
        let Ok((doc_id, result)) = done else { continue };
        in_flight.remove(&doc_id);
        if result.is_err() {
            // Another hub (or this one, later) may deliver it.
            let _ = core.store().release_delivery(&node, doc_id).await;
        }
        match result {
            Ok(()) => refusals.clear(),
            Err(DeliverError::Connection(e)) => {
                if conn.close_reason().is_some() {
                    debug!("delivery stopped: {e}");
                    release_all(&core, &node, in_flight.keys().copied()).await;
                    tasks.abort_all();
                    return;
                }
                // A slow or confused answer is not a lost connection: try
                // again shortly.
                warn!(doc = %doc_id, "delivery interrupted ({e}); retrying");
                held_back.hold(doc_id, Instant::now() + RETRY_PAUSE);
            }
            Err(DeliverError::Refused(r)) => {
                warn!(doc = %doc_id, "delivery refused: {}", r.message);
                // Not in a loop: a unit that cannot take a document now (its
                // disk is full) is asked again after a pause that doubles up
                // to the rescan interval, so it gets it soon after it can;
                // one that refused it for good, after a rescan.
                let pause = if r.code.is_retryable() {
                    refusals.next_pause()
                } else {
                    RESCAN
                };
                held_back.hold(doc_id, Instant::now() + pause);
            }
        }
    }
}

async fn release_all(core: &Core, node: &NodeId, docs: impl Iterator<Item = DocId>) {
    for doc_id in docs {
        let _ = core.store().release_delivery(node, doc_id).await;
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

impl From<crate::store::StoreError> for DeliverError {
    fn from(e: crate::store::StoreError) -> Self {
        DeliverError::Refused(e.into())
    }
}

async fn deliver_one(
    conn: &quinn::Connection,
    node: &NodeId,
    doc_id: DocId,
    core: &Core,
) -> Result<(), DeliverError> {
    // Waited for before anything of the document is read.
    let _turn = core.delivery_turn().await;
    let started = std::time::Instant::now();
    let store = core.store();
    let mut header = core
        .copies()
        .header_for(doc_id, node, || store.header(doc_id))
        .await?;
    if header.is_none()
        && let Some(f) = core.federation()
    {
        // A tree-form document from another domain names its keys' leaves
        // `unit@this-domain`, as its sender wrote them.
        let named = NodeId::remote(node, f.domain());
        header = core
            .copies()
            .header_for(doc_id, &named, || store.header(doc_id))
            .await?;
    }
    let doc = store.doc(doc_id).await?;
    let deadline_ms = store
        .delivery(doc_id, node)
        .await?
        .map(|d| d.deadline_ms)
        .unwrap_or(0);
    let (Some(header), Some(doc)) = (header, doc) else {
        return Err(Refusal::new(
            ErrorCode::Internal,
            "pending document missing from the store",
        )
        .into());
    };
    // Taken before the recipient is asked, so it never waits on a quiet
    // stream (its read timeout would cut the delivery).
    let mut slot = if doc.content_len > SMALL_CONTENT {
        core.delivery_slot().await
    } else {
        None
    };
    let (mut send, mut recv) = conn
        .open_bi()
        .await
        .map_err(|e| DeliverError::Connection(e.to_string()))?;
    let _ = send.set_priority(doc.urgency.stream_priority());
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
                Stats::add(&core.stats().deliveries_resumed, 1);
                Stats::add(&core.stats().bytes_not_redelivered, offset);
            }
            if let Err(e) = stream_content(
                &mut send,
                core,
                doc_id,
                offset.min(doc.content_len),
                doc.content_len,
            )
            .await
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
    let kind = crate::link::receipts::record(&receipt, node, Some(doc_id), core).await?;
    Stats::add(&core.stats().deliveries, 1);
    core.metrics().delivery_took(started.elapsed());
    info!("{}", kind.as_str());
    Ok(())
}

async fn stream_content(
    send: &mut quinn::SendStream,
    core: &Core,
    doc_id: DocId,
    offset: u64,
    content_len: u64,
) -> Result<(), DeliverError> {
    let mut chunks = core.store().read_content(doc_id, offset).await?;
    let mut at = offset;
    let mut sent = 0usize;
    while let Some(chunk) = chunks.recv().await {
        sent += 1;
        if sent == 3 {
            gongwen_common::failpoint::hit("hub-deliver-mid-content");
        }
        let chunk = chunk.map_err(|e| {
            tracing::error!("content of {doc_id}: {e}");
            Refusal::new(
                ErrorCode::Storage,
                format!("the hub cannot read this document's content now ({e})"),
            )
        })?;
        let len = chunk.len() as u64;
        at += len;
        send.write_chunk(chunk)
            .await
            .map_err(|e| DeliverError::Connection(e.to_string()))?;
        core.metrics().bytes_sent(len);
    }
    if at != content_len {
        // The store holds less (or more) than the accepted length: sent as
        // it is, the unit would wait for the rest and the hub retry for
        // ever. Said loudly instead: it is the store's fault, not the link's.
        tracing::error!(
            doc = %doc_id,
            "the content this hub holds ends at byte {at} of {content_len}: the stored document is damaged"
        );
        return Err(Refusal::new(
            ErrorCode::Storage,
            format!("the hub holds only {at} of this document's {content_len} bytes"),
        )
        .into());
    }
    send.finish()
        .map_err(|e| DeliverError::Connection(e.to_string()))?;
    Ok(())
}

/// One push on the wire, and the queued pushes it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub seqs: Vec<u64>,
    pub push: Push,
}

/// Most bytes of notices one round push carries (well within a frame).
const MAX_ROUND_BYTES: usize = 512 * 1024;

/// The queued pushes as they go on the wire: each alone, except that with
/// `rounds` (an agent of protocol version 5 on) consecutive 督办 notices of
/// the same escalation round go as one `NoticeRound`. Pure.
pub fn group(queue: Vec<(u64, Push)>, rounds: bool) -> Vec<Outgoing> {
    use gongwen_common::notice::Notice;
    let mut out: Vec<Outgoing> = Vec::new();
    let mut gathering: Option<Round> = None;
    for (seq, push) in queue {
        let notice = match &push {
            Push::Notice(body) if rounds => Notice::from_bytes(body),
            _ => None,
        };
        let Some((notice, key)) = notice.and_then(|n| {
            let key = n.round().map(|(at, level)| (at.to_owned(), level))?;
            Some((n, key))
        }) else {
            out.extend(gathering.take().map(Round::into_push));
            out.push(Outgoing {
                seqs: vec![seq],
                push,
            });
            continue;
        };
        let size = push_len(&push);
        let fits = gathering
            .as_ref()
            .is_some_and(|g| g.key == key && g.bytes + size <= MAX_ROUND_BYTES);
        if !fits {
            out.extend(gathering.take().map(Round::into_push));
        }
        let g = gathering.get_or_insert_with(|| Round {
            key,
            seqs: Vec::new(),
            items: Vec::new(),
            bytes: 0,
        });
        g.seqs.push(seq);
        g.items.push(notice);
        g.bytes += size;
    }
    out.extend(gathering.map(Round::into_push));
    out
}

/// The 督办 notices of one round being gathered into one push.
struct Round {
    /// The round's time and level.
    key: (String, u32),
    seqs: Vec<u64>,
    items: Vec<gongwen_common::notice::Notice>,
    bytes: usize,
}

impl Round {
    fn into_push(self) -> Outgoing {
        let Round {
            key: (at, level),
            seqs,
            mut items,
            ..
        } = self;
        let push = if items.len() == 1 {
            Push::Notice(items.remove(0).to_bytes())
        } else {
            Push::Notice(gongwen_common::notice::NoticeRound::new(at, level, items).to_bytes())
        };
        Outgoing { seqs, push }
    }
}

fn push_len(p: &Push) -> usize {
    match p {
        Push::Receipt(b) | Push::Notice(b) => b.len(),
    }
}

pub(crate) async fn forwarder(
    conn: quinn::Connection,
    node: NodeId,
    core: Arc<Core>,
    wake: Arc<Wake>,
    version: u16,
) {
    loop {
        let queue = match core.store().claim_pushes(&node, 256).await {
            Ok(q) => q,
            Err(e) => {
                tracing::error!("store: {e}");
                Vec::new()
            }
        };
        if queue.is_empty() {
            wait(&wake.receipts, &core).await;
            continue;
        }
        // Several pushes in flight, and one commit for all that were taken:
        // a push repeated after a crash is harmless (the unit records each
        // receipt once), a receipt forgotten is not.
        // Notices (urge, supervise, recall) go one at a time, in order.
        let claimed: Vec<u64> = queue.iter().map(|(seq, _)| *seq).collect();
        let mut queue = group(queue, version >= 5).into_iter().peekable();
        let mut in_flight = tokio::task::JoinSet::new();
        let (mut taken, mut failed) = (Vec::new(), None);
        loop {
            while failed.is_none() && in_flight.len() < PUSHES_IN_FLIGHT {
                let notice = matches!(
                    queue.peek(),
                    Some(Outgoing {
                        push: Push::Notice(_),
                        ..
                    })
                );
                if notice && !in_flight.is_empty() {
                    break;
                }
                let Some(Outgoing { seqs, push }) = queue.next() else {
                    break;
                };
                let conn = conn.clone();
                in_flight.spawn(async move { (seqs, push_one(&conn, push).await) });
                if notice {
                    break;
                }
            }
            let Some(done) = in_flight.join_next().await else {
                break;
            };
            match done {
                Ok((seqs, Ok(()))) => taken.extend(seqs),
                Ok((_, Err(e))) => {
                    failed.get_or_insert(e);
                }
                Err(e) => {
                    failed.get_or_insert(e.to_string());
                }
            }
        }
        let not_taken: Vec<u64> = claimed.into_iter().filter(|s| !taken.contains(s)).collect();
        if let Err(e) = core.store().forwarded(&node, taken, not_taken).await {
            tracing::error!("store: {e}");
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

/// Push one receipt or notice and wait for the unit's `ok`.
async fn push_one(conn: &quinn::Connection, push: Push) -> Result<(), String> {
    let msg = match push {
        Push::Receipt(receipt) => Message::ReceiptNotice { receipt },
        Push::Notice(body) => Message::Notice { body },
    };
    gongwen_common::stream::request_ok(conn, &msg, READ_TIMEOUT).await
}

pub(crate) async fn crl_pusher(conn: quinn::Connection, core: Arc<Core>, wake: Arc<Wake>) {
    loop {
        let crl = core.trust().current().crl.der.to_vec();
        // Any answer will do: an agent holding a newer list says so, and
        // that is its business.
        let pushed =
            gongwen_common::stream::request(&conn, &Message::CrlUpdate { crl }, READ_TIMEOUT)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string());
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
    use gongwen_common::envelope::Urgency;

    fn supervise(at: &str, level: u32) -> Push {
        use gongwen_common::notice::{Notice, NoticeKind};
        Push::Notice(
            Notice {
                kind: NoticeKind::Supervise,
                doc_id: gongwen_common::DocId::generate(),
                sender: NodeId::parse("prov-gov").unwrap(),
                title: "关于做好冬季安全生产工作的通知".into(),
                doc_number: "黑政发〔2026〕1号".into(),
                recipient: NodeId::parse("daqing-gov").unwrap(),
                deadline: None,
                late_seconds: 7200,
                urge_count: 1,
                escalation_level: level,
                at: at.into(),
                reason: String::new(),
                pressed_by: None,
            }
            .to_bytes(),
        )
    }

    #[test]
    fn supervision_notices_of_one_round_go_as_one_push_to_agents_that_know_rounds() {
        use gongwen_common::notice::Pushed;
        let t1 = "2026-12-07T05:00:00Z";
        let t2 = "2026-12-07T06:00:00Z";
        let mut queue = vec![(1, Push::Receipt(b"r".to_vec()))];
        queue.extend((2..1002).map(|seq| (seq, supervise(t1, 1))));
        queue.push((1002, supervise(t2, 1)));
        queue.push((1003, supervise(t2, 2)));
        // An agent of an older version: one push each, as before.
        assert_eq!(group(queue.clone(), false).len(), queue.len());
        let out = group(queue, true);
        // The receipt; round t1 in pushes of at most MAX_ROUND_BYTES; the
        // two notices of other rounds alone.
        assert_eq!(out[0].seqs, vec![1]);
        let first_round: Vec<&Outgoing> = out
            .iter()
            .filter(|o| o.seqs.iter().all(|s| (2..1002).contains(s)))
            .collect();
        assert!(
            first_round.len() < 10,
            "{} pushes for one round",
            first_round.len()
        );
        let carried: usize = first_round.iter().map(|o| o.seqs.len()).sum();
        assert_eq!(carried, 1000, "every notice of the round carried once");
        for o in &first_round {
            let Push::Notice(body) = &o.push else {
                panic!()
            };
            assert!(body.len() <= MAX_ROUND_BYTES + 4096);
            match Pushed::from_bytes(body) {
                Some(Pushed::Round(r)) => {
                    assert_eq!((r.at.as_str(), r.escalation_level), (t1, 1));
                    assert_eq!(r.items.len(), o.seqs.len());
                }
                other => panic!("{other:?}"),
            }
        }
        let last: Vec<&Vec<u64>> = out.iter().rev().take(2).map(|o| &o.seqs).collect();
        assert_eq!(last, [&vec![1003], &vec![1002]]);
    }

    #[test]
    fn a_unit_that_refuses_for_now_is_asked_again_sooner_than_a_rescan_then_less_often() {
        let mut r = Refusals::default();
        let pauses: Vec<u64> = (0..8).map(|_| r.next_pause().as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 30, 30, 30]);
        r.clear();
        assert_eq!(r.next_pause(), RETRY_PAUSE);
    }

    #[test]
    fn a_held_back_document_is_offered_again_once_its_pause_is_over() {
        let mut h = HeldBack::default();
        let t0 = Instant::now();
        let (a, b) = (DocId::generate(), DocId::generate());
        h.hold(a, t0 + Duration::from_secs(1));
        h.hold(b, t0 + Duration::from_secs(5));
        assert_eq!(h.next_end(), Some(t0 + Duration::from_secs(1)));
        let mut held = h.held(t0);
        held.sort();
        let mut both = vec![a, b];
        both.sort();
        assert_eq!(held, both);
        assert_eq!(h.held(t0 + Duration::from_secs(2)), vec![b]);
        assert!(h.held(t0 + Duration::from_secs(6)).is_empty());
        assert_eq!(h.next_end(), None);
    }

    #[test]
    fn urgent_streams_go_before_bulk() {
        assert!(Urgency::ExtraUrgent.stream_priority() > Urgency::Urgent.stream_priority());
        assert!(Urgency::Urgent.stream_priority() > Urgency::Normal.stream_priority());
    }
}
