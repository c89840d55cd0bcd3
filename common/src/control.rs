//! Local control sockets (the hub's `hub.sock`, an agent's `agent.sock`):
//! mode 0600, one JSON request line in, one JSON response line out. Only
//! the daemon's own user can reach them.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// Longest request line accepted.
const MAX_REQUEST: u64 = 64 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest Unix socket path Linux takes.
const MAX_PATH: usize = 107;

/// A daemon's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    Ok(serde_json::Value),
    Error(String),
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    #[error(
        "control socket path {0} is too long for a Unix socket (limit {MAX_PATH} bytes); use a shorter directory"
    )]
    TooLong(PathBuf),
    #[error("another process already answers on {0}")]
    AlreadyRunning(PathBuf),
    #[error("control socket {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("not running (no control socket at {path}): {source}")]
    NotRunning {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{detail}")]
    Remote { path: PathBuf, detail: String },
}

/// Bind a control socket, refusing if a live daemon answers on it and
/// removing a stale file left by one that died.
pub fn bind(path: &Path) -> Result<UnixListener, ControlError> {
    let io = |source| ControlError::Io {
        path: path.to_owned(),
        source,
    };
    if path.as_os_str().len() > MAX_PATH {
        return Err(ControlError::TooLong(path.to_owned()));
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ControlError::AlreadyRunning(path.to_owned()));
        }
        std::fs::remove_file(path).map_err(io)?;
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    // The directory is private already; this keeps the socket private even
    // if someone loosens the directory.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(listener)
}

/// Answer requests until the task is dropped.
pub async fn serve<Req, F, Fut>(listener: UnixListener, handler: F)
where
    Req: DeserializeOwned + Send + 'static,
    F: Fn(Req) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Response> + Send,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, handler).await {
                tracing::debug!("control client: {e}");
            }
        });
    }
}

async fn handle<Req, F, Fut>(stream: UnixStream, handler: F) -> std::io::Result<()>
where
    Req: DeserializeOwned,
    F: Fn(Req) -> Fut,
    Fut: Future<Output = Response>,
{
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST));
    tokio::time::timeout(IO_TIMEOUT, reader.read_line(&mut line))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no request"))??;
    let response = match serde_json::from_str::<Req>(line.trim()) {
        Ok(req) => handler(req).await,
        Err(e) => Response::Error(format!("not a request this daemon understands: {e}")),
    };
    let mut out = serde_json::to_vec(&response)
        .unwrap_or_else(|_| br#"{"error":"response could not be encoded"}"#.to_vec());
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await
}

/// Ask the daemon behind `path` one question.
pub async fn query<Req: Serialize>(
    path: &Path,
    request: &Req,
) -> Result<serde_json::Value, ControlError> {
    let remote = |detail: String| ControlError::Remote {
        path: path.to_owned(),
        detail,
    };
    let stream = UnixStream::connect(path)
        .await
        .map_err(|source| ControlError::NotRunning {
            path: path.to_owned(),
            source,
        })?;
    let (read, mut write) = stream.into_split();
    let mut req = serde_json::to_vec(request).map_err(|e| remote(e.to_string()))?;
    req.push(b'\n');
    write
        .write_all(&req)
        .await
        .map_err(|e| remote(e.to_string()))?;
    let mut line = String::new();
    tokio::time::timeout(IO_TIMEOUT, BufReader::new(read).read_line(&mut line))
        .await
        .map_err(|_| remote("no answer within 10 s".into()))?
        .map_err(|e| remote(e.to_string()))?;
    match serde_json::from_str::<Response>(&line) {
        Ok(Response::Ok(v)) => Ok(v),
        Ok(Response::Error(e)) => Err(remote(e)),
        Err(e) => Err(remote(format!("unreadable answer: {e}"))),
    }
}
