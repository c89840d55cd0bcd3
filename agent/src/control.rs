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

use crate::context::AgentContext;
use crate::error::AgentError;
use crate::outbox::read_claim;
use crate::store::{SentRecord, Store, StoreError};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "query", rename_all = "snake_case")]
pub enum Request {
    /// Sent documents (all, or one) with per-recipient state.
    Status { doc: Option<DocId> },
    /// Queue files for sending (copies are taken; the originals stay).
    Send(crate::outbox::SendRequest),
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
    pub reason: Option<String>,
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
                    // A document sent from the command line that failed is
                    // no longer in the spool; say why it failed.
                    let failed = doc.and_then(|id| {
                        let reason = ctx
                            .failures
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get(&id)
                            .cloned()?;
                        to_json(&DocStatus {
                            doc_id: id.to_string(),
                            title: String::new(),
                            doc_number: String::new(),
                            stage: "failed".into(),
                            progress: None,
                            reason: Some(reason),
                            sent_at: None,
                            recipients: vec![],
                        })
                        .ok()
                    });
                    match failed {
                        Some(v) => Response::Ok(v),
                        None => Response::Error(e.to_string()),
                    }
                }
            }
        }
        Request::Send(req) => {
            let folders = ctx.folders.clone();
            let queued =
                tokio::task::spawn_blocking(move || crate::outbox::claim_copies(&folders, &req))
                    .await;
            match queued {
                Ok(Ok(doc_id)) => {
                    ctx.outbox_wake.notify_one();
                    Response::Ok(serde_json::json!({ "doc_id": doc_id }))
                }
                Ok(Err(e)) => Response::Error(e),
                Err(e) => Response::Error(e.to_string()),
            }
        }
    }
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

fn doc_status(store: &Store, rec: &SentRecord) -> Result<DocStatus, StoreError> {
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
                    .and_then(|(_, _, b)| Receipt::verify(b, None, OffsetDateTime::now_utc()).ok())
                    .map(|(r, _)| r)
            };
            let delivered = parsed(ReceiptKind::Delivered);
            let quarantined = parsed(ReceiptKind::Quarantined);
            let state = if quarantined.is_some() {
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
                reason: quarantined.map(|q| q.reason),
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
            .map(|c| crate::draft::default_title(&c.name))
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
                }]
            })
            .unwrap_or_default(),
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
