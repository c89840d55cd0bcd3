//! The agent's local control socket (`state/agent.sock`, mode 0600): one
//! JSON request line, one JSON response line. `gongwen-agent status` and
//! later clerk commands use it.

use std::path::Path;

use gongwen_common::DocId;
use gongwen_common::control::{self, ControlError, Response};
use gongwen_common::receipt::{Receipt, ReceiptKind};
use gongwen_common::timefmt::rfc3339;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::net::UnixListener;

use crate::actions::clerk::Clerk;
use crate::error::AgentError;
use crate::outgoing::outbox::read_claim;
use crate::outgoing::queue::Outgoing;
use crate::parts::Parts;
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

pub(crate) async fn serve(listener: UnixListener, parts: Parts) {
    control::serve(listener, move |req: Request| {
        let parts = parts.clone();
        async move { answer(req, &parts).await }
    })
    .await;
}

/// Parse → act → render: the acts are [`Clerk`]'s, the reads the store's.
async fn answer(req: Request, parts: &Parts) -> Response {
    let clerk = parts.clerk();
    let json = |v: serde_json::Value| Ok::<_, String>(v);
    let done = match req {
        Request::Status { doc } => return status_of(parts, doc).await,
        Request::Inbox { pending } => parts
            .store()
            .run(|s| s.all_received())
            .await
            .map_err(|e| e.to_string())
            .and_then(|records| {
                to_json(&crate::incoming::clerk::inbox_rows(records, pending))
                    .map_err(|e| e.to_string())
            }),
        Request::Ack { doc, by } => clerk.sign_for(doc, by).await.map(|r| answered(&clerk, &r)),
        Request::Reject { doc, reason } => clerk
            .send_back(doc, reason)
            .await
            .map(|r| answered(&clerk, &r)),
        Request::Urge { doc, units } => clerk.urge(doc, units).await,
        Request::Recall { doc, reason } => clerk.recall(doc, reason).await,
        Request::Supervise { question } => {
            parts
                .link()
                .request(&gongwen_common::wire::Message::Supervise {
                    query: question.to_string().into_bytes(),
                })
                .await
        }
        Request::Link => {
            let conn = parts
                .link()
                .connection()
                .filter(|c| c.close_reason().is_none());
            json(serde_json::json!({
                "connected": conn.is_some(),
                "hub": conn.map(|c| c.remote_address().to_string()),
            }))
        }
        Request::Evidence { doc, out } => clerk
            .evidence(doc, out)
            .await
            .map(|dir| serde_json::json!({ "out": dir })),
        Request::Forward(req) => clerk
            .forward(*req)
            .await
            .map(|doc_id| serde_json::json!({ "doc_id": doc_id })),
        Request::Collect { doc, out } => clerk
            .collect(doc, out)
            .await
            .and_then(|done| to_json(&done).map_err(|e| e.to_string())),
        Request::Reply(req) => clerk.reply(*req).await.map(|(doc_id, signed_for)| {
            serde_json::json!({
                "doc_id": doc_id,
                "signed_for_now": signed_for,
                "connected": clerk.connected(),
            })
        }),
        Request::Send(req) => clerk.send(*req, false).await.map(|doc_id| {
            serde_json::json!({
                "doc_id": doc_id,
                "connected": clerk.connected(),
            })
        }),
    };
    match done {
        Ok(v) => Response::Ok(v),
        Err(e) => Response::Error(e),
    }
}

/// What a 签收 or 退回 answers with.
fn answered(clerk: &Clerk, rec: &crate::unit::store::ReceivedRecord) -> serde_json::Value {
    serde_json::json!({
        "doc_id": rec.doc_id,
        "state": rec.state.as_str(),
        "submitted": clerk.connected(),
    })
}

/// Sent documents (all, or one) with each recipient's state; a document
/// that failed is no longer in the spool: then why it failed and where
/// its files are.
async fn status_of(parts: &Parts, doc: Option<DocId>) -> Response {
    let store = parts.store();
    let spool = parts.identity().folders().spool.clone();
    match store.run(move |s| status(s, &spool, doc)).await {
        Ok(v) => Response::Ok(with_progress(v, parts.outgoing())),
        Err(e) => {
            let failed = match doc {
                Some(id) => store.run(move |s| s.failed(id)).await.ok().flatten(),
                None => None,
            };
            match failed.map(|f| to_json(&failed_status(&f))) {
                Some(Ok(v)) => Response::Ok(v),
                _ => Response::Error(e.to_string()),
            }
        }
    }
}

/// Fill in upload progress for documents still being sent.
fn with_progress(mut v: serde_json::Value, outgoing: &Outgoing) -> serde_json::Value {
    let fill = |d: &mut serde_json::Value| {
        let id = d["doc_id"].as_str().and_then(|s| DocId::parse(s).ok());
        if let Some(p) = id.and_then(|id| outgoing.progress(id)) {
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
