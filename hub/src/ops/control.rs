//! The local control socket: `<data_dir>/hub.sock`, mode 0600, one JSON
//! request line in, one JSON response line out. Only the hub's own user
//! can reach it; supervision queries from other machines go through a
//! supervisor's agent instead.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gongwen_common::control::{self, ControlError, Response};
use serde::{Deserialize, Serialize};
use tokio::net::UnixListener;

use crate::error::HubError;
use crate::link::queries::{nodes, supervise};
use crate::rules::supervision::Query;
use crate::state::core::Core;

/// Socket file name inside the data directory.
pub const SOCKET_NAME: &str = "hub.sock";

/// A query to the running hub.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "query", rename_all = "snake_case")]
pub enum Request {
    /// Every node the hub knows, connected or not.
    Nodes,
    /// Every federation peer: its links, routes and revocation list.
    Peers,
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
    /// A consistent copy of the store, audit log and content in a staging
    /// folder inside the data folder (for `gongwen-hub backup`).
    Snapshot { stamp: String },
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

pub(crate) async fn serve(listener: UnixListener, core: Arc<Core>) {
    control::serve(listener, move |req: Request| {
        let core = core.clone();
        async move { answer(&req, &core).await }
    })
    .await;
}

async fn answer(request: &Request, core: &Core) -> Response {
    let result = match request {
        Request::Nodes => nodes(core).await,
        Request::Peers => match core.federation() {
            Some(f) => {
                let mut rows = f.rows(core.clock().now());
                for r in &mut rows {
                    let queue = gongwen_common::NodeId::relay_queue(&r.domain);
                    r.queued = core
                        .store()
                        .queue_length(&queue, 1_000_000)
                        .await
                        .unwrap_or_default();
                }
                serde_json::to_value(rows).map_err(|e| e.to_string())
            }
            None => Err("this hub has no [federation] section: it has no peers".to_string()),
        },
        Request::Snapshot { stamp } => {
            // Only a plain stamp: the folder stays inside the data folder.
            if stamp.is_empty()
                || !stamp
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                Err("a snapshot stamp is letters, digits and dashes".to_string())
            } else {
                let into = crate::ops::backup::staging_dir(&core.config().data_dir, stamp);
                match core.store().snapshot(&into).await {
                    Ok(documents) => Ok(serde_json::json!({
                        "staging": into,
                        "documents": documents,
                        "generation": core.store().generation(),
                        "hub": core.id().to_string(),
                    })),
                    Err(e) => Err(e.to_string()),
                }
            }
        }
        Request::Stats => {
            let mut v = core.stats().to_json();
            let c = core.committer().counts();
            let get =
                |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
            // Accepts and delivery receipts made durable, and in how many
            // commits (the group commit's batching).
            v["writes_committed"] = get(&c.writes).into();
            v["store_commits"] = get(&c.commits).into();
            Ok(v)
        }
        Request::Status { doc } => supervise(core, &Query::Status { doc: *doc }).await,
        Request::Overdue => {
            supervise(
                core,
                &Query::Overdue {
                    filter: Default::default(),
                    limit: None,
                    offset: 0,
                },
            )
            .await
        }
        Request::Report { since, until } => {
            supervise(
                core,
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
