//! The local control socket: `<data_dir>/hub.sock`, mode 0600, one JSON
//! request line in, one JSON response line out. Only the hub's own user
//! can reach it; supervision queries from other machines go through a
//! supervisor's agent instead.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tracing::{debug, warn};

use gongwen_common::pki::CertIdentity;
use gongwen_common::signed::{Statement, StatementKind};

use crate::error::HubError;
use crate::registry::NodeRow;
use crate::server::Shared;

/// Socket file name inside the data directory.
pub const SOCKET_NAME: &str = "hub.sock";
/// Longest request line accepted.
const MAX_REQUEST: u64 = 64 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(10);

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
}

/// The hub's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    Ok(serde_json::Value),
    Error(String),
}

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

/// Bind the control socket, refusing if another hub answers on it and
/// removing a stale socket file left by a hub that died.
pub(crate) async fn bind(data_dir: &Path) -> Result<UnixListener, HubError> {
    let path = socket_path(data_dir);
    if path.as_os_str().len() > 107 {
        return Err(HubError::SocketPathTooLong(path));
    }
    if path.exists() {
        if UnixStream::connect(&path).await.is_ok() {
            return Err(HubError::AlreadyRunning(data_dir.to_owned()));
        }
        std::fs::remove_file(&path).map_err(|source| HubError::DataDir {
            path: path.clone(),
            source,
        })?;
    }
    let listener = UnixListener::bind(&path).map_err(|source| HubError::DataDir {
        path: path.clone(),
        source,
    })?;
    // The data directory is 0700 already; this makes the socket private
    // even if someone loosens the directory.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
        HubError::DataDir {
            path: path.clone(),
            source,
        }
    })?;
    Ok(listener)
}

pub(crate) async fn serve(listener: UnixListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    if let Err(e) = handle(stream, &shared).await {
                        debug!("control client: {e}");
                    }
                });
            }
            Err(e) => {
                warn!("control socket accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn answer(request: &Request, shared: &Shared) -> Response {
    let result = match request {
        Request::Nodes => nodes(shared).await,
        Request::Stats => Ok(shared.stats.to_json()),
        Request::Status { doc } => doc_status(shared, *doc).await,
    };
    match result {
        Ok(v) => Response::Ok(v),
        Err(e) => Response::Error(e),
    }
}

/// A document's metadata and per-recipient state, as the hub knows it.
async fn doc_status(
    shared: &Shared,
    doc_id: gongwen_common::DocId,
) -> Result<serde_json::Value, String> {
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
    let time = |ms: i64| {
        time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
            .map(gongwen_common::timefmt::rfc3339)
            .ok()
    };
    let recipients: Vec<serde_json::Value> = doc
        .recipients()
        .iter()
        .map(|r| {
            let d = deliveries.iter().find(|(id, _)| id == r).map(|(_, d)| d);
            let mut held: Vec<&str> = kinds
                .iter()
                .filter(|(id, _)| id == r)
                .map(|(_, k)| k.as_str())
                .collect();
            held.sort();
            serde_json::json!({
                "recipient": r,
                "copy": if doc.to.contains(r) { "to" } else { "cc" },
                "state": d.map(|d| d.state),
                "delivered_at": d.and_then(|d| d.delivered_ms).and_then(time),
                "reason": d.and_then(|d| d.reason.clone()),
                "receipts": held,
            })
        })
        .collect();
    Ok(serde_json::json!({
        "doc_id": doc.doc_id,
        "sender": doc.sender,
        "title": doc.title,
        "doc_number": doc.doc_number,
        "doc_type": doc.doc_type,
        "urgency": doc.urgency,
        "deadline": doc.deadline.and_then(|s| time(s * 1000)),
        "created_at": time(doc.created_ms),
        "accepted_at": time(doc.accepted_ms),
        "digest": doc.digest,
        "content_len": doc.content_len,
        "content_removed": doc.content_removed,
        "files": doc.files,
        "recipients": recipients,
    }))
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

async fn handle(stream: UnixStream, shared: &Shared) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST));
    tokio::time::timeout(IO_TIMEOUT, reader.read_line(&mut line))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no request"))??;
    let response = match serde_json::from_str::<Request>(line.trim()) {
        Ok(req) => answer(&req, shared).await,
        Err(e) => Response::Error(format!("not a request the hub understands: {e}")),
    };
    let mut out = serde_json::to_vec(&response)
        .unwrap_or_else(|_| br#"{"error":"response could not be encoded"}"#.to_vec());
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await
}

/// Ask the hub running with `data_dir` one question.
pub async fn query(data_dir: &Path, request: &Request) -> Result<serde_json::Value, HubError> {
    let path = socket_path(data_dir);
    let control_err = |detail: String| HubError::Control {
        path: path.clone(),
        detail,
    };
    let stream = UnixStream::connect(&path)
        .await
        .map_err(|source| HubError::NotRunning {
            path: path.clone(),
            source,
        })?;
    let (read, mut write) = stream.into_split();
    let mut req = serde_json::to_vec(request).map_err(|e| control_err(e.to_string()))?;
    req.push(b'\n');
    write
        .write_all(&req)
        .await
        .map_err(|e| control_err(e.to_string()))?;
    let mut line = String::new();
    tokio::time::timeout(IO_TIMEOUT, BufReader::new(read).read_line(&mut line))
        .await
        .map_err(|_| control_err("no answer within 10 s".into()))?
        .map_err(|e| control_err(e.to_string()))?;
    match serde_json::from_str::<Response>(&line) {
        Ok(Response::Ok(v)) => Ok(v),
        Ok(Response::Error(e)) => Err(control_err(e)),
        Err(e) => Err(control_err(format!("unreadable answer: {e}"))),
    }
}
