//! Errors of the CA tool, each worded for the administrator.

use std::path::PathBuf;

use gongwen_common::pki::PkiError;

/// Why a CA operation was refused or failed. Nothing is changed on disk
/// when one of these is returned before a write.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    #[error("a CA already exists in {0} (found {1}); nothing was changed")]
    AlreadyExists(PathBuf, &'static str),
    #[error("no CA in {0}: create one with `gongwen-certs --ca-dir {0} init --name NAME`")]
    NotFound(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is damaged: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "{id} already has a valid certificate (serial {serial}, until {not_after}); pass --renew to issue another"
    )]
    AlreadyIssued {
        id: String,
        serial: String,
        not_after: String,
    },
    #[error("no certificate was ever issued to {0}")]
    UnknownId(String),
    #[error("every certificate of {0} is already revoked")]
    AlreadyRevoked(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the certificate signing request cannot be used: {0}")]
    BadCsr(String),
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error(transparent)]
    Pki(#[from] PkiError),
}

impl CaError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> CaError {
        let path = path.into();
        move |source| CaError::Io { path, source }
    }
}
