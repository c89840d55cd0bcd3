//! Errors that stop the agent from starting.

use std::path::PathBuf;

use gongwen_common::config::ConfigError;
use gongwen_common::pki::PkiError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(
        "{path} is the certificate of {cert_id}, but the configuration says node_id = {config_id}"
    )]
    CertificateMismatch {
        path: PathBuf,
        cert_id: String,
        config_id: String,
    },
    #[error("{path} is a hub certificate; an agent needs a node or supervisor certificate")]
    HubCertificate { path: PathBuf },
    #[error("cannot use directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} already exists; move it away first, or use the key you have")]
    KeyExists { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path} ({what}): {source}")]
    Read {
        path: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("cannot create the UDP socket: {0}")]
    Socket(std::io::Error),
    #[error("key generation failed: {0}")]
    Keygen(#[from] rcgen::Error),
    /// A flag's value that cannot be used, with why.
    #[error("{0}")]
    BadInput(String),
    #[error("{path} is damaged: {detail}")]
    Damaged { path: PathBuf, detail: String },
    #[error(transparent)]
    Store(#[from] crate::unit::store::StoreError),
    #[error("the agent's control socket {path}: {detail}")]
    Control { path: PathBuf, detail: String },
    #[error("the agent is not running (no control socket at {path}): {source}")]
    NotRunning {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another agent is already running with root {0}")]
    AlreadyRunning(PathBuf),
    #[error("the console cannot listen on {addr} (console.listen): {source}")]
    Console {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot serve metrics on {addr} (metrics.listen): {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Accounts(#[from] crate::unit::accounts::AccountError),
}
