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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use gongwen_common::NodeId;
use gongwen_common::pki::CertIdentity;
use gongwen_common::stream::{READ_TIMEOUT, StreamError, read_message, write_message};
use gongwen_common::wire::{ErrorCode, Message, Resolved};
use tracing::{Instrument, debug, info_span, warn};

use crate::link::push::{crl_pusher, deliverer, forwarder};
use crate::link::refusal::Refusal;
use crate::state::core::Core;
use crate::state::loglimit::Warnings;
use crate::state::registry::Wake;

/// Longest a delivery waits for the agent to be handed the other domains'
/// trust.
const TRUST_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// How far an agent has been handed the other domains' trust: the offers
/// version ([`crate::state::federation::Federation::offers_version`]) of
/// the last round it took. `None` inside: nothing to wait for (an agent
/// before protocol 8, or a hub without federation).
#[derive(Clone)]
pub(crate) struct TrustHanded(Option<tokio::sync::watch::Receiver<Option<u64>>>);

impl TrustHanded {
    /// Wait, at most [`TRUST_WAIT`], until the agent holds all the trust
    /// this hub holds now: a document or receipt the hub took with that
    /// trust can then be judged by the agent too.
    pub(crate) async fn caught_up(&self, core: &Core) {
        let (Some(taken), Some(f)) = (&self.0, core.federation()) else {
            return;
        };
        let needed = f.offers_version();
        let mut taken = taken.clone();
        let _ = tokio::time::timeout(
            TRUST_WAIT,
            taken.wait_for(|v| v.is_some_and(|v| v >= needed)),
        )
        .await;
    }
}

/// Run a session until the connection ends.
pub(crate) async fn run(
    conn: quinn::Connection,
    ident: CertIdentity,
    core: Arc<Core>,
    wake: Arc<Wake>,
    warnings: Arc<Warnings>,
    version: u16,
) {
    let mut tasks = tokio::task::JoinSet::new();
    if version >= 3 {
        tasks.spawn(
            crate::link::renewal_push::pusher(conn.clone(), ident.clone(), core.clone())
                .in_current_span(),
        );
    }
    // An agent judges senders and receipts of other domains by what the
    // hub hands it (chains and CRLs): receipts wait for the first hand-over,
    // and each document for one that holds all the hub holds when it is
    // delivered (a bounded while), so none is quarantined for want of it.
    let trust = if version >= 8 && core.federation().is_some() {
        let (handed, taken) = tokio::sync::watch::channel(None);
        tasks.spawn(
            crate::link::peer::trust_pusher(conn.clone(), core.clone(), handed).in_current_span(),
        );
        TrustHanded(Some(taken))
    } else {
        TrustHanded(None)
    };
    {
        let (conn, id, core, wake) = (conn.clone(), ident.id.clone(), core.clone(), wake.clone());
        let trust = trust.clone();
        tasks.spawn(deliverer(conn, id, core, wake, trust).in_current_span());
    }
    {
        let (conn, id, core, wake) = (conn.clone(), ident.id.clone(), core.clone(), wake.clone());
        tasks.spawn(
            async move {
                trust.caught_up(&core).await;
                forwarder(conn, id, core, wake, version).await
            }
            .in_current_span(),
        );
    }
    tasks.spawn(crl_pusher(conn.clone(), core.clone(), wake).in_current_span());
    let strikes = Arc::new(std::sync::atomic::AtomicU32::new(0));
    loop {
        tokio::select! {
            stream = conn.accept_bi() => match stream {
                Ok((send, recv)) => {
                    let core = core.clone();
                    let ident = ident.clone();
                    let (conn, strikes) = (conn.clone(), strikes.clone());
                    let warnings = warnings.clone();
                    tasks.spawn(
                        async move {
                            let peer = Peer { ident: &ident, conn: &conn, strikes: &strikes, warnings: &warnings, version };
                            handle_request(send, recv, &peer, &core).await
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

/// Answer with `msg`; a JSON answer larger than a frame goes in parts to
/// an agent that takes them (version 5 on), and so does a lookup's answer
/// (version 6 on). An older agent gets it whole, which it can read only if
/// it fits.
async fn answer_as(send: &mut quinn::SendStream, msg: Message, version: u16) {
    let frames = match msg {
        Message::Json { body } => gongwen_common::stream::json_frames(body, version >= 5),
        Message::Directory {
            resolved,
            unknown,
            bindings,
        } => gongwen_common::lookup::pieces(
            gongwen_common::lookup::Answer {
                resolved,
                unknown,
                bindings,
            },
            version >= 6,
        ),
        other => vec![other],
    };
    for f in &frames {
        if let Err(e) = write_message(send, f).await {
            debug!("could not answer: {e}");
            return;
        }
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
    /// The protocol version it speaks.
    version: u16,
}

async fn handle_request(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    peer: &Peer<'_>,
    core: &Core,
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
                crate::state::registry::close(
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
        first @ (Message::KeyLeaves { .. } | Message::UploadBegin { .. }) => {
            upload(first, &mut send, &mut recv, peer, core).await
        }
        Message::PublishKey { binding } => publish_key(&binding, ident, core).await,
        Message::Lookup { names } => lookup(names, core).await,
        Message::SubmitReceipt { receipt } => {
            crate::link::receipts::record(&receipt, &ident.id, None, core)
                .await
                .map(|_| Message::Ok)
        }
        Message::Recall { doc_id, reason } => {
            crate::link::receipts::recall(doc_id, reason, ident, core).await
        }
        Message::Supervise { query } => supervise(&query, ident, core).await,
        Message::Urge { doc_id, units } => {
            crate::link::receipts::urge(doc_id, units, ident, core).await
        }
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
    answer_as(&mut send, msg, peer.version).await;
}

/// An upload: its `UploadBegin` at once (the list form), or first the
/// leaves of its key tree (the tree form), then the document.
async fn upload(
    first: Message,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    peer: &Peer<'_>,
    core: &Core,
) -> Result<Message, Refusal> {
    let upload = match first {
        Message::UploadBegin {
            doc_id,
            header,
            content_len,
        } => crate::link::upload::Upload {
            doc_id,
            header,
            content_len,
            leaves: None,
        },
        Message::KeyLeaves { doc_id, leaves } => gather_leaves(recv, doc_id, leaves).await?,
        other => {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                format!("{} does not begin an upload", other.kind()),
            ));
        }
    };
    let span = info_span!("upload", doc = %upload.doc_id);
    crate::link::upload::receive(
        send,
        recv,
        crate::link::upload::Origin::Unit(peer.ident),
        core,
        peer.warnings,
        upload,
    )
    .instrument(span)
    .await
}

/// The rest of a tree-form upload's leaves, up to its `UploadBegin`. At
/// most [`MAX_RECIPIENTS`] leaves of [`MAX_KEY_LEAF`] bytes (a unit that
/// was admitted can make the hub hold some 60 MiB here, once per stream,
/// as it can with a document's content).
///
/// [`MAX_RECIPIENTS`]: gongwen_common::envelope::MAX_RECIPIENTS
/// [`MAX_KEY_LEAF`]: gongwen_common::wire::MAX_KEY_LEAF
pub(crate) async fn gather_leaves(
    recv: &mut quinn::RecvStream,
    doc_id: gongwen_common::DocId,
    mut leaves: Vec<Vec<u8>>,
) -> Result<crate::link::upload::Upload, Refusal> {
    let bad = |why: String| Refusal::new(ErrorCode::Malformed, why);
    loop {
        if leaves.len() > gongwen_common::envelope::MAX_RECIPIENTS {
            return Err(bad(format!(
                "more than {} keys",
                gongwen_common::envelope::MAX_RECIPIENTS
            )));
        }
        match read_message(recv, READ_TIMEOUT).await {
            Ok(Message::KeyLeaves {
                doc_id: d,
                leaves: more,
            }) if d == doc_id => {
                leaves.extend(more);
            }
            Ok(Message::UploadBegin {
                doc_id: d,
                header,
                content_len,
            }) if d == doc_id => {
                return Ok(crate::link::upload::Upload {
                    doc_id,
                    header,
                    content_len,
                    leaves: Some(leaves),
                });
            }
            Ok(other) => {
                return Err(bad(format!(
                    "expected the rest of the keys and then UploadBegin for {doc_id}, got {}",
                    other.describe()
                )));
            }
            Err(e) => return Err(bad(format!("the keys broke off: {e}"))),
        }
    }
}

async fn publish_key(
    binding: &[u8],
    ident: &CertIdentity,
    core: &Core,
) -> Result<Message, Refusal> {
    let b = gongwen_common::envelope::ReachKey::verify(
        binding,
        Some(&core.checker()),
        core.clock().now(),
    )
    .map_err(Refusal::signature)?;
    let suite = core.config().suite;
    if b.suite != suite {
        return Err(Refusal::new(
            ErrorCode::BadRequest,
            format!(
                "this deployment seals documents in the {suite} suite ({}); a {} key cannot be published here",
                suite.algorithms(),
                b.suite
            ),
        ));
    }
    if b.node != ident.id {
        warn!(claimed = %b.node, "security: a node published a key binding for another node");
        return Err(Refusal::new(
            ErrorCode::NotTheSender,
            "a node may publish only its own key",
        ));
    }
    // An agent publishes its key on every connect: after a restart that is
    // 10,000 durable writes of what the store already holds.
    if core.store().binding(&ident.id).await?.as_deref() == Some(binding) {
        debug!("encryption key published again, unchanged");
        return Ok(Message::Ok);
    }
    core.store().put_binding(&ident.id, binding).await?;
    core.address_books().changed();
    debug!("encryption key published");
    Ok(Message::Ok)
}

/// The nodes a lookup of `names` needs the bindings of: the members of
/// named groups and the nodes named directly.
pub fn nodes_named(names: &[String], groups: &BTreeMap<String, Vec<NodeId>>) -> BTreeSet<NodeId> {
    let mut out = BTreeSet::new();
    for name in names {
        if let Some(members) = groups.get(name) {
            out.extend(members.iter().cloned());
        } else if let Ok(id) = NodeId::parse_address(name) {
            out.insert(id);
        }
    }
    out
}

/// Resolve recipient names (node ids and groups) given the bindings the
/// hub holds. A unit named directly resolves when it can receive (has a
/// key); a group always resolves to all its members, with the keys of
/// those that have one: the sender seals to those and names the rest as
/// left out, so one member without a key does not stop a notice to the
/// whole group.
pub fn resolve(
    names: Vec<String>,
    groups: &BTreeMap<String, Vec<NodeId>>,
    known: &BTreeMap<NodeId, Vec<u8>>,
) -> Message {
    let mut resolved = Vec::new();
    let mut unknown = Vec::new();
    let mut bindings = Vec::new();
    let mut seen = BTreeSet::new();
    for name in names {
        let group = groups.get(&name);
        let members = match (group, NodeId::parse_address(&name)) {
            (Some(members), _) => members.clone(),
            (None, Ok(id)) => vec![id],
            (None, Err(_)) => {
                unknown.push(name);
                continue;
            }
        };
        if group.is_none() && !known.contains_key(&members[0]) {
            unknown.push(name);
            continue;
        }
        for m in &members {
            if seen.insert(m.clone())
                && let Some(b) = known.get(m)
            {
                bindings.push(b.clone());
            }
        }
        resolved.push(Resolved { name, members });
    }
    Message::Directory {
        resolved,
        unknown,
        bindings,
    }
}

async fn lookup(names: Vec<String>, core: &Core) -> Result<Message, Refusal> {
    let enrolled = core.enrolled().current();
    // Groups of other domains named (`cities@heilongjiang`), beside ours.
    let remote = core
        .federation()
        .map(|f| f.groups_named(&names))
        .unwrap_or_default();
    let with_remote;
    let groups = if remote.is_empty() {
        &enrolled.groups
    } else {
        with_remote = crate::state::enrolled::merge_groups(&enrolled.groups, &remote);
        &with_remote
    };
    let mut known = BTreeMap::new();
    for node in nodes_named(&names, groups) {
        if !node.is_local() {
            if let Some(b) = core.federation().and_then(|f| f.remote_binding(&node)) {
                known.insert(node, b);
            }
            continue;
        }
        let published = core.store().binding(&node).await?;
        if let Some(b) = enrolled.binding_for(&node, published) {
            known.insert(node, b);
        }
    }
    Ok(resolve(names, groups, &known))
}

/// A supervisor's query through its agent.
async fn supervise(query: &[u8], ident: &CertIdentity, core: &Core) -> Result<Message, Refusal> {
    let q: crate::rules::supervision::Query = serde_json::from_slice(query).map_err(|e| {
        Refusal::new(
            ErrorCode::Malformed,
            format!("not a supervision query: {e}"),
        )
    })?;
    // Any unit may read the directory and follow its own documents
    // (签收情况); everything else is for supervisor units.
    let own_document = match &q {
        crate::rules::supervision::Query::Directory { .. } => true,
        crate::rules::supervision::Query::Status { doc } => core
            .store()
            .doc(*doc)
            .await?
            .is_some_and(|d| d.sender == ident.id),
        _ => false,
    };
    if ident.role != gongwen_common::Role::Supervisor && !own_document {
        warn!("security: a {} unit asked for supervision data", ident.role);
        return Err(Refusal::new(
            ErrorCode::BadRequest,
            "only supervisor units may query supervision data",
        ));
    }
    // A 督办单 acts (it urges, in the office's name); the rest only read.
    if let crate::rules::supervision::Query::Press { doc, units, words } = q {
        return crate::link::receipts::press(doc, units, &words, ident, core).await;
    }
    let v = crate::link::queries::supervise(core, &q)
        .await
        .map_err(|e| Refusal::new(ErrorCode::BadRequest, e))?;
    Ok(Message::Json {
        body: v.to_string().into_bytes(),
    })
}
