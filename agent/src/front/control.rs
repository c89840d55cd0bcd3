//! The agent's local control socket (`state/agent.sock`, mode 0600): one
//! JSON request line, one JSON response line. `gongwen-agent status` and
//! later clerk commands use it.

use std::path::Path;

use gongwen_common::DocId;
use gongwen_common::control::{self, ControlError, Response};
use serde::{Deserialize, Serialize};
use tokio::net::UnixListener;

use crate::actions::clerk::Clerk;
use crate::error::AgentError;
use crate::outgoing::status::status;
pub use crate::outgoing::status::{DocStatus, RecipientStatus};
use crate::parts::Parts;
use crate::unit::outgoing::Outgoing;
use crate::unit::store::StoreError;

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
    match store
        .run(move |s| status(s, &spool, doc).and_then(|v| to_json(&v)))
        .await
    {
        Ok(v) => Response::Ok(with_progress(v, parts.outgoing())),
        Err(e) => Response::Error(e.to_string()),
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
