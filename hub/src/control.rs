//! The local control socket: `<data_dir>/hub.sock`, mode 0600, one JSON
//! request line in, one JSON response line out. Only the hub's own user
//! can reach it; supervision queries from other machines go through a
//! supervisor's agent instead.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gongwen_common::control::{self, ControlError, Response};
use serde::{Deserialize, Serialize};
use tokio::net::UnixListener;

use gongwen_common::pki::CertIdentity;
use gongwen_common::signed::{Statement, StatementKind};

use crate::error::HubError;
use crate::registry::NodeRow;
use crate::server::Shared;
use crate::supervision::{self, Query};

/// Socket file name inside the data directory.
pub const SOCKET_NAME: &str = "hub.sock";

/// A query to the running hub.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "query", rename_all = "snake_case")]
pub enum Request {
    /// Every node the hub knows, connected or not.
    Nodes,
    /// Counters since the hub started.
    Stats,
    /// One document: metadata (never content) and each recipient's state.
    Status { doc: gongwen_common::DocId },
    /// Every (document, recipient) past its deadline without an answer.
    Overdue,
    /// Per-unit and per-sender figures over a period (RFC 3339 bounds).
    Report {
        since: Option<String>,
        until: Option<String>,
    },
}

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

/// Bind the control socket (refusing if another hub answers on it).
pub(crate) async fn bind(data_dir: &Path) -> Result<UnixListener, HubError> {
    control::bind(&socket_path(data_dir)).map_err(|e| match e {
        ControlError::AlreadyRunning(_) => HubError::AlreadyRunning(data_dir.to_owned()),
        ControlError::TooLong(p) => HubError::SocketPathTooLong(p),
        other => HubError::Control {
            path: socket_path(data_dir),
            detail: other.to_string(),
        },
    })
}

pub(crate) async fn serve(listener: UnixListener, shared: Arc<Shared>) {
    control::serve(listener, move |req: Request| {
        let shared = shared.clone();
        async move { answer(&req, &shared).await }
    })
    .await;
}

async fn answer(request: &Request, shared: &Shared) -> Response {
    let result = match request {
        Request::Nodes => nodes(shared).await,
        Request::Stats => {
            let mut v = shared.stats.to_json();
            let c = shared.committer.counts();
            let get =
                |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
            // Accepts and delivery receipts made durable, and in how many
            // commits (the group commit's batching).
            v["writes_committed"] = get(&c.writes).into();
            v["store_commits"] = get(&c.commits).into();
            Ok(v)
        }
        Request::Status { doc } => supervise(shared, &Query::Status { doc: *doc }).await,
        Request::Overdue => supervise(shared, &Query::Overdue).await,
        Request::Report { since, until } => {
            supervise(
                shared,
                &Query::Report {
                    since: since.clone(),
                    until: until.clone(),
                },
            )
            .await
        }
    };
    match result {
        Ok(v) => Response::Ok(v),
        Err(e) => Response::Error(e),
    }
}

/// Answer a supervision query (from this socket or a supervisor's agent).
pub(crate) async fn supervise(shared: &Shared, q: &Query) -> Result<serde_json::Value, String> {
    let now = shared.clock.now_ms();
    let parse_time = |t: &Option<String>| -> Result<Option<i64>, String> {
        t.as_deref()
            .map(|s| {
                gongwen_common::timefmt::parse_rfc3339(s)
                    .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
                    .map_err(|_| {
                        format!("{s:?} is not an RFC 3339 time such as 2026-11-01T00:00:00Z")
                    })
            })
            .transpose()
    };
    let value = match q {
        Query::Status { doc } => {
            let doc_id = *doc;
            let (doc, deliveries, kinds) = shared
                .store
                .run(move |s| {
                    Ok((
                        s.doc(doc_id)?,
                        s.deliveries(doc_id)?,
                        s.receipt_kinds(doc_id)?,
                    ))
                })
                .await
                .map_err(|e| e.to_string())?;
            let Some(doc) = doc else {
                return Err(format!("the hub has no document {doc_id}"));
            };
            let recipients: Vec<supervision::RecipientRow> = doc
                .recipients()
                .iter()
                .filter_map(|r| {
                    let (_, d) = deliveries.iter().find(|(id, _)| id == r)?;
                    let mut held: Vec<String> = kinds
                        .iter()
                        .filter(|(id, _)| id == r)
                        .map(|(_, k)| k.as_str().to_owned())
                        .collect();
                    held.sort();
                    Some(supervision::recipient_row(&doc, r, d, held, now))
                })
                .collect();
            serde_json::json!({
                "doc_id": doc.doc_id,
                "sender": doc.sender,
                "to": doc.to,
                "cc": doc.cc,
                "title": doc.title,
                "doc_number": doc.doc_number,
                "doc_type": doc.doc_type,
                "urgency": doc.urgency,
                "created_at": supervision::time_ms(doc.created_ms),
                "accepted_at": supervision::time_ms(doc.accepted_ms),
                "digest": doc.digest,
                "content_len": doc.content_len,
                "content_removed": doc.content_removed,
                "files": doc.files,
                "recipients": recipients,
            })
        }
        Query::Directory => {
            let bindings = shared
                .store
                .run(|s| s.bindings())
                .await
                .map_err(|e| e.to_string())?;
            let units: Vec<serde_json::Value> = bindings
                .iter()
                .map(|(id, binding)| {
                    // The display name is in the certificate that signed the
                    // unit's key binding.
                    let name = gongwen_common::signed::Statement::decode(
                        binding,
                        gongwen_common::signed::StatementKind::KeyBinding,
                    )
                    .ok()
                    .and_then(|st| gongwen_common::pki::CertIdentity::from_der(&st.cert).ok())
                    .and_then(|who| who.name);
                    serde_json::json!({ "id": id, "name": name })
                })
                .collect();
            let groups: Vec<serde_json::Value> = shared
                .config
                .groups
                .iter()
                .map(|(name, members)| serde_json::json!({ "name": name, "members": members }))
                .collect();
            // What a sender needs to know the deadline the hub will set
            // when it sets none itself.
            let d = &shared.config.deadlines;
            let deadlines = serde_json::json!({
                "normal": d.normal.as_secs(),
                "urgent": d.urgent.as_secs(),
                "extra_urgent": d.extra_urgent.as_secs(),
            });
            serde_json::json!({ "units": units, "groups": groups, "deadlines": deadlines })
        }
        Query::Find { doc_number } => {
            let wanted = doc_number.trim().to_owned();
            if wanted.is_empty() {
                return Err("give the document number (文号) to look for".into());
            }
            let data = shared
                .store
                .run(|s| s.all_deliveries())
                .await
                .map_err(|e| e.to_string())?;
            let found: Vec<serde_json::Value> = data
                .iter()
                .filter(|(doc, _)| doc.doc_number.contains(&wanted))
                .take(100)
                .map(|(doc, _)| {
                    serde_json::json!({
                        "doc_id": doc.doc_id,
                        "doc_number": doc.doc_number,
                        "title": doc.title,
                        "sender": doc.sender,
                        "accepted_at": supervision::time_ms(doc.accepted_ms),
                    })
                })
                .collect();
            serde_json::Value::Array(found)
        }
        Query::Overdue => {
            let data = shared
                .store
                .run(|s| s.all_deliveries())
                .await
                .map_err(|e| e.to_string())?;
            serde_json::to_value(supervision::overdue(&data, now)).map_err(|e| e.to_string())?
        }
        Query::Report { since, until } => {
            let (since, until) = (parse_time(since)?, parse_time(until)?);
            let data = shared
                .store
                .run(|s| s.all_deliveries())
                .await
                .map_err(|e| e.to_string())?;
            serde_json::to_value(supervision::report(&data, since, until, now))
                .map_err(|e| e.to_string())?
        }
    };
    Ok(value)
}

/// Connected nodes and every node known from its published key.
async fn nodes(shared: &Shared) -> Result<serde_json::Value, String> {
    let mut rows = shared.registry().rows();
    let known = shared
        .store
        .run(|s| s.bindings())
        .await
        .map_err(|e| e.to_string())?;
    for (id, binding) in known {
        if let Some(row) = rows.iter_mut().find(|r| r.id == id.as_str()) {
            row.can_receive = true;
            continue;
        }
        let Ok(st) = Statement::decode(&binding, StatementKind::KeyBinding) else {
            continue;
        };
        let Ok(ident) = CertIdentity::from_der(&st.cert) else {
            continue;
        };
        rows.push(NodeRow {
            id: id.to_string(),
            name: ident.name,
            role: ident.role,
            connected: false,
            since: None,
            addr: None,
            can_receive: true,
        });
    }
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    serde_json::to_value(rows).map_err(|e| e.to_string())
}

/// Ask the hub running with `data_dir` one question.
pub async fn query(data_dir: &Path, request: &Request) -> Result<serde_json::Value, HubError> {
    let path = socket_path(data_dir);
    control::query(&path, request).await.map_err(|e| match e {
        ControlError::NotRunning { source, .. } => HubError::NotRunning {
            path: path.clone(),
            source,
        },
        other => HubError::Control {
            path: path.clone(),
            detail: other.to_string(),
        },
    })
}
