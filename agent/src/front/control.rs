//! The agent's local control socket (`state/agent.sock`, mode 0600): one
//! JSON request line, one JSON response line. `gongwen-agent status` and
//! later clerk commands use it.

use std::path::Path;
use std::sync::Arc;

use gongwen_common::DocId;
use gongwen_common::control::{self, ControlError, Response};
use gongwen_common::receipt::{Receipt, ReceiptKind};
use gongwen_common::timefmt::rfc3339;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::net::UnixListener;

use crate::error::AgentError;
use crate::outgoing::outbox::read_claim;
use crate::unit::context::AgentContext;
use crate::unit::store::{SentRecord, Store, StoreError};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "query", rename_all = "snake_case")]
pub enum Request {
    /// Sent documents (all, or one) with per-recipient state.
    Status { doc: Option<DocId> },
    /// Queue files for sending (copies are taken; the originals stay).
    Send(Box<crate::outgoing::outbox::SendRequest>),
    /// Documents received (or only those still to sign for).
    Inbox { pending: bool },
    /// Sign for a received document (签收).
    Ack { doc: DocId, by: String },
    /// Return a received document (退回).
    Reject { doc: DocId, reason: String },
    /// Withdraw a document this unit sent (撤回).
    Recall { doc: DocId, reason: String },
    /// Urge (催办) the units that have not signed for a document this unit
    /// sent (all of them when `units` is empty).
    Urge {
        doc: DocId,
        #[serde(default)]
        units: Vec<gongwen_common::NodeId>,
    },
    /// Ask the hub a supervision question (supervisor units only).
    Supervise { question: serde_json::Value },
    /// Write the evidence bundle for a document into a folder.
    Evidence { doc: DocId, out: std::path::PathBuf },
    /// Whether the agent is connected to a hub now, and to which address.
    Link,
    /// Answer a received document that asked for an answer.
    Reply(Box<crate::actions::reply::ReplyRequest>),
    /// 汇总: gather the answers to a document this unit sent into a folder.
    Collect { doc: DocId, out: std::path::PathBuf },
    /// 转发: pass a received document on to other units.
    Forward(Box<crate::actions::forward::ForwardRequest>),
}

/// One recipient's state in `status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecipientStatus {
    pub recipient: String,
    /// queued (at the hub), delivered, quarantined
    pub state: String,
    pub delivered_at: Option<String>,
    /// Receipt kinds held from this recipient.
    pub receipts: Vec<ReceiptKind>,
    /// Why it was quarantined or returned.
    pub reason: Option<String>,
    /// Who signed for it.
    #[serde(default)]
    pub acknowledged_by: Option<String>,
    #[serde(default)]
    pub acknowledged_at: Option<String>,
}

/// One document in `status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DocStatus {
    pub doc_id: String,
    pub title: String,
    pub doc_number: String,
    /// sending (still with this agent), sent (accepted by the hub), or
    /// failed (moved to failed/; `reason` says why)
    pub stage: String,
    /// Upload progress while sending: bytes sent and total.
    #[serde(default)]
    pub progress: Option<(u64, u64)>,
    #[serde(default)]
    pub reason: Option<String>,
    pub sent_at: Option<String>,
    pub recipients: Vec<RecipientStatus>,
    /// Units it was addressed to but not sent to (a revoked member of a
    /// group, say), each with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<crate::rules::addressing::LeftOut>,
}

pub(crate) fn bind(path: &Path) -> Result<UnixListener, AgentError> {
    control::bind(path).map_err(|e| match e {
        // state/agent.sock → the root is two levels up.
        ControlError::AlreadyRunning(_) => AgentError::AlreadyRunning(
            path.parent()
                .and_then(Path::parent)
                .unwrap_or(path)
                .to_owned(),
        ),
        other => AgentError::Control {
            path: path.to_owned(),
            detail: other.to_string(),
        },
    })
}

pub(crate) async fn serve(listener: UnixListener, ctx: Arc<AgentContext>) {
    control::serve(listener, move |req: Request| {
        let ctx = ctx.clone();
        async move { answer(req, &ctx).await }
    })
    .await;
}

async fn answer(req: Request, ctx: &Arc<AgentContext>) -> Response {
    match req {
        Request::Status { doc } => {
            let spool = ctx.folders.spool.clone();
            match ctx.store.run(move |s| status(s, &spool, doc)).await {
                Ok(v) => Response::Ok(with_progress(v, ctx)),
                Err(e) => {
                    // A document that failed is no longer in the spool;
                    // say why it failed and where its files are.
                    let failed = match doc {
                        Some(id) => ctx.store.run(move |s| s.failed(id)).await.ok().flatten(),
                        None => None,
                    };
                    match failed.map(|f| to_json(&failed_status(&f))) {
                        Some(Ok(v)) => Response::Ok(v),
                        _ => Response::Error(e.to_string()),
                    }
                }
            }
        }
        Request::Inbox { pending } => match ctx.store.run(|s| s.all_received()).await {
            Ok(records) => match to_json(&crate::incoming::clerk::inbox_rows(records, pending)) {
                Ok(v) => Response::Ok(v),
                Err(e) => Response::Error(e.to_string()),
            },
            Err(e) => Response::Error(e.to_string()),
        },
        Request::Ack { doc, by } => act(ctx, doc, ReceiptKind::Acknowledged, by).await,
        Request::Reject { doc, reason } => act(ctx, doc, ReceiptKind::Rejected, reason).await,
        Request::Urge { doc, units } => {
            match hub_request(
                ctx,
                &gongwen_common::wire::Message::Urge { doc_id: doc, units },
            )
            .await
            {
                Ok(v) => Response::Ok(v),
                Err(e) => Response::Error(e),
            }
        }
        Request::Recall { doc, reason } => match recall(ctx, doc, reason).await {
            Ok(v) => Response::Ok(v),
            Err(e) => Response::Error(e),
        },
        Request::Supervise { question } => {
            let msg = gongwen_common::wire::Message::Supervise {
                query: question.to_string().into_bytes(),
            };
            match hub_request(ctx, &msg).await {
                Ok(v) => Response::Ok(v),
                Err(e) => Response::Error(e),
            }
        }
        Request::Link => {
            let conn = ctx.connection().filter(|c| c.close_reason().is_none());
            Response::Ok(serde_json::json!({
                "connected": conn.is_some(),
                "hub": conn.map(|c| c.remote_address().to_string()),
            }))
        }
        Request::Evidence { doc, out } => {
            let c = ctx.clone();
            match tokio::task::spawn_blocking(move || {
                crate::actions::evidence::write_bundle(&c, doc, &out)
            })
            .await
            {
                Ok(Ok(dir)) => Response::Ok(serde_json::json!({ "out": dir })),
                Ok(Err(e)) => Response::Error(e),
                Err(e) => Response::Error(e.to_string()),
            }
        }
        Request::Forward(req) => {
            ctx.settled(req.doc).await;
            let c = ctx.clone();
            match tokio::task::spawn_blocking(move || crate::actions::forward::queue(&c, &req))
                .await
            {
                Ok(Ok(doc_id)) => {
                    ctx.outbox_wake.notify_one();
                    Response::Ok(serde_json::json!({ "doc_id": doc_id }))
                }
                Ok(Err(e)) => Response::Error(e),
                Err(e) => Response::Error(e.to_string()),
            }
        }
        Request::Collect { doc, out } => {
            // The hub's times and judgment of lateness, when it answers.
            let hub = hub_request(
                ctx,
                &gongwen_common::wire::Message::Supervise {
                    query: serde_json::json!({ "query": "status", "doc": doc })
                        .to_string()
                        .into_bytes(),
                },
            )
            .await
            .ok();
            let c = ctx.clone();
            match tokio::task::spawn_blocking(move || {
                crate::actions::collect::collect(&c, doc, &out, hub.as_ref())
            })
            .await
            {
                Ok(Ok(done)) => match to_json(&done) {
                    Ok(v) => Response::Ok(v),
                    Err(e) => Response::Error(e.to_string()),
                },
                Ok(Err(e)) => Response::Error(e),
                Err(e) => Response::Error(e.to_string()),
            }
        }
        Request::Reply(req) => {
            ctx.settled(req.doc).await;
            let c = ctx.clone();
            match tokio::task::spawn_blocking(move || crate::actions::reply::queue(&c, &req)).await
            {
                Ok(Ok((doc_id, signed_for))) => {
                    ctx.outbox_wake.notify_one();
                    Response::Ok(serde_json::json!({
                        "doc_id": doc_id,
                        "signed_for_now": signed_for,
                        "connected": ctx.connection().is_some(),
                    }))
                }
                Ok(Err(e)) => Response::Error(e),
                Err(e) => Response::Error(e.to_string()),
            }
        }
        Request::Send(req) => {
            let c = ctx.clone();
            let queued = tokio::task::spawn_blocking(move || {
                let _claiming = c.claiming.lock().unwrap_or_else(|p| p.into_inner());
                crate::outgoing::outbox::claim_copies(&c.folders, &req)
            })
            .await;
            match queued {
                Ok(Ok(doc_id)) => {
                    ctx.outbox_wake.notify_one();
                    Response::Ok(serde_json::json!({
                        "doc_id": doc_id,
                        "connected": ctx.connection().is_some(),
                    }))
                }
                Ok(Err(e)) => Response::Error(e),
                Err(e) => Response::Error(e.to_string()),
            }
        }
    }
}

async fn act(ctx: &Arc<AgentContext>, doc: DocId, kind: ReceiptKind, detail: String) -> Response {
    ctx.settled(doc).await;
    let c = ctx.clone();
    match tokio::task::spawn_blocking(move || {
        crate::incoming::clerk::answer(&c, doc, kind, &detail)
    })
    .await
    {
        Ok(Ok(rec)) => {
            ctx.outbox_wake.notify_one();
            Response::Ok(serde_json::json!({
                "doc_id": rec.doc_id,
                "state": rec.state.as_str(),
                "submitted": ctx.connection().is_some(),
            }))
        }
        Ok(Err(e)) => Response::Error(e.to_string()),
        Err(e) => Response::Error(e.to_string()),
    }
}

/// One request to the hub over the live connection; its JSON answer.
/// Withdraw a document this unit sent (撤回) through the hub, and note at
/// home whom it was withdrawn from. The hub's answer, or why not.
pub(crate) async fn recall(
    ctx: &AgentContext,
    doc: DocId,
    reason: String,
) -> Result<serde_json::Value, String> {
    let v = hub_request(
        ctx,
        &gongwen_common::wire::Message::Recall {
            doc_id: doc,
            reason,
        },
    )
    .await?;
    let mut from: Vec<gongwen_common::NodeId> = Vec::new();
    for key in ["withdrawn_at_hub", "recalled_from"] {
        from.extend(
            serde_json::from_value::<Vec<gongwen_common::NodeId>>(v[key].clone())
                .unwrap_or_default(),
        );
    }
    let now = ctx.now_ms();
    ctx.store
        .run(move |s| s.mark_recalled(doc, &from, now))
        .await
        .map_err(|e| e.to_string())?;
    Ok(v)
}

pub(crate) async fn hub_request(
    ctx: &AgentContext,
    msg: &gongwen_common::wire::Message,
) -> Result<serde_json::Value, String> {
    use gongwen_common::wire::Message;
    let Some(conn) = ctx.connection() else {
        return Err("the agent is not connected to the hub right now; try again when it is".into());
    };
    match crate::outgoing::send::request(&conn, msg).await {
        Ok(Message::Json { body }) => serde_json::from_slice(&body).map_err(|e| e.to_string()),
        Ok(Message::Error { message, .. }) => Err(format!("the hub refused: {message}")),
        Ok(other) => Err(format!(
            "unexpected answer from the hub: {}",
            other.describe()
        )),
        Err(e) => Err(format!("{e:?}")),
    }
}

/// Ask the hub a supervision question; its typed answer, or why not.
pub(crate) async fn hub_query<T: serde::de::DeserializeOwned>(
    ctx: &AgentContext,
    q: &gongwen_common::supervision::Query,
) -> Result<T, String> {
    let v = hub_request(
        ctx,
        &gongwen_common::wire::Message::Supervise {
            query: q.to_bytes(),
        },
    )
    .await?;
    serde_json::from_value(v).map_err(|e| format!("the hub's answer does not read: {e}"))
}

/// Fill in upload progress for documents still being sent.
fn with_progress(mut v: serde_json::Value, ctx: &AgentContext) -> serde_json::Value {
    let progress = ctx
        .progress
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let fill = |d: &mut serde_json::Value| {
        let id = d["doc_id"].as_str().and_then(|s| DocId::parse(s).ok());
        if let Some(p) = id.and_then(|id| progress.get(&id)) {
            d["progress"] = serde_json::json!([p.0, p.1]);
        }
    };
    match &mut v {
        serde_json::Value::Array(docs) => docs.iter_mut().for_each(fill),
        d => fill(d),
    }
    v
}

fn ms_time(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .map(rfc3339)
        .unwrap_or_default()
}

pub(crate) fn doc_status(store: &Store, rec: &SentRecord) -> Result<DocStatus, StoreError> {
    let receipts = store.receipts(rec.doc_id)?;
    let recipients = rec
        .recipients
        .iter()
        .map(|r| {
            let mine: Vec<_> = receipts.iter().filter(|(who, _, _)| who == r).collect();
            let kinds: Vec<ReceiptKind> = mine.iter().map(|(_, k, _)| *k).collect();
            let parsed = |kind: ReceiptKind| {
                mine.iter()
                    .find(|(_, k, _)| *k == kind)
                    .and_then(|(_, _, b)| Receipt::decode_stored(b).ok())
            };
            let delivered = parsed(ReceiptKind::Delivered);
            let quarantined = parsed(ReceiptKind::Quarantined);
            let acknowledged = parsed(ReceiptKind::Acknowledged);
            let rejected = parsed(ReceiptKind::Rejected);
            let state = if rejected.is_some() {
                "rejected"
            } else if acknowledged.is_some() {
                "acknowledged"
            } else if rec.recalled.contains(r) {
                "recalled"
            } else if quarantined.is_some() {
                "quarantined"
            } else if delivered.is_some() {
                "delivered"
            } else {
                "queued"
            };
            RecipientStatus {
                recipient: r.to_string(),
                state: state.into(),
                delivered_at: delivered
                    .as_ref()
                    .or(quarantined.as_ref())
                    .map(|r| ms_time(r.time_ms)),
                receipts: kinds,
                reason: rejected
                    .as_ref()
                    .map(|x| x.reason.clone())
                    .or(quarantined.map(|q| q.reason)),
                acknowledged_by: acknowledged.as_ref().map(|a| a.by.clone()),
                acknowledged_at: acknowledged.as_ref().map(|a| ms_time(a.time_ms)),
            }
        })
        .collect();
    Ok(DocStatus {
        doc_id: rec.doc_id.to_string(),
        title: rec.title.clone(),
        doc_number: rec.doc_number.clone(),
        stage: "sent".into(),
        progress: None,
        reason: None,
        sent_at: Some(ms_time(rec.sent_ms)),
        recipients,
        left_out: rec.left_out.clone(),
    })
}

fn status(
    store: &Store,
    spool: &Path,
    doc: Option<DocId>,
) -> Result<serde_json::Value, StoreError> {
    match doc {
        Some(id) => match store.sent(id)? {
            Some(rec) => to_json(&doc_status(store, &rec)?),
            None if spool.join(id.to_string()).exists() => to_json(&outgoing(spool, id)),
            None => Err(StoreError::Record(format!(
                "no document {id} was sent from this unit"
            ))),
        },
        None => {
            let mut all: Vec<DocStatus> = store
                .all_sent()?
                .iter()
                .map(|r| doc_status(store, r))
                .collect::<Result<_, _>>()?;
            if let Ok(entries) = std::fs::read_dir(spool) {
                let mut ids: Vec<DocId> = entries
                    .filter_map(|e| e.ok())
                    .filter_map(|e| DocId::parse(&e.file_name().to_string_lossy()).ok())
                    .collect();
                ids.sort();
                all.extend(ids.into_iter().map(|id| outgoing(spool, id)));
            }
            to_json(&all)
        }
    }
}

fn outgoing(spool: &Path, id: DocId) -> DocStatus {
    let claim = read_claim(&spool.join(id.to_string())).ok();
    DocStatus {
        doc_id: id.to_string(),
        title: claim
            .as_ref()
            .map(|c| crate::outgoing::draft::default_title(&c.name))
            .unwrap_or_default(),
        doc_number: String::new(),
        stage: "sending".into(),
        progress: None,
        reason: None,
        sent_at: None,
        recipients: claim
            .map(|c| {
                vec![RecipientStatus {
                    recipient: c.to,
                    state: "waiting".into(),
                    delivered_at: None,
                    receipts: vec![],
                    reason: None,
                    acknowledged_by: None,
                    acknowledged_at: None,
                }]
            })
            .unwrap_or_default(),
        left_out: Vec::new(),
    }
}

/// The status of a document given up on: why, and where its files are.
pub(crate) fn failed_status(f: &crate::unit::store::FailedRecord) -> DocStatus {
    DocStatus {
        doc_id: f.doc_id.to_string(),
        title: crate::outgoing::draft::default_title(&f.name),
        doc_number: String::new(),
        stage: "failed".into(),
        progress: None,
        reason: Some(format!("{} (files in failed/{})", f.reason, f.name)),
        sent_at: None,
        recipients: f
            .to
            .iter()
            .chain(&f.cc)
            .map(|r| RecipientStatus {
                recipient: r.clone(),
                state: "not sent".into(),
                delivered_at: None,
                receipts: vec![],
                reason: None,
                acknowledged_by: None,
                acknowledged_at: None,
            })
            .collect(),
        left_out: Vec::new(),
    }
}

fn to_json<T: Serialize>(v: &T) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(v).map_err(|e| StoreError::Record(e.to_string()))
}

/// Ask the agent behind `socket` one question.
pub async fn query(socket: &Path, request: &Request) -> Result<serde_json::Value, AgentError> {
    control::query(socket, request).await.map_err(|e| match e {
        ControlError::NotRunning { source, .. } => AgentError::NotRunning {
            path: socket.to_owned(),
            source,
        },
        other => AgentError::Control {
            path: socket.to_owned(),
            detail: other.to_string(),
        },
    })
}
