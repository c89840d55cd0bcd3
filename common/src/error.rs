//! The crate's error type: one enum, with a typed sub-enum per concern.

pub use crate::config::ConfigError;
pub use crate::pki::PkiError;
pub use crate::stream::StreamError;
pub use crate::wire::WireError;

/// Any error from gongwen-common.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(transparent)]
    Stream(#[from] StreamError),
}
