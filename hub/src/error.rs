//! Errors that stop the hub from starting or running, worded for the
//! operator who reads them in the log or on the terminal.

use std::net::SocketAddr;
use std::path::PathBuf;

use gongwen_common::config::ConfigError;
use gongwen_common::pki::PkiError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(
        "{path} is a {role} certificate ({id}); the hub needs a certificate issued with --role hub"
    )]
    NotAHubCertificate {
        path: PathBuf,
        id: String,
        role: String,
    },
    #[error("{0}")]
    Directory(String),
    #[error("federation: {0}")]
    Federation(String),
    #[error("{path}: {problem}")]
    Suite { path: PathBuf, problem: String },
    #[error("cannot serve metrics on {addr} (metrics.listen): {source}")]
    MetricsListen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: address already in use (is another hub running?)")]
    AddressInUse { addr: SocketAddr },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot use data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another hub is already running with data directory {0} (its control socket answers)")]
    AlreadyRunning(PathBuf),
    #[error(
        "control socket path {0} is too long for a Unix socket (limit 107 bytes); use a shorter data_dir"
    )]
    SocketPathTooLong(PathBuf),
    #[error("the hub is not running (no control socket at {path}): {source}")]
    NotRunning {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("control socket {path}: {detail}")]
    Control { path: PathBuf, detail: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}
